public import FoundationEssentials

/// berth keeps times to the millisecond: in the ledger and on the wire.
extension Date {
    /// The nearest millisecond, as a date a quarter of a millisecond past it, which every
    /// formatter that writes it writes as that millisecond: `ISO8601FormatStyle` cuts the
    /// fraction off (0.174 s may be 0.17399… as a binary fraction, written 0.173), and GRDB's
    /// formatter (and `LedgerTime`) rounds to the nearest millisecond.
    public var forTruncatingFormatter: Date {
        Date(timeIntervalSince1970: ((timeIntervalSince1970 * 1000).rounded() + 0.25) / 1000)
    }

    /// Whether it is a whole second, to the nearest millisecond.
    public var isWholeSecond: Bool {
        (timeIntervalSince1970 * 1000).rounded().truncatingRemainder(dividingBy: 1000) == 0
    }
}
