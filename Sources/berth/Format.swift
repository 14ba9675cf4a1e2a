import BerthCore
import FoundationEssentials

/// How values appear in human output: times in RFC 3339 UTC, `-` for nothing.
enum Format {
    static func time(_ date: Date?) -> String {
        date.map(TimeExpression.format) ?? "-"
    }

    static func text(_ value: String?) -> String {
        guard let value, !value.isEmpty else { return "-" }
        return value
    }

    static func number(_ value: Int?) -> String {
        value.map(String.init) ?? "-"
    }

    static func number(_ value: Double?) -> String {
        guard let value else { return "-" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        // 0.000035, not 3.5e-05: as prices and learning rates are written.
        // Ten significant digits: prices and costs without floating-point noise.
        return abs(value) < 1e-3 && value != 0 ? HyperparameterCheck.plainDecimal(value) : CFormat.string("%.10g", value)
    }

    static func list(_ values: [String]) -> String {
        values.isEmpty ? "-" : values.joined(separator: ",")
    }

    static func yesNo(_ value: Bool) -> String {
        value ? "yes" : "no"
    }

    static func plural(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }

    /// A fraction done as a whole percent, rounded down so a job shows 100% only when it is done.
    static func percent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return "-" }
        let clamped = min(max(fraction, 0), 1)
        return "\(Int((clamped * 100 + 1e-9).rounded(.down)))%"
    }

    /// A loss with four decimals, so a column of them lines up.
    static func loss(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        return CFormat.string("%.4f", value)
    }
}
