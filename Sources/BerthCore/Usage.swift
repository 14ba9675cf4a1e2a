public import FoundationEssentials

/// How a usage report's rows are cut.
public enum UsageGrouping: String, Codable, Sendable, CaseIterable {
    case reservation, model, owner, day
}

/// What a usage report is asked for: the window `[from, to)`, the grouping, and the time now
/// (leases and jobs still running count up to now, never into the future).
public struct UsageQuery: Sendable {
    public var from: Date
    public var to: Date
    public var now: Date
    public var grouping: UsageGrouping
    /// A reservation with no job running and no call for longer than this is idle.
    public var idleThreshold: TimeInterval
    /// Points of each row's series over the window, for charts and sparklines.
    public var buckets: Int

    public init(from: Date, to: Date, now: Date, grouping: UsageGrouping, idleThreshold: TimeInterval, buckets: Int) {
        self.from = from
        self.to = to
        self.now = now
        self.grouping = grouping
        self.idleThreshold = idleThreshold
        self.buckets = max(1, buckets)
    }
}

/// A span of time; `end == nil` is still going (a held lease, a running job).
public struct Span: Sendable, Equatable {
    public var start: Date
    public var end: Date?
    public init(start: Date, end: Date?) {
        self.start = start
        self.end = end
    }
}

/// What the report needs of one job.
public struct JobFacts: Sendable, Equatable {
    public var status: JobStatus
    public var submittedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    /// Compute units it ran on.
    public var units: Int
    /// CPU time its runner used and the most memory it held, as the kernel counted them
    /// (known once it has ended, where berthd could confine it).
    public var cpuSeconds: Double?
    public var peakMemoryBytes: Int64?

    public init(
        status: JobStatus,
        submittedAt: Date,
        startedAt: Date?,
        endedAt: Date?,
        units: Int,
        cpuSeconds: Double? = nil,
        peakMemoryBytes: Int64? = nil
    ) {
        self.status = status
        self.submittedAt = submittedAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.units = units
        self.cpuSeconds = cpuSeconds
        self.peakMemoryBytes = peakMemoryBytes
    }
}

/// What the report needs of one reservation: its leases, jobs and call activity near the window.
public struct ReservationFacts: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    public var model: String
    public var purpose: Purpose
    public var commitment: Commitment
    public var unitsPerModelUnit: Int
    public var tokensPerMinute: Int
    /// The price of one model unit for an hour at its commitment.
    public var pricePerModelUnitHour: Double
    /// Model units it holds now (or held last): what right-sizing advice compares against.
    public var modelUnits: Int
    public var leases: [Span]
    public var jobs: [JobFacts]
    /// Spans in which calls kept coming (gaps of a minute or less joined).
    public var activity: [Span]
    /// Spans in which every GPU it held sat under the idle threshold: a job running then was
    /// not using them, so the time counts as idle.
    public var gpuQuiet: [Span]

    public init(
        id: Int64,
        name: String,
        owner: String,
        model: String,
        purpose: Purpose,
        commitment: Commitment,
        unitsPerModelUnit: Int,
        tokensPerMinute: Int,
        pricePerModelUnitHour: Double,
        modelUnits: Int = 1,
        leases: [Span],
        jobs: [JobFacts],
        activity: [Span],
        gpuQuiet: [Span] = []
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.model = model
        self.purpose = purpose
        self.commitment = commitment
        self.unitsPerModelUnit = unitsPerModelUnit
        self.tokensPerMinute = tokensPerMinute
        self.pricePerModelUnitHour = pricePerModelUnitHour
        self.modelUnits = modelUnits
        self.leases = leases
        self.jobs = jobs
        self.activity = activity
        self.gpuQuiet = gpuQuiet
    }
}

/// Calls counted together: an hour of the ledger's rollup, or the calls of a part-hour at the
/// window's edges. `at` places them in time (an hour's start, or the window's edge).
public struct InvocationSlice: Sendable, Equatable {
    public var at: Date
    public var reservationID: Int64?
    public var model: String
    public var owner: String
    public var calls: Int
    public var served: Int
    public var throttled: Int
    public var inputTokens: Int
    public var outputTokens: Int
    /// Tokens the reservation's own units served (not spilled on demand): its busy time.
    public var provisionedTokens: Int
    public var cost: Double
    /// Latencies of the served calls.
    public var latency: LatencyHistogram

    public init(
        at: Date,
        reservationID: Int64?,
        model: String,
        owner: String,
        calls: Int = 0,
        served: Int = 0,
        throttled: Int = 0,
        inputTokens: Int = 0,
        outputTokens: Int = 0,
        provisionedTokens: Int = 0,
        cost: Double = 0,
        latency: LatencyHistogram = .init()
    ) {
        self.at = at
        self.reservationID = reservationID
        self.model = model
        self.owner = owner
        self.calls = calls
        self.served = served
        self.throttled = throttled
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.provisionedTokens = provisionedTokens
        self.cost = cost
        self.latency = latency
    }
}

/// Tokens a reservation served over `[at, at + seconds)`: a minute of `reservation_minutes`, or
/// an hour (or the part-hour at a window's edge) for long windows. The ledger knows no finer
/// when, so the series spreads them evenly over that span.
public struct TokenSample: Sendable, Equatable {
    public var reservationID: Int64
    public var at: Date
    public var tokens: Int
    public var seconds: TimeInterval
    public init(reservationID: Int64, at: Date, tokens: Int, seconds: TimeInterval = 60) {
        self.reservationID = reservationID
        self.at = at
        self.tokens = tokens
        self.seconds = seconds
    }
}

/// One minute of an inference reservation's calls, as `reservation_minutes` keeps it: the
/// tokens its own units served, its calls and throttled calls, and its budget that minute.
public struct ReservationMinute: Sendable, Equatable {
    public var reservationID: Int64
    public var minute: Date
    public var tokens: Int
    public var calls: Int
    public var throttled: Int
    public var budget: Int
    public init(reservationID: Int64, minute: Date, tokens: Int, calls: Int, throttled: Int, budget: Int) {
        self.reservationID = reservationID
        self.minute = minute
        self.tokens = tokens
        self.calls = calls
        self.throttled = throttled
        self.budget = budget
    }
}

/// Everything a report is computed from, read from the ledger in one go.
public struct UsageFacts: Sendable {
    public var reservations: [ReservationFacts]
    public var invocations: [InvocationSlice]
    public var tokenSamples: [TokenSample]
    /// The window's minutes of inference reservations, for right-sizing advice.
    public var minutes: [ReservationMinute]
    public init(reservations: [ReservationFacts], invocations: [InvocationSlice], tokenSamples: [TokenSample], minutes: [ReservationMinute] = []) {
        self.reservations = reservations
        self.invocations = invocations
        self.tokenSamples = tokenSamples
        self.minutes = minutes
    }
}

// MARK: - The report

public struct JobCounts: Sendable, Equatable {
    public var queued = 0, running = 0, stopping = 0, completed = 0, failed = 0, stopped = 0
    public init() {}

    public var total: Int { queued + running + stopping + completed + failed + stopped }

    mutating func count(_ status: JobStatus) {
        switch status {
        case .queued: queued += 1
        case .running: running += 1
        case .stopping: stopping += 1
        case .completed: completed += 1
        case .failed: failed += 1
        case .stopped: stopped += 1
        }
    }

    mutating func add(_ other: JobCounts) {
        queued += other.queued
        running += other.running
        stopping += other.stopping
        completed += other.completed
        failed += other.failed
        stopped += other.stopped
    }
}

/// A row's values over the window, one point per bucket: average units reserved and busy, and
/// for inference reservations tokens per minute against the budget.
public struct UsageSeries: Sendable, Equatable {
    public var reservedUnits: [Double]
    public var busyUnits: [Double]
    public var tokensPerMinute: [Double]
    public var budgetPerMinute: [Double]

    init(buckets: Int) {
        reservedUnits = Array(repeating: 0, count: buckets)
        busyUnits = reservedUnits
        tokensPerMinute = reservedUnits
        budgetPerMinute = reservedUnits
    }

    mutating func add(_ other: UsageSeries) {
        for i in reservedUnits.indices {
            reservedUnits[i] += other.reservedUnits[i]
            busyUnits[i] += other.busyUnits[i]
            tokensPerMinute[i] += other.tokensPerMinute[i]
            budgetPerMinute[i] += other.budgetPerMinute[i]
        }
    }
}

public struct UsageRow: Sendable, Equatable {
    /// The reservation name, model id, owner or day (`2026-11-01`); `total` for the totals row.
    public var key: String
    /// For rows of one reservation.
    public var owner: String?
    public var model: String?
    public var purpose: Purpose?
    public var commitment: Commitment?
    public var reservedUnitHours: Double = 0
    public var busyUnitHours: Double = 0
    /// Busy ÷ reserved unit-hours; 0 when nothing was reserved.
    public var utilization: Double = 0
    /// CPU time the jobs' runners really used, as the kernel counted it, next to the
    /// unit-hours they held; and the most memory one of them held.
    public var cpuSeconds: Double = 0
    public var peakMemoryBytes: Int64?
    public var jobs = JobCounts()
    /// Calls of every outcome: served, throttled, refused, failed, cancelled.
    public var invocations = 0
    public var served = 0
    public var throttled = 0
    public var inputTokens = 0
    public var outputTokens = 0
    public var latencyP50Ms: Double?
    public var latencyP99Ms: Double?
    /// Model units × hours × the price for the commitment.
    public var provisionedCost: Double = 0
    /// Calls served on demand, per 1,000 input and output tokens.
    public var onDemandCost: Double = 0
    public var cost: Double = 0
    /// Hours of idle spells longer than the threshold, and what the units cost meanwhile.
    public var idleHours: Double = 0
    public var idleCost: Double = 0
    public var series: UsageSeries

    init(key: String, buckets: Int) {
        self.key = key
        self.series = UsageSeries(buckets: buckets)
    }
}

/// A reservation that sat idle longer than the threshold, with what that cost.
public struct IdleReservation: Sendable, Equatable {
    public var reservation: String
    public var owner: String
    public var model: String
    public var idleHours: Double
    public var idleCost: Double
    /// The idle spells, clipped to the window.
    public var periods: [IdlePeriod]
}

public struct IdlePeriod: Sendable, Equatable {
    public var start: Date
    public var end: Date
    public var hours: Double
    public init(start: Date, end: Date, hours: Double) {
        self.start = start
        self.end = end
        self.hours = hours
    }
}

public struct UsageReport: Sendable, Equatable {
    public var from: Date
    public var to: Date
    public var by: UsageGrouping
    public var idleThresholdSeconds: Double
    /// The series' first bucket starts at `from`; each is this long.
    public var bucketSeconds: Double
    public var rows: [UsageRow]
    public var totals: UsageRow
    public var idle: [IdleReservation]
    /// Right-sizing advice for every reservation that held units in the window, by name.
    public var advice: [SizingAdvice] = []

    /// Computes the report: pure, from the facts and the query alone.
    public static func compute(_ facts: UsageFacts, _ query: UsageQuery) -> UsageReport {
        var builder = UsageReportBuilder(query: query, reservations: facts.reservations)
        // 1. Reservations: reserved and busy unit-hours, provisioned cost, jobs, idle spells.
        for reservation in facts.reservations { builder.add(reservation, samples: facts.tokenSamples) }
        // 2. Calls: counts, tokens, on-demand cost, latency.
        for slice in facts.invocations { builder.add(slice) }
        // 3. Finish: utilization, percentiles, money rounding, totals.
        var report = builder.finish()
        // 4. Advice: what each reservation would have needed.
        let minutes = Dictionary(grouping: facts.minutes, by: \.reservationID)
        let window = (start: report.from, end: min(report.to, query.now))
        report.advice = facts.reservations.compactMap { r in
            SizingAdvice.advise(r, name: builder.names[r.id] ?? r.name, minutes: minutes[r.id] ?? [], window: window, now: query.now)
        }.sorted { $0.reservation < $1.reservation }
        return report
    }
}

// MARK: - Computing it

private struct UsageReportBuilder {
    let query: UsageQuery
    let window: (start: Date, end: Date)
    let bucketSeconds: Double
    var rows: [String: UsageRow] = [:]
    var latencies: [String: DenseLatencies] = [:]
    var idle: [IdleReservation] = []
    /// Reservation id → row key, for the calls.
    var keys: [Int64: ReservationFacts] = [:]
    var names: [Int64: String] = [:]

    init(query: UsageQuery, reservations: [ReservationFacts]) {
        self.query = query
        self.window = (query.from, max(query.from, query.to))
        self.bucketSeconds = window.end.timeIntervalSince(window.start) / Double(query.buckets)
        // Names are reused once a reservation ends: two of them in one report keep apart.
        let counts = Dictionary(reservations.map { ($0.name, 1) }, uniquingKeysWith: +)
        for r in reservations {
            keys[r.id] = r
            names[r.id] = counts[r.name, default: 0] > 1 ? "\(r.name)#\(r.id)" : r.name
        }
    }

    /// The parts of the window the rows cover: the whole window, or each UTC day of it.
    func slices() -> [(key: String?, start: Date, end: Date)] {
        guard query.grouping == .day else { return [(nil, window.start, window.end)] }
        var out: [(String?, Date, Date)] = []
        var day = UsageReportBuilder.dayStart(window.start)
        while day < window.end {
            let next = day.addingTimeInterval(86_400)
            out.append((UsageReportBuilder.dayKey(day), max(day, window.start), min(next, window.end)))
            day = next
        }
        return out
    }

    static func dayStart(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
    }

    static func dayKey(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return CFormat.string("%04ld-%02ld-%02ld", c.year!, c.month!, c.day!)
    }

    func key(reservation r: ReservationFacts, day: String?) -> String {
        switch query.grouping {
        case .reservation: names[r.id] ?? r.name
        case .model: r.model
        case .owner: r.owner
        case .day: day ?? ""
        }
    }

    mutating func row(_ key: String, reservation r: ReservationFacts? = nil) -> String {
        if rows[key] == nil {
            var row = UsageRow(key: key, buckets: query.buckets)
            if query.grouping == .reservation, let r {
                row.owner = r.owner
                row.model = r.model
                row.purpose = r.purpose
                row.commitment = r.commitment
            }
            rows[key] = row
        }
        return key
    }

    /// Seconds of `span` (open ends run to now) inside `[start, end)`.
    func overlap(_ span: Span, _ start: Date, _ end: Date) -> Double {
        let spanEnd = min(span.end ?? query.now, query.now)
        let lo = max(span.start, start)
        let hi = min(spanEnd, end)
        return max(0, hi.timeIntervalSince(lo))
    }

    /// The CPU time ended jobs used inside `[start, end)`, and the most memory one of them held.
    /// The kernel counts a job's CPU time as a whole: a window holding part of its run holds
    /// that share of it, and a job too short to have a run time counts where it ended.
    static func cpuUsage(_ jobs: [JobFacts], _ start: Date, _ end: Date) -> (cpuSeconds: Double, peakMemoryBytes: Int64?) {
        var cpuSeconds = 0.0
        var peak: Int64?
        for job in jobs {
            guard let started = job.startedAt, let ended = job.endedAt, ended > start, started < end || started == ended else { continue }
            let wall = ended.timeIntervalSince(started)
            if let cpu = job.cpuSeconds {
                if wall > 0 {
                    cpuSeconds += cpu * max(0, min(ended, end).timeIntervalSince(max(started, start))) / wall
                } else if ended >= start, ended < end {
                    cpuSeconds += cpu
                }
            }
            peak = larger(peak, job.peakMemoryBytes)
        }
        return (cpuSeconds, peak)
    }

    static func larger(_ a: Int64?, _ b: Int64?) -> Int64? {
        guard let a else { return b }
        guard let b else { return a }
        return max(a, b)
    }

    func unitSeconds(_ leases: [Span], _ start: Date, _ end: Date) -> Double {
        leases.reduce(0) { $0 + overlap($1, start, end) }
    }

    mutating func add(_ r: ReservationFacts, samples: [TokenSample]) {
        let upmu = Double(max(1, r.unitsPerModelUnit))
        let spells = idleSpells(r)
        let mySamples = samples.filter { $0.reservationID == r.id }
        var idleTotal = 0.0
        var idleCostTotal = 0.0
        var periods: [IdlePeriod] = []
        for slice in slices() {
            let reservedSeconds = unitSeconds(r.leases, slice.start, slice.end)
            let jobSeconds = r.jobs.reduce(0.0) { sum, job in
                guard let started = job.startedAt else { return sum }
                return sum + overlap(Span(start: started, end: job.endedAt), slice.start, slice.end) * Double(job.units)
            }
            var jobs = JobCounts()
            for job in r.jobs where job.submittedAt >= slice.start && job.submittedAt < slice.end { jobs.count(job.status) }
            let used = Self.cpuUsage(r.jobs, slice.start, slice.end)
            // Idle spells inside this slice: wall-clock hours and the unit-hours held meanwhile.
            var idleSeconds = 0.0
            var idleUnitSeconds = 0.0
            for spell in spells {
                let lo = max(spell.start, slice.start)
                let hi = min(spell.end, slice.end)
                guard hi > lo else { continue }
                idleSeconds += hi.timeIntervalSince(lo)
                idleUnitSeconds += unitSeconds(r.leases, lo, hi)
                periods.append(IdlePeriod(start: lo, end: hi, hours: hi.timeIntervalSince(lo) / 3600))
            }
            let touched = reservedSeconds > 0 || jobs.total > 0 || jobSeconds > 0 || used.cpuSeconds > 0
            guard touched else { continue }
            let key = row(key(reservation: r, day: slice.key), reservation: r)
            let price = r.pricePerModelUnitHour / upmu / 3600
            rows[key]!.reservedUnitHours += reservedSeconds / 3600
            // Jobs only for now; served tokens are added with the calls, then capped in `finish`.
            rows[key]!.busyUnitHours += min(reservedSeconds, jobSeconds) / 3600
            rows[key]!.jobs.add(jobs)
            rows[key]!.cpuSeconds += used.cpuSeconds
            rows[key]!.peakMemoryBytes = Self.larger(rows[key]!.peakMemoryBytes, used.peakMemoryBytes)
            rows[key]!.provisionedCost += reservedSeconds * price
            rows[key]!.idleHours += idleSeconds / 3600
            rows[key]!.idleCost += idleUnitSeconds * price
            idleTotal += idleSeconds / 3600
            idleCostTotal += idleUnitSeconds * price
            rows[key]!.series.add(series(r, samples: mySamples, slice: (slice.start, slice.end)))
        }
        if idleTotal > 0 {
            idle.append(
                IdleReservation(
                    reservation: names[r.id] ?? r.name,
                    owner: r.owner,
                    model: r.model,
                    idleHours: idleTotal,
                    idleCost: idleCostTotal,
                    periods: periods
                )
            )
        }
    }

    /// Busy unit-hours for served tokens: the time the reservation's model units need for them at
    /// their rated throughput (tokens ÷ tokens per minute model-unit-minutes).
    func serveUnitSeconds(tokens: Double, _ r: ReservationFacts) -> Double {
        tokens / Double(max(1, r.tokensPerMinute)) * Double(max(1, r.unitsPerModelUnit)) * 60
    }

    func series(_ r: ReservationFacts, samples: [TokenSample], slice: (start: Date, end: Date)) -> UsageSeries {
        var s = UsageSeries(buckets: query.buckets)
        guard bucketSeconds > 0 else { return s }
        for i in 0..<query.buckets {
            let lo = max(window.start.addingTimeInterval(Double(i) * bucketSeconds), slice.start)
            let hi = min(window.start.addingTimeInterval(Double(i + 1) * bucketSeconds), slice.end)
            guard hi > lo else { continue }
            let reserved = unitSeconds(r.leases, lo, hi)
            let jobs = r.jobs.reduce(0.0) { sum, job in
                guard let started = job.startedAt else { return sum }
                return sum + overlap(Span(start: started, end: job.endedAt), lo, hi) * Double(job.units)
            }
            s.reservedUnits[i] = reserved / bucketSeconds
            s.busyUnits[i] = jobs / bucketSeconds
            if r.purpose == .inference {
                s.budgetPerMinute[i] = reserved / Double(max(1, r.unitsPerModelUnit)) * Double(r.tokensPerMinute) / bucketSeconds
            }
        }
        // Calls are served only while the reservation holds units: a sample's tokens belong to
        // the part of its span inside that, never to the time before the reservation began.
        let held =
            r.leases.isEmpty
            ? nil
            : (
                start: r.leases.map(\.start).min()!,
                end: r.leases.contains { $0.end == nil } ? query.now : r.leases.compactMap(\.end).max()!
            )
        for sample in samples {
            var lo = sample.at
            var hi = sample.at.addingTimeInterval(max(0, sample.seconds))
            if let held {
                lo = max(lo, held.start)
                hi = min(hi, max(held.start, held.end))
            }
            guard hi > lo, sample.tokens > 0 else { continue }
            let perSecond = Double(sample.tokens) / hi.timeIntervalSince(lo)
            // Only the part inside this slice of the window is drawn here.
            let from = max(lo, slice.start, window.start)
            let to = min(hi, slice.end, window.end)
            guard to > from else { continue }
            let first = max(0, Int(from.timeIntervalSince(window.start) / bucketSeconds))
            let last = min(query.buckets - 1, Int((to.timeIntervalSince(window.start) / bucketSeconds).rounded(.up)) - 1)
            guard first <= last else { continue }
            for i in first...last {
                let bucketStart = window.start.addingTimeInterval(Double(i) * bucketSeconds)
                let seconds = min(to, bucketStart.addingTimeInterval(bucketSeconds)).timeIntervalSince(max(from, bucketStart))
                guard seconds > 0 else { continue }
                let tokens = perSecond * seconds
                s.tokensPerMinute[i] += tokens / bucketSeconds * 60
                s.busyUnits[i] = min(s.reservedUnits[i], s.busyUnits[i] + serveUnitSeconds(tokens: tokens, r) / bucketSeconds)
            }
        }
        return s
    }

    /// Spells inside the reservation's leases with no job running and no call, longer than the
    /// threshold. Looks a threshold beyond the window on both sides, so a spell that began
    /// before the window still counts from its real start; never past now.
    func idleSpells(_ r: ReservationFacts) -> [(start: Date, end: Date)] {
        let lo = window.start.addingTimeInterval(-query.idleThreshold)
        let hi = min(window.end.addingTimeInterval(query.idleThreshold), query.now)
        guard hi > lo else { return [] }
        // A single call is a span of no length, and still breaks a spell.
        func clipped(_ spans: [Span]) -> [(Date, Date)] {
            spans.compactMap { span in
                let s = max(span.start, lo)
                let e = min(span.end ?? query.now, hi)
                return e >= s ? (s, e) : nil
            }
        }
        let held = Self.union(clipped(r.leases))
        // A job keeps a reservation busy only while its GPUs work; a call always does.
        let jobs = Self.subtract(
            Self.union(clipped(r.jobs.compactMap { job in job.startedAt.map { Span(start: $0, end: job.endedAt) } })),
            Self.union(clipped(r.gpuQuiet))
        )
        let busy = Self.union(jobs + clipped(r.activity))
        var spells: [(start: Date, end: Date)] = []
        for (start, end) in held {
            var cursor = start
            for (bs, be) in busy where be > cursor && bs < end {
                if bs > cursor { spells.append((cursor, bs)) }
                cursor = max(cursor, be)
            }
            if cursor < end { spells.append((cursor, end)) }
        }
        return spells.filter { $0.end.timeIntervalSince($0.start) > query.idleThreshold }
    }

    /// The time of `spans` outside `removed`; both sorted and non-overlapping.
    static func subtract(_ spans: [(Date, Date)], _ removed: [(Date, Date)]) -> [(Date, Date)] {
        guard !removed.isEmpty else { return spans }
        var out: [(Date, Date)] = []
        for (start, end) in spans {
            if start == end {
                // A moment (a job that began and ended at once) stays unless a removed span holds it.
                if !removed.contains(where: { $0.0 <= start && start < $0.1 }) { out.append((start, end)) }
                continue
            }
            var cursor = start
            for (rs, re) in removed where re > cursor && rs < end {
                if rs > cursor { out.append((cursor, rs)) }
                cursor = max(cursor, re)
            }
            if cursor < end { out.append((cursor, end)) }
        }
        return out
    }

    /// Sorted, non-overlapping spans covering the same time.
    static func union(_ spans: [(Date, Date)]) -> [(Date, Date)] {
        var out: [(Date, Date)] = []
        for (s, e) in spans.sorted(by: { $0.0 < $1.0 }) {
            if let last = out.last, s <= last.1 {
                out[out.count - 1].1 = max(last.1, e)
            } else {
                out.append((s, e))
            }
        }
        return out
    }

    mutating func add(_ slice: InvocationSlice) {
        guard slice.at >= window.start, slice.at < window.end else { return }
        let r = slice.reservationID.flatMap { keys[$0] }
        let day = query.grouping == .day ? Self.dayKey(slice.at) : nil
        let key: String
        switch query.grouping {
        case .reservation:
            key = r.map { names[$0.id] ?? $0.name } ?? slice.reservationID.map { "reservation#\($0)" } ?? "on-demand:\(slice.model)"
        case .model: key = slice.model
        case .owner: key = slice.owner
        case .day: key = day!
        }
        _ = row(key, reservation: r)
        rows[key]!.invocations += slice.calls
        rows[key]!.served += slice.served
        rows[key]!.throttled += slice.throttled
        rows[key]!.inputTokens += slice.inputTokens
        rows[key]!.outputTokens += slice.outputTokens
        rows[key]!.onDemandCost += slice.cost
        if let r, slice.provisionedTokens > 0 {
            rows[key]!.busyUnitHours += serveUnitSeconds(tokens: Double(slice.provisionedTokens), r) / 3600
        }
        latencies[key, default: DenseLatencies()].add(slice.latency)
    }

    mutating func finish() -> UsageReport {
        var total = UsageRow(key: "total", buckets: query.buckets)
        var allLatencies = LatencyHistogram()
        var out: [UsageRow] = []
        for key in rows.keys.sorted() {
            var row = rows[key]!
            // Jobs and served tokens together never make a reservation busier than it was held.
            row.busyUnitHours = min(row.busyUnitHours, row.reservedUnitHours)
            let histogram = latencies[key]?.histogram ?? LatencyHistogram()
            row.latencyP50Ms = histogram.percentile(50)
            row.latencyP99Ms = histogram.percentile(99)
            allLatencies.merge(histogram)
            total.reservedUnitHours += row.reservedUnitHours
            total.busyUnitHours += row.busyUnitHours
            total.cpuSeconds += row.cpuSeconds
            total.peakMemoryBytes = UsageReportBuilder.larger(total.peakMemoryBytes, row.peakMemoryBytes)
            total.jobs.add(row.jobs)
            total.invocations += row.invocations
            total.served += row.served
            total.throttled += row.throttled
            total.inputTokens += row.inputTokens
            total.outputTokens += row.outputTokens
            total.provisionedCost += row.provisionedCost
            total.onDemandCost += row.onDemandCost
            total.idleHours += row.idleHours
            total.idleCost += row.idleCost
            total.series.add(row.series)
            out.append(Self.rounded(row))
        }
        total.latencyP50Ms = allLatencies.percentile(50)
        total.latencyP99Ms = allLatencies.percentile(99)
        return UsageReport(
            from: window.start,
            to: window.end,
            by: query.grouping,
            idleThresholdSeconds: query.idleThreshold,
            bucketSeconds: bucketSeconds,
            rows: out,
            totals: Self.rounded(total),
            idle: idle.map { entry in
                var entry = entry
                entry.idleHours = Self.round(entry.idleHours)
                entry.idleCost = Self.round(entry.idleCost)
                entry.periods = entry.periods.map { IdlePeriod(start: $0.start, end: $0.end, hours: Self.round($0.hours)) }
                return entry
            }.sorted { ($0.idleCost, $0.reservation) > ($1.idleCost, $1.reservation) }
        )
    }

    /// Six decimals: money and hours read as the arithmetic says, not as binary fractions.
    static func round(_ value: Double) -> Double { (value * 1_000_000).rounded() / 1_000_000 }

    static func rounded(_ row: UsageRow) -> UsageRow {
        var row = row
        row.utilization = row.reservedUnitHours > 0 ? round(row.busyUnitHours / row.reservedUnitHours) : 0
        row.reservedUnitHours = round(row.reservedUnitHours)
        row.busyUnitHours = round(row.busyUnitHours)
        row.cpuSeconds = round(row.cpuSeconds)
        row.provisionedCost = round(row.provisionedCost)
        row.onDemandCost = round(row.onDemandCost)
        row.cost = round(row.provisionedCost + row.onDemandCost)
        row.idleHours = round(row.idleHours)
        row.idleCost = round(row.idleCost)
        row.series.reservedUnits = row.series.reservedUnits.map(round)
        row.series.busyUnits = row.series.busyUnits.map(round)
        row.series.tokensPerMinute = row.series.tokensPerMinute.map(round)
        row.series.budgetPerMinute = row.series.budgetPerMinute.map(round)
        return row
    }
}

/// A row's latencies while a report adds up its slices: a count for every possible code, so
/// adding a slice is a walk over its entries with no search.
private struct DenseLatencies {
    var counts = [Int](repeating: 0, count: Int(UInt16.max) + 1)

    mutating func add(_ histogram: LatencyHistogram) {
        for (code, count) in zip(histogram.codes, histogram.counts) { counts[Int(code)] += count }
    }

    var histogram: LatencyHistogram {
        var out = LatencyHistogram()
        for (code, count) in counts.enumerated() where count > 0 { out.add(code: UInt16(code), count: count) }
        return out
    }
}
