import BerthCore
import BerthWire
import FoundationEssentials

/// `berth usage --advice`: one line per reservation that was oversized or undersized for its
/// use in the window, with what the change would save or cost a month.
enum UsageAdvice {
    static func render(_ report: UsageReportView) -> String {
        let lines = report.advice.compactMap(line)
        let window = "from \(Format.time(report.from)) to \(Format.time(report.to))"
        guard !lines.isEmpty else {
            return "Every reservation was the right size for its use \(window)."
        }
        return "Right-sizing \(window), at each reservation's price for its commitment (a month is 730 hours):\n"
            + lines.joined(separator: "\n")
    }

    /// The advice as a sentence; nil for a reservation of the right size.
    static func line(_ advice: SizingAdviceView) -> String? {
        guard advice.verdict != "right-sized" else { return nil }
        let held = "\(advice.reservation): \(units(advice.modelUnits))"
        let change = money(advice.monthlyCostChange)
        if advice.neededModelUnits == 0 {
            let unused = advice.purpose == "training" ? "no job ran" : "no call"
            return "\(held), \(unused) in the window: releasing it saves \(change)"
        }
        if advice.purpose == "training" {
            let share = percent(advice.runningShare ?? 0)
            return "\(held), a job ran \(share) of its reserved time, on at most \(units(advice.neededModelUnits)); "
                + "\(units(advice.neededModelUnits)) held only while jobs run: saves \(change)"
        }
        var used = "\(held), busiest minute used \(percent(advice.busiestMinuteShare ?? 0)) of the budget"
        if let throttled = advice.throttled, throttled > 0 {
            used += ", \(Format.plural(throttled, "call")) throttled"
        }
        let saves = advice.monthlyCostChange <= 0 ? "saves \(change)" : "costs \(change) more"
        return "\(used); \(units(advice.neededModelUnits)) would have served every call: \(saves)"
    }

    static func units(_ count: Int) -> String {
        count == 1 ? "1 model unit" : "\(count) model units"
    }

    /// Whole percents, or one decimal under 10 %, so that a little use does not read as none.
    static func percent(_ share: Double) -> String {
        let value = share * 100
        return value >= 10 || value == 0 ? CFormat.string("%.0f %%", value) : CFormat.string("%.1f %%", value)
    }

    static func money(_ amount: Double) -> String {
        UsageNumber.money(abs(amount)) + " a month"
    }
}
