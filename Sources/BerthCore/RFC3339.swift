public import FoundationEssentials

/// RFC 3339 times in UTC as berth writes them, `2026-12-04T18:41:18Z` and
/// `2026-12-04T18:41:18.123Z`, read and written by position. A listing has a few times per row:
/// through `Date.ISO8601FormatStyle` (a calendar and its date components for each) they were a
/// tenth of the CLI's time for 1,000 jobs. Any other form (an offset, another fraction) or year
/// is left to the format style.
public enum RFC3339 {
    /// `2026-12-04T18:41:18Z` (whole seconds, the fraction cut off), or nil outside years
    /// 1900–9999.
    public static func wholeSeconds(_ date: Date) -> String? {
        let t = date.timeIntervalSince1970
        guard t.isFinite, t >= minimum, t < maximum else { return nil }
        return text(seconds: Int64(t.rounded(.down)), milliseconds: nil)
    }

    /// `2026-12-04T18:41:18.123Z`: the time rounded to the millisecond, or nil outside years
    /// 1900–9999.
    public static func milliseconds(_ date: Date) -> String? {
        let t = (date.timeIntervalSince1970 * 1000).rounded()
        guard t.isFinite, t >= minimum * 1000, t < maximum * 1000 else { return nil }
        let milliseconds = Int64(t)
        let seconds = milliseconds.floorDivided(by: 1000)
        return text(seconds: seconds, milliseconds: milliseconds - seconds * 1000)
    }

    /// `2026-12-04T18:41:18.123Z` for `seconds` since 1970 and `milliseconds` (0–999); without
    /// the fraction when `milliseconds` is nil. `seconds` must lie in years 1900–9999.
    static func text(seconds: Int64, milliseconds: Int64?) -> String {
        let days = seconds.floorDivided(by: 86_400)
        let second = Int(seconds - days * 86_400)
        let (year, month, day) = civil(days: days)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        append(Int(year), digits: 4, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        append(month, digits: 2, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        append(day, digits: 2, to: &bytes)
        bytes.append(UInt8(ascii: "T"))
        append(second / 3600, digits: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        append(second / 60 % 60, digits: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        append(second % 60, digits: 2, to: &bytes)
        if let milliseconds {
            bytes.append(UInt8(ascii: "."))
            append(Int(milliseconds), digits: 3, to: &bytes)
        }
        bytes.append(UInt8(ascii: "Z"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The time of `2026-12-04T18:41:18Z` or `2026-12-04T18:41:18.123Z`; nil for any other form
    /// or a field out of its range.
    public static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Date? {
        guard b.count == 20 || b.count == 24, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[b.count - 1] == UInt8(ascii: "Z"),
            let year = number(b, 0, 4), let month = number(b, 5, 2), let day = number(b, 8, 2),
            let hour = number(b, 11, 2), let minute = number(b, 14, 2), let second = number(b, 17, 2),
            year >= 1900, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 60
        else { return nil }
        var milliseconds = 0
        if b.count == 24 {
            guard b[19] == UInt8(ascii: "."), let fraction = number(b, 20, 3) else { return nil }
            milliseconds = fraction
        }
        let seconds = days(year: Int64(year), month: month, day: day) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        // From 2001 as `Date` counts, so the fraction is added as the format style adds it: to the
        // bit, the same time.
        return Date(timeIntervalSinceReferenceDate: Double(seconds - referenceDate) + Double(milliseconds) / 1000)
    }

    /// 2001-01-01T00:00:00Z, from which `Date` counts, in seconds since 1970.
    static let referenceDate: Int64 = 978_307_200

    /// 1900-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in seconds since 1970: the years read
    /// and written here. Before 1583 Foundation's calendar is the Julian one, which these
    /// computations (Gregorian throughout) do not follow.
    static let minimum: Double = -2_208_988_800
    static let maximum: Double = 253_402_300_800

    private static func number(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        var value = 0
        for i in start..<start + count {
            let digit = b[i] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }

    private static func append(_ value: Int, digits: Int, to bytes: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<digits { divisor *= 10 }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard Hinnant's
    /// `days_from_civil`).
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDivided(by: 400)
        let yearOfEra = y - era * 400
        let dayOfYear = Int64((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1)
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date of a day since 1970-01-01 (`civil_from_days`).
    static func civil(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
