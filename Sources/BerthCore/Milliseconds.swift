public import FoundationEssentials

/// berth keeps times to the millisecond: in the ledger and on the wire.
extension Date {
    /// The nearest millisecond, as a date a quarter of a millisecond past it, for the
    /// formatters that write it (GRDB's, `ISO8601FormatStyle`): they cut the fraction off, and
    /// 0.174 s may be 0.17399… as a binary fraction, which would be written as 0.173.
    public var forTruncatingFormatter: Date {
        Date(timeIntervalSince1970: ((timeIntervalSince1970 * 1000).rounded() + 0.25) / 1000)
    }

    /// Whether it is a whole second, to the nearest millisecond.
    public var isWholeSecond: Bool {
        (timeIntervalSince1970 * 1000).rounded().truncatingRemainder(dividingBy: 1000) == 0
    }
}
