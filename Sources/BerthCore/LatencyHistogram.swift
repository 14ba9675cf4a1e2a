public import Foundation

/// Call latencies, counted per value rounded to three significant figures (12.34 ms counts as
/// 12.3 ms, 0.7345 ms as 0.735 ms). That keeps an hour of a busy reservation's calls in a few
/// hundred counters, so percentiles over a month come from rollups rather than from millions of
/// rows, and it is still exact for the rounded values: p50 and p99 are nearest-rank percentiles
/// of the latencies as rounded.
public struct LatencyHistogram: Sendable, Equatable {
    /// Rounded latency (as a code, see `code(milliseconds:)`) → number of calls.
    public private(set) var counts: [UInt16: Int] = [:]

    public init() {}

    public var total: Int { counts.values.reduce(0, +) }
    public var isEmpty: Bool { counts.isEmpty }

    public mutating func add(milliseconds: Double, count: Int = 1) {
        counts[Self.code(milliseconds: milliseconds), default: 0] += count
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (code, count) in other.counts { counts[code, default: 0] += count }
    }

    /// The nearest-rank percentile (`p` in 0...100): the smallest latency that at least `p` % of
    /// the calls did not exceed. `nil` with no calls.
    public func percentile(_ p: Double) -> Double? {
        let total = self.total
        guard total > 0 else { return nil }
        let rank = max(1, Int((p / 100 * Double(total)).rounded(.up)))
        var seen = 0
        for code in counts.keys.sorted() {
            seen += counts[code]!
            if seen >= rank { return Self.milliseconds(code: code) }
        }
        return Self.milliseconds(code: counts.keys.max()!)
    }

    // MARK: Rounding

    /// Decades from 0.0001 ms to 10⁶ ms (about 17 minutes); anything beyond is clamped.
    private static let lowestExponent = -4
    private static let highestExponent = 6

    /// 0 for no latency; otherwise (decade index) × 1000 + the three significant digits (100…999).
    public static func code(milliseconds value: Double) -> UInt16 {
        guard value.isFinite, value > 0 else { return 0 }
        var exponent = Int(log10(value).rounded(.down))
        var digits = (value / scale(exponent)).rounded()
        // log10 can land a hair off at exact powers of ten; rounding can carry into a new decade.
        if digits < 100 { exponent -= 1; digits = (value / scale(exponent)).rounded() }
        if digits >= 1000 { exponent += 1; digits = (value / scale(exponent)).rounded() }
        if exponent < lowestExponent { return UInt16(1000 + 100) }
        if exponent > highestExponent { return UInt16((highestExponent - lowestExponent + 1) * 1000 + 999) }
        return UInt16((exponent - lowestExponent + 1) * 1000 + Int(digits))
    }

    public static func milliseconds(code: UInt16) -> Double {
        guard code > 0 else { return 0 }
        let exponent = Int(code) / 1000 - 1 + lowestExponent
        let digits = Double(Int(code) % 1000)
        // Divide rather than multiply by a fraction, so 123 at 10⁻¹ is the double nearest 12.3.
        return exponent >= 2 ? digits * pow(10, Double(exponent - 2)) : digits / pow(10, Double(2 - exponent))
    }

    /// 10^(exponent − 2): the value of one step of the third significant digit.
    private static func scale(_ exponent: Int) -> Double { pow(10, Double(exponent - 2)) }

    // MARK: Storage

    /// Six bytes per distinct latency: the code and the count, little-endian.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 6)
        for (code, count) in counts.sorted(by: { $0.key < $1.key }) {
            let clamped = UInt32(clamping: count)
            bytes.append(UInt8(code & 0xff)); bytes.append(UInt8(code >> 8))
            for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((clamped >> UInt32(shift)) & 0xff)) }
        }
        return bytes
    }

    /// Adds the counts of an `encoded()` histogram; bytes that do not make a whole entry are ignored.
    public mutating func merge(encoded bytes: [UInt8]) {
        var i = 0
        while i + 6 <= bytes.count {
            let code = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            let count = UInt32(bytes[i + 2]) | UInt32(bytes[i + 3]) << 8 | UInt32(bytes[i + 4]) << 16 | UInt32(bytes[i + 5]) << 24
            counts[code, default: 0] += Int(count)
            i += 6
        }
    }

    public init(encoded bytes: [UInt8]) {
        merge(encoded: bytes)
    }
}
