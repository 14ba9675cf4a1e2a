public import BerthCore
public import FoundationEssentials

/// `GET /v1/usage`: the usage report over `[from, to)`, as berthd sends it and the CLI reads it.
public struct UsageReportView: Codable, Sendable, Equatable {
    public var from: Date
    public var to: Date
    /// `reservation`, `model`, `owner` or `day`.
    public var by: String
    public var idleThresholdSeconds: Double
    /// The series' first bucket starts at `from`; each is this long.
    public var bucketSeconds: Double
    public var rows: [UsageRowView]
    public var totals: UsageRowView
    public var idle: [IdleReservationView]
    /// Right-sizing advice, one entry per reservation that held units in the window.
    public var advice: [SizingAdviceView]

    public init(_ report: UsageReport) {
        from = report.from
        to = report.to
        by = report.by.rawValue
        idleThresholdSeconds = report.idleThresholdSeconds
        bucketSeconds = report.bucketSeconds
        rows = report.rows.map(UsageRowView.init)
        totals = UsageRowView(report.totals)
        idle = report.idle.map(IdleReservationView.init)
        advice = report.advice.map(SizingAdviceView.init)
    }
}

/// One reservation's right-sizing advice (see `SizingAdvice`).
public struct SizingAdviceView: Codable, Sendable, Equatable {
    public var reservation: String
    public var owner: String
    public var model: String
    /// `inference` or `training`.
    public var purpose: String
    public var commitment: String
    public var modelUnits: Int
    public var pricePerModelUnitHour: Double
    /// Inference only.
    public var busiestMinute: Date?
    public var busiestMinuteShare: Double?
    public var throttled: Int?
    /// Training only.
    public var runningShare: Double?
    public var neededModelUnits: Int
    /// `oversized`, `undersized` or `right-sized`.
    public var verdict: String
    /// Negative: what the change would save a month.
    public var monthlyCostChange: Double

    public init(_ advice: SizingAdvice) {
        reservation = advice.reservation
        owner = advice.owner
        model = advice.model
        purpose = advice.purpose.rawValue
        commitment = advice.commitment.rawValue
        modelUnits = advice.modelUnits
        pricePerModelUnitHour = advice.pricePerModelUnitHour
        busiestMinute = advice.busiestMinute
        busiestMinuteShare = advice.busiestMinuteShare
        throttled = advice.throttled
        runningShare = advice.runningShare
        neededModelUnits = advice.neededModelUnits
        verdict = advice.verdict.rawValue
        monthlyCostChange = advice.monthlyCostChange
    }
}

/// One row of a usage report, or its totals (`key` is `total`).
public struct UsageRowView: Codable, Sendable, Equatable {
    /// The reservation name, model id, owner or day (`2026-11-01`).
    public var key: String
    /// For rows of one reservation.
    public var owner: String?
    public var model: String?
    public var purpose: String?
    public var commitment: String?
    public var reservedUnitHours: Double
    public var busyUnitHours: Double
    /// Busy ÷ reserved unit-hours; 0 when nothing was reserved.
    public var utilization: Double
    /// CPU time the jobs' runners used, as the kernel counted it; the most memory one held.
    public var cpuSeconds: Double
    public var peakMemoryBytes: Int64?
    public var jobs: JobCountsView
    /// Calls of every outcome: served, throttled, refused, failed, cancelled.
    public var invocations: Int
    public var served: Int
    public var throttled: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var latencyP50Ms: Double?
    public var latencyP99Ms: Double?
    public var provisionedCost: Double
    public var onDemandCost: Double
    public var cost: Double
    public var idleHours: Double
    public var idleCost: Double
    public var series: UsageSeriesView

    public init(_ row: UsageRow) {
        key = row.key
        owner = row.owner
        model = row.model
        purpose = row.purpose?.rawValue
        commitment = row.commitment?.rawValue
        reservedUnitHours = row.reservedUnitHours
        busyUnitHours = row.busyUnitHours
        utilization = row.utilization
        cpuSeconds = row.cpuSeconds
        peakMemoryBytes = row.peakMemoryBytes
        jobs = JobCountsView(row.jobs)
        invocations = row.invocations
        served = row.served
        throttled = row.throttled
        inputTokens = row.inputTokens
        outputTokens = row.outputTokens
        latencyP50Ms = row.latencyP50Ms
        latencyP99Ms = row.latencyP99Ms
        provisionedCost = row.provisionedCost
        onDemandCost = row.onDemandCost
        cost = row.cost
        idleHours = row.idleHours
        idleCost = row.idleCost
        series = UsageSeriesView(row.series)
    }
}

/// Jobs of a row by status.
public struct JobCountsView: Codable, Sendable, Equatable {
    public var queued: Int
    public var running: Int
    public var stopping: Int
    public var completed: Int
    public var failed: Int
    public var stopped: Int

    public init(_ counts: JobCounts) {
        queued = counts.queued
        running = counts.running
        stopping = counts.stopping
        completed = counts.completed
        failed = counts.failed
        stopped = counts.stopped
    }

    public var total: Int { queued + running + stopping + completed + failed + stopped }
}

/// A row's values over the window, one point per bucket.
public struct UsageSeriesView: Codable, Sendable, Equatable {
    public var reservedUnits: [Double]
    public var busyUnits: [Double]
    public var tokensPerMinute: [Double]
    public var budgetPerMinute: [Double]

    public init(_ series: UsageSeries) {
        reservedUnits = series.reservedUnits
        busyUnits = series.busyUnits
        tokensPerMinute = series.tokensPerMinute
        budgetPerMinute = series.budgetPerMinute
    }
}

/// A reservation that sat idle longer than the threshold, with what that cost.
public struct IdleReservationView: Codable, Sendable, Equatable {
    public var reservation: String
    public var owner: String
    public var model: String
    public var idleHours: Double
    public var idleCost: Double
    /// The idle spells, clipped to the window.
    public var periods: [IdlePeriodView]

    public init(_ idle: IdleReservation) {
        reservation = idle.reservation
        owner = idle.owner
        model = idle.model
        idleHours = idle.idleHours
        idleCost = idle.idleCost
        periods = idle.periods.map { IdlePeriodView(start: $0.start, end: $0.end, hours: $0.hours) }
    }
}

public struct IdlePeriodView: Codable, Sendable, Equatable {
    public var start: Date
    public var end: Date
    public var hours: Double

    public init(start: Date, end: Date, hours: Double) {
        self.start = start
        self.end = end
        self.hours = hours
    }
}
