public import FoundationEssentials

/// A request field that cannot be accepted, with what to do about it.
public struct FieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

public enum ReservationName {
    public static let rule = "[a-z0-9][a-z0-9-]{0,62}"

    /// Checks `[a-z0-9][a-z0-9-]{0,62}` by hand: the rule is small and this avoids a regex
    /// engine on a hot path.
    public static func validate(_ name: String, field: String = "name") throws(FieldError) {
        let bytes = Array(name.utf8)
        func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, bytes.count <= 63, isLowerAlnum(first),
            bytes.allSatisfy({ isLowerAlnum($0) || $0 == 0x2d })
        else {
            throw FieldError(
                field: field,
                message: "'\(name)' is not a valid name: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit"
            )
        }
    }
}

/// TIME and DUR of the command line: `now`, RFC 3339, offsets such as `+2h` or `-7d`;
/// durations such as `90s`, `30m`, `8h`, `2d`.
public enum TimeExpression {
    public static func parseDuration(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let value = Int(text.dropLast()), value >= 0 else { return nil }
        let seconds: Int
        switch unit {
        case "s": seconds = 1
        case "m": seconds = 60
        case "h": seconds = 3600
        case "d": seconds = 86_400
        case "w": seconds = 7 * 86_400
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: seconds)
        guard !overflow, product <= 100 * 365 * 86_400 else { return nil }
        return TimeInterval(product)
    }

    public static func parse(_ text: String, now: Date) -> Date? {
        let trimmed = text.trimmingBlanks()
        if trimmed == "now" { return now }
        if let sign = trimmed.first, sign == "+" || sign == "-",
            let duration = parseDuration(String(trimmed.dropFirst()))
        {
            return now.addingTimeInterval(sign == "+" ? duration : -duration)
        }
        return parseRFC3339(trimmed)
    }

    /// Swift's own ISO 8601 format style, not `ISO8601DateFormatter`: that one opens an ICU
    /// date formatter, which costs a CLI command a third of its run time.
    /// The form berth writes (`RFC3339`) is read by position; any other goes to the format style.
    public static func parseRFC3339(_ text: String) -> Date? {
        if let date = RFC3339.parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
    }

    public static func format(_ date: Date) -> String {
        RFC3339.wholeSeconds(date) ?? Date.ISO8601FormatStyle().format(date)
    }

    /// Durations as people write them: `2d3h`, `45m`, `30s`.
    public static func formatDuration(_ interval: TimeInterval) -> String {
        var rest = Int(interval.rounded())
        if rest == 0 { return "0s" }
        var parts: [String] = []
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            parts.append("\(rest / size)\(unit)")
            rest %= size
        }
        // Not `joined()`: the standard library's is not specialized for a slice, and its first
        // call looks up conformances at run time, a measurable part of `berth status`.
        return parts.prefix(2).reduce(into: "") { $0 += $1 }
    }
}

extension Date {
    /// The time to the second below, for what is shown in whole seconds (the capacity calendar, uptime).
    public var wholeSeconds: Date {
        Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down))
    }
}
