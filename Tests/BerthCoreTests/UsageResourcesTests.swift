import BerthCore
import BerthTestSupport
import Foundation
import Testing

/// The CPU time and peak memory the kernel counted for each job, as the usage report shows them:
/// a window holding part of a job's run holds that share of its CPU time.
@Suite("Usage: what jobs really used")
struct UsageResourcesTests {
    static let start = Fixtures.epoch
    static func at(_ seconds: Double) -> Date { start.addingTimeInterval(seconds) }

    /// A training reservation of one unit, leased from the start, with these jobs.
    static func training(jobs: [JobFacts], gpuQuiet: [Span] = []) -> ReservationFacts {
        ReservationFacts(
            id: 1,
            name: "train",
            owner: "alice",
            model: "m",
            purpose: .training,
            commitment: .none,
            unitsPerModelUnit: 1,
            tokensPerMinute: 10_000,
            pricePerModelUnitHour: 20,
            modelUnits: 1,
            leases: [Span(start: at(0), end: nil)],
            jobs: jobs,
            activity: [],
            gpuQuiet: gpuQuiet
        )
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var testDescription: String
        /// Window `[from, to)` in seconds from the start.
        var window: (from: Double, to: Double)
        /// Each job: started, ended (seconds), CPU seconds, peak memory.
        var jobs: [(started: Double, ended: Double?, cpu: Double?, peak: Int64?)]
        var cpuSeconds: Double
        var peak: Int64?
    }

    static let cases: [Case] = [
        Case(
            testDescription: "a job that ran inside the window counts all its CPU time and its peak",
            window: (0, 3600),
            jobs: [(60, 120, 45.5, 1 << 30)],
            cpuSeconds: 45.5,
            peak: 1 << 30
        ),
        Case(
            testDescription: "a window holding half of a job's run holds half its CPU time",
            window: (0, 3600),
            jobs: [(3500, 3700, 100, 2048)],
            cpuSeconds: 50,
            peak: 2048
        ),
        Case(
            testDescription: "CPU time adds up over jobs, the peak is the largest",
            window: (0, 3600),
            jobs: [(10, 20, 1.25, 100), (30, 40, 2.5, 300), (50, 60, 0.25, 200)],
            cpuSeconds: 4,
            peak: 300
        ),
        Case(
            testDescription: "a job still running has no CPU time yet; one that ran unconfined counts nothing",
            window: (0, 3600),
            jobs: [(10, nil, nil, nil), (20, 30, nil, nil)],
            cpuSeconds: 0,
            peak: nil
        ),
        Case(
            testDescription: "a job that ended before the window counts nothing in it",
            window: (600, 3600),
            jobs: [(10, 500, 30, 4096)],
            cpuSeconds: 0,
            peak: nil
        ),
        Case(
            testDescription: "a job that began and ended in the same millisecond counts where it ended",
            window: (0, 3600),
            jobs: [(100, 100, 0.002, 512)],
            cpuSeconds: 0.002,
            peak: 512
        ),
    ]

    @Test(arguments: cases)
    func cpuAndPeak(_ c: Case) {
        let jobs = c.jobs.map { job in
            JobFacts(
                status: job.ended == nil ? .running : .completed,
                submittedAt: Self.at(job.started),
                startedAt: Self.at(job.started),
                endedAt: job.ended.map(Self.at),
                units: 1,
                cpuSeconds: job.cpu,
                peakMemoryBytes: job.peak
            )
        }
        let reservation = Self.training(jobs: jobs)
        let query = UsageQuery(
            from: Self.at(c.window.from),
            to: Self.at(c.window.to),
            now: Self.at(4000),
            grouping: .reservation,
            idleThreshold: 86_400,
            buckets: 4
        )
        let report = UsageReport.compute(UsageFacts(reservations: [reservation], invocations: [], tokenSamples: []), query)
        let row = report.rows.first { $0.key == "train" }
        #expect(row?.cpuSeconds == c.cpuSeconds)
        #expect(row?.peakMemoryBytes == c.peak)
        #expect(report.totals.cpuSeconds == c.cpuSeconds)
        #expect(report.totals.peakMemoryBytes == c.peak)
    }

    struct QuietCase: CustomTestStringConvertible, Sendable {
        var testDescription: String
        /// The job's run and the GPUs' quiet spans, in seconds from the start.
        var job: (started: Double, ended: Double?)
        var quiet: [(start: Double, end: Double?)]
        /// The idle spells the report flags, with an idle threshold of 1,000 s.
        var idle: [(start: Double, end: Double)]
    }

    static let quietCases: [QuietCase] = [
        QuietCase(
            testDescription: "a job running all along keeps the reservation busy when its GPUs work",
            job: (0, nil),
            quiet: [],
            idle: []
        ),
        QuietCase(
            testDescription: "a job whose GPUs sat quiet for 40 minutes leaves the reservation idle for those 40 minutes",
            job: (0, nil),
            quiet: [(600, 3000)],
            idle: [(600, 3000)]
        ),
        QuietCase(
            testDescription: "a quiet spell shorter than the threshold is not flagged",
            job: (0, nil),
            quiet: [(600, 1200)],
            idle: []
        ),
        QuietCase(
            testDescription: "a quiet span still open runs to now, and joins the idle time after the job",
            job: (0, 2000),
            quiet: [(1500, nil)],
            idle: [(1500, 3600)]
        ),
    ]

    @Test(arguments: quietCases)
    func gpuQuietIsIdle(_ c: QuietCase) {
        let reservation = Self.training(
            jobs: [
                JobFacts(
                    status: c.job.ended == nil ? .running : .completed,
                    submittedAt: Self.at(c.job.started),
                    startedAt: Self.at(c.job.started),
                    endedAt: c.job.ended.map(Self.at),
                    units: 1
                )
            ],
            gpuQuiet: c.quiet.map { Span(start: Self.at($0.start), end: $0.end.map(Self.at)) }
        )
        let query = UsageQuery(from: Self.at(0), to: Self.at(3600), now: Self.at(3600), grouping: .reservation, idleThreshold: 1000, buckets: 4)
        let report = UsageReport.compute(UsageFacts(reservations: [reservation], invocations: [], tokenSamples: []), query)
        let periods = report.idle.first { $0.reservation == "train" }?.periods ?? []
        #expect(periods.map { $0.start.timeIntervalSince(Self.start) } == c.idle.map(\.start))
        #expect(periods.map { $0.end.timeIntervalSince(Self.start) } == c.idle.map(\.end))
    }
}
