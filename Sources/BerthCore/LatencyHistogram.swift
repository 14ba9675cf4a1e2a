import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// Call latencies, counted per value rounded to three significant figures (12.34 ms counts as
/// 12.3 ms, 0.7345 ms as 0.735 ms). That keeps an hour of a busy reservation's calls in a few
/// hundred counters, so percentiles over a month come from rollups rather than from millions of
/// rows, and it is still exact for the rounded values: p50 and p99 are nearest-rank percentiles
/// of the latencies as rounded.
public struct LatencyHistogram: Sendable, Equatable {
    /// Rounded latencies present (as codes, see `code(milliseconds:)`), ascending, and how many
    /// calls had each. Sorted arrays rather than a dictionary: reports merge thousands of these,
    /// and a merge of sorted lists needs no hashing.
    public private(set) var codes: [UInt16] = []
    public private(set) var counts: [Int] = []

    public init() {}

    public var total: Int { counts.reduce(0, +) }
    public var isEmpty: Bool { codes.isEmpty }

    public mutating func add(milliseconds: Double, count: Int = 1) {
        add(code: Self.code(milliseconds: milliseconds), count: count)
    }

    mutating func add(code: UInt16, count: Int) {
        // Binary search for the code's place.
        var lo = 0
        var hi = codes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if codes[mid] < code { lo = mid + 1 } else { hi = mid }
        }
        if lo < codes.count, codes[lo] == code {
            counts[lo] += count
        } else {
            codes.insert(code, at: lo)
            counts.insert(count, at: lo)
        }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        guard !other.isEmpty else { return }
        guard !isEmpty else {
            self = other
            return
        }
        var mergedCodes: [UInt16] = []
        var mergedCounts: [Int] = []
        mergedCodes.reserveCapacity(codes.count + other.codes.count)
        mergedCounts.reserveCapacity(codes.count + other.codes.count)
        var i = 0
        var j = 0
        while i < codes.count || j < other.codes.count {
            if j == other.codes.count || (i < codes.count && codes[i] < other.codes[j]) {
                mergedCodes.append(codes[i])
                mergedCounts.append(counts[i])
                i += 1
            } else if i == codes.count || other.codes[j] < codes[i] {
                mergedCodes.append(other.codes[j])
                mergedCounts.append(other.counts[j])
                j += 1
            } else {
                mergedCodes.append(codes[i])
                mergedCounts.append(counts[i] + other.counts[j])
                i += 1
                j += 1
            }
        }
        codes = mergedCodes
        counts = mergedCounts
    }

    /// The nearest-rank percentile (`p` in 0...100): the smallest latency that at least `p` % of
    /// the calls did not exceed. `nil` with no calls.
    public func percentile(_ p: Double) -> Double? {
        let total = self.total
        guard total > 0 else { return nil }
        let rank = max(1, Int((p / 100 * Double(total)).rounded(.up)))
        var seen = 0
        for (code, count) in zip(codes, counts) {
            seen += count
            if seen >= rank { return Self.milliseconds(code: code) }
        }
        return Self.milliseconds(code: codes.last!)
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
        if digits < 100 {
            exponent -= 1
            digits = (value / scale(exponent)).rounded()
        }
        if digits >= 1000 {
            exponent += 1
            digits = (value / scale(exponent)).rounded()
        }
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

    /// Six bytes per distinct latency: the code and the count, little-endian, codes ascending.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(codes.count * 6)
        for (code, count) in zip(codes, counts) {
            let clamped = UInt32(clamping: count)
            bytes.append(UInt8(code & 0xff))
            bytes.append(UInt8(code >> 8))
            for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((clamped >> UInt32(shift)) & 0xff)) }
        }
        return bytes
    }

    /// Adds the counts of an `encoded()` histogram; bytes that do not make a whole entry are ignored.
    public mutating func merge(encoded bytes: [UInt8]) {
        merge(LatencyHistogram(encoded: bytes))
    }

    /// Reads an `encoded()` histogram. Stored ones are sorted; anything else is put in order.
    public init(encoded bytes: [UInt8]) {
        var i = 0
        codes.reserveCapacity(bytes.count / 6)
        counts.reserveCapacity(bytes.count / 6)
        var sorted = true
        while i + 6 <= bytes.count {
            let code = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            let count = UInt32(bytes[i + 2]) | UInt32(bytes[i + 3]) << 8 | UInt32(bytes[i + 4]) << 16 | UInt32(bytes[i + 5]) << 24
            if let last = codes.last, last >= code { sorted = false }
            codes.append(code)
            counts.append(Int(count))
            i += 6
        }
        if !sorted {
            let pairs = zip(codes, counts).sorted { $0.0 < $1.0 }
            codes = []
            counts = []
            for (code, count) in pairs { add(code: code, count: count) }
        }
    }
}
