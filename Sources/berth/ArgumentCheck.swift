import ArgumentParser
import BerthCore
import FoundationEssentials

/// Local checks of TIME, DUR and names, failing as the daemon would with `invalid-argument`.
enum ArgumentCheck {
    static func time(_ text: String?, option: String) throws(ValidationError) {
        guard let text else { return }
        guard TimeExpression.parse(text, now: Date()) != nil else {
            throw ValidationError(
                "\(option): '\(text)' is not a TIME: use 'now', RFC 3339 such as 2026-01-02T15:04:05Z, or an offset such as +2h or -7d"
            )
        }
    }

    /// `--from` and `--to`, each a TIME if given, the window ending after it starts.
    static func window(from: String?, to: String?) throws(ValidationError) {
        try time(from, option: "--from")
        try time(to, option: "--to")
        let now = Date()
        if let from, let to, let start = TimeExpression.parse(from, now: now),
            let end = TimeExpression.parse(to, now: now), start >= end
        {
            throw ValidationError("--from \(from) is not before --to \(to): give a window that ends after it starts")
        }
    }

    static func duration(_ text: String?, option: String) throws(ValidationError) {
        guard let text else { return }
        guard let seconds = TimeExpression.parseDuration(text), seconds > 0 else {
            throw ValidationError("\(option): '\(text)' is not a DUR: use a positive number with a unit, such as 90s, 30m, 8h or 2d")
        }
    }

    static func reservationName(_ name: String, field: String) throws(ValidationError) {
        do {
            try ReservationName.validate(name, field: field)
        } catch {
            throw ValidationError("\(field): \(error.message)")
        }
    }

    static func modelUnits(_ units: Int?) throws(ValidationError) {
        if let units, units < 1 {
            throw ValidationError("--units: must be at least 1 model unit, not \(units)")
        }
    }
}
