public import FoundationEssentials

/// Right-sizing advice for one reservation over a usage report's window: what it used of what
/// it held, the fewest model units that would have done, and what that change is worth a month.
///
/// For an inference reservation the measure is its busiest minute against its budget, and the
/// fewest model units whose budget covers every minute's demand (the tokens served, plus the
/// throttled calls at the size of that minute's served calls), so that nothing is throttled.
/// For a training reservation it is the share of its reserved time a job was running, and the
/// most model units its jobs ran on at once.
public struct SizingAdvice: Sendable, Equatable {
    public enum Verdict: String, Sendable, Equatable {
        /// It held more than it used: fewer units (or none, or only while jobs run) would have done.
        case oversized
        /// Calls were throttled: more units would have served them.
        case undersized
        case rightSized = "right-sized"
    }

    /// Its name in the report (name#id where two had the same name).
    public var reservation: String
    public var owner: String
    public var model: String
    public var purpose: Purpose
    public var commitment: Commitment
    public var modelUnits: Int
    /// What one model unit costs an hour at its commitment.
    public var pricePerModelUnitHour: Double
    /// Inference: the minute whose served tokens were the largest share of its budget.
    public var busiestMinute: Date?
    public var busiestMinuteShare: Double?
    /// Inference: calls refused for being over the budget.
    public var throttled: Int?
    /// Training: running time ÷ the time it held units, inside the window.
    public var runningShare: Double?
    /// The fewest model units that would have served every call without a throttle (inference),
    /// or run its jobs as they ran (training); 0 when nothing used it in the window.
    public var neededModelUnits: Int
    public var verdict: Verdict
    /// What following the advice would change a month (negative: a saving), at its price.
    public var monthlyCostChange: Double

    /// Hours in an average month (365 × 24 ÷ 12): how a price per hour becomes one per month.
    public static let hoursPerMonth = 730.0
    /// A training reservation whose jobs ran less than this share of its time is oversized.
    public static let runningShareFloor = 0.5

    public init(
        reservation: String,
        owner: String,
        model: String,
        purpose: Purpose,
        commitment: Commitment,
        modelUnits: Int,
        pricePerModelUnitHour: Double,
        busiestMinute: Date? = nil,
        busiestMinuteShare: Double? = nil,
        throttled: Int? = nil,
        runningShare: Double? = nil,
        neededModelUnits: Int,
        verdict: Verdict,
        monthlyCostChange: Double
    ) {
        self.reservation = reservation
        self.owner = owner
        self.model = model
        self.purpose = purpose
        self.commitment = commitment
        self.modelUnits = modelUnits
        self.pricePerModelUnitHour = pricePerModelUnitHour
        self.busiestMinute = busiestMinute
        self.busiestMinuteShare = busiestMinuteShare
        self.throttled = throttled
        self.runningShare = runningShare
        self.neededModelUnits = neededModelUnits
        self.verdict = verdict
        self.monthlyCostChange = monthlyCostChange
    }

    /// The advice for `r` over `window`, or nil when it held no units in it. `minutes` are its
    /// rows of `reservation_minutes` (others and those outside the window are ignored).
    public static func advise(
        _ r: ReservationFacts,
        name: String,
        minutes: [ReservationMinute],
        window: (start: Date, end: Date),
        now: Date
    ) -> SizingAdvice? {
        let held = union(r.leases.map { ($0.start, min($0.end ?? now, now)) }, within: window)
        let heldSeconds = held.reduce(0.0) { $0 + $1.1.timeIntervalSince($1.0) }
        guard heldSeconds > 0 else { return nil }
        let units = max(1, r.modelUnits)
        var advice = SizingAdvice(
            reservation: name,
            owner: r.owner,
            model: r.model,
            purpose: r.purpose,
            commitment: r.commitment,
            modelUnits: units,
            pricePerModelUnitHour: r.pricePerModelUnitHour,
            neededModelUnits: units,
            verdict: .rightSized,
            monthlyCostChange: 0
        )
        let perMonth = r.pricePerModelUnitHour * hoursPerMonth
        switch r.purpose {
        case .inference:
            let mine = minutes.filter { $0.reservationID == r.id && $0.minute >= window.start && $0.minute < window.end }
            let tpm = Double(max(1, r.tokensPerMinute))
            advice.throttled = mine.reduce(0) { $0 + $1.throttled }
            let busiest = mine.filter { $0.budget > 0 }.max { share($0) < share($1) }
            advice.busiestMinute = busiest?.minute
            advice.busiestMinuteShare = round(busiest.map(share) ?? 0)
            // A throttled call's size is unknown (it was never served): take it as the average
            // served call of its minute, else of the window.
            let served = mine.reduce(0) { $0 + $1.calls - $1.throttled }
            let windowAverage = served > 0 ? Double(mine.reduce(0) { $0 + $1.tokens }) / Double(served) : 0
            var needed = mine.contains { $0.calls > 0 } ? 1 : 0
            for minute in mine where minute.calls > 0 {
                let budgetUnits = minute.budget / max(1, r.tokensPerMinute)
                if minute.throttled > 0 {
                    let servedCalls = minute.calls - minute.throttled
                    let average = servedCalls > 0 ? Double(minute.tokens) / Double(servedCalls) : windowAverage
                    let demand = Double(minute.tokens) + Double(minute.throttled) * average
                    // However small the estimate, a throttle means its budget was too small.
                    needed = max(needed, Int((demand / tpm).rounded(.up)), budgetUnits + 1)
                } else {
                    // The bucket lets a minute serve a little over its budget; with no throttle,
                    // that minute's units were enough.
                    needed = max(needed, min(Int((Double(minute.tokens) / tpm).rounded(.up)), max(1, budgetUnits)))
                }
            }
            advice.neededModelUnits = needed
            advice.verdict = needed < units ? .oversized : needed > units ? .undersized : .rightSized
            advice.monthlyCostChange = round(Double(needed - units) * perMonth)
        case .training:
            let running = union(r.jobs.compactMap { job in job.startedAt.map { ($0, min(job.endedAt ?? now, now)) } }, within: window)
            let runningSeconds = intersection(running, held).reduce(0.0) { $0 + $1.1.timeIntervalSince($1.0) }
            let share = min(1, runningSeconds / heldSeconds)
            advice.runningShare = round(share)
            let peak = peakUnits(r.jobs, within: window, now: now)
            let needed = peak == 0 ? 0 : (peak + max(1, r.unitsPerModelUnit) - 1) / max(1, r.unitsPerModelUnit)
            advice.neededModelUnits = needed
            if needed < units || share < runningShareFloor {
                advice.verdict = .oversized
                // The units its jobs used, held only while they ran.
                advice.monthlyCostChange = round((share * Double(needed) - Double(units)) * perMonth)
            }
        }
        return advice
    }

    static func share(_ minute: ReservationMinute) -> Double {
        minute.budget > 0 ? Double(minute.tokens) / Double(minute.budget) : 0
    }

    /// The most compute units the jobs ran on at one moment inside the window.
    static func peakUnits(_ jobs: [JobFacts], within window: (start: Date, end: Date), now: Date) -> Int {
        var changes: [(at: Date, units: Int)] = []
        for job in jobs {
            guard let started = job.startedAt else { continue }
            let start = max(started, window.start)
            let end = min(job.endedAt ?? now, now, window.end)
            guard end > start else { continue }
            changes.append((start, job.units))
            changes.append((end, -job.units))
        }
        // Ends before starts at the same instant: a job that follows another does not overlap it.
        changes.sort { ($0.at, $0.units) < ($1.at, $1.units) }
        var current = 0
        var peak = 0
        for change in changes {
            current += change.units
            peak = max(peak, current)
        }
        return peak
    }

    /// Sorted, non-overlapping spans covering the same time inside the window.
    static func union(_ spans: [(Date, Date)], within window: (start: Date, end: Date)) -> [(Date, Date)] {
        var out: [(Date, Date)] = []
        for (s, e) in spans.map({ (max($0.0, window.start), min($0.1, window.end)) }).filter({ $0.1 > $0.0 }).sorted(by: { $0.0 < $1.0 }) {
            if let last = out.last, s <= last.1 {
                out[out.count - 1].1 = max(last.1, e)
            } else {
                out.append((s, e))
            }
        }
        return out
    }

    /// The time both sorted span lists cover.
    static func intersection(_ a: [(Date, Date)], _ b: [(Date, Date)]) -> [(Date, Date)] {
        var out: [(Date, Date)] = []
        for (s1, e1) in a {
            for (s2, e2) in b where s2 < e1 && s1 < e2 { out.append((max(s1, s2), min(e1, e2))) }
        }
        return out
    }

    /// Six decimals, as the rest of the report.
    static func round(_ value: Double) -> Double { (value * 1_000_000).rounded() / 1_000_000 }
}
