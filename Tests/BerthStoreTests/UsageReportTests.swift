import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

/// A ledger with known leases, jobs and calls on both sides of 2026-11-01T00:00Z, and reports
/// over it checked against numbers worked out by hand (in the comments).
@Suite("Usage report over a ledger")
struct UsageReportTests {
    let dir: TemporaryDirectory
    let ledger: Ledger
    /// Report time: 2026-11-02T06:00Z.
    let now = t(30)
    let model = Fixtures.textModel  // 1 unit per model unit, 10,000 tokens/min, 20 / 16 (1m) / 12 (6m) per model-unit-hour

    init() throws {
        dir = try TemporaryDirectory()
        ledger = try Ledger(path: dir.file("berth.db"))
        try ledger.writeNow { tx in
            try tx.syncCatalog(
                units: Fixtures.dedicatedUnits(4).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) },
                models: [Fixtures.textModel],
                now: t(-48)
            )
            // train-a: alice, training, 2 units on a one-month term (16 per unit-hour), leased from
            // 2026-10-31T12:00Z to 2026-11-03T00:00Z.
            var a = Fixtures.reservation(0, units: 2, start: t(-12), end: t(48), commitment: .oneMonth)
            a.name = "train-a"
            a.purpose = .training
            let trainA = try tx.insert(a)
            try tx.apply(
                Plan(steps: [.activate(reservationID: trainA.id, start: t(-12), end: t(48), units: ["cpu-0", "cpu-1"], leaseStart: t(-12))])
            )
            // infer-b: bob, inference, 1 unit, no commitment (20 per unit-hour), from 2026-11-01T20:00Z, open-ended.
            var b = Fixtures.reservation(0, units: 1, start: t(20), end: nil)
            b.name = "infer-b"
            b.owner = "bob"
            let inferB = try tx.insert(b)
            try tx.apply(Plan(steps: [.activate(reservationID: inferB.id, start: t(20), end: nil, units: ["cpu-2"], leaseStart: t(20))]))

            // Jobs on train-a: one submitted in October that ran 22:00–03:00 on 2 units, one
            // submitted in November that ran 05:00–07:00 on 1 unit and failed.
            for (submitted, started, ended, units, status) in [(t(-3), t(-2), t(3), 2, JobStatus.completed), (t(5), t(5), t(7), 1, .failed)] {
                let job = try tx.insert(
                    JobRecord(
                        name: "job",
                        owner: "alice",
                        kind: .fineTuning,
                        reservationId: trainA.id,
                        model: model.id,
                        baseModel: model.id,
                        priority: 0,
                        modelUnits: units,
                        unitsNeeded: units,
                        hyperparameters: nil,
                        data: "/d.jsonl",
                        validationData: nil,
                        output: "/out",
                        modelName: nil,
                        seed: 1,
                        submittedAt: submitted,
                        logPath: "/log",
                        callerUid: 0,
                        callerGid: 0
                    )
                )
                try tx.apply(Plan(steps: [.startJob(jobID: job.id!, units: Array(["cpu-0", "cpu-1"].prefix(units)), at: started)]))
                try tx.finishJob(
                    job.id!,
                    status: status,
                    reason: status == .failed ? "exit 1" : nil,
                    exitStatus: status == .failed ? 1 : 0,
                    at: ended
                )
            }

            // Calls.
            func call(
                _ at: Date,
                _ owner: String,
                reservation: Int64?,
                tier: ServiceTier?,
                outcome: CallOutcome = .served,
                tokens: (Int, Int) = (0, 0),
                latency: Double = 0,
                cost: Double = 0
            ) -> InvocationRecord {
                InvocationRecord(
                    at: at,
                    owner: owner,
                    target: reservation == nil ? model.id : "infer-b",
                    reservationID: reservation,
                    model: model.id,
                    tier: tier,
                    outcome: outcome,
                    inputTokens: tokens.0,
                    outputTokens: tokens.1,
                    latencyMs: latency,
                    cost: cost,
                    budgetPerMinute: reservation == nil ? 0 : 10_000
                )
            }
            try tx.record([
                // October, on demand: not in November's report.
                call(t(-0.5), "carol", reservation: nil, tier: .onDemand, tokens: (10, 10), latency: 9, cost: 1.0),
                // November 01:00, on demand.
                call(t(1), "carol", reservation: nil, tier: .onDemand, tokens: (50, 50), latency: 5, cost: 0.25),
                call(t(1), "carol", reservation: nil, tier: .onDemand, tokens: (50, 50), latency: 7, cost: 0.25),
                // 20:30, through infer-b: 4 served (100 in, 200 out each), 21:00 one throttled,
                // 22:00 one spilled on demand.
                call(t(20.5), "bob", reservation: inferB.id, tier: .provisioned, tokens: (100, 200), latency: 10),
                call(t(20.5), "bob", reservation: inferB.id, tier: .provisioned, tokens: (100, 200), latency: 20),
                call(t(20.5), "bob", reservation: inferB.id, tier: .provisioned, tokens: (100, 200), latency: 30),
                call(t(20.5), "bob", reservation: inferB.id, tier: .provisioned, tokens: (100, 200), latency: 40),
            ])
            // A second batch, as the meter writes them: rollups add up across batches.
            try tx.record([
                call(t(21), "bob", reservation: inferB.id, tier: nil, outcome: .throttled),
                call(t(22), "bob", reservation: inferB.id, tier: .onDemand, tokens: (10, 10), latency: 15, cost: 0.5),
            ])
        }
    }

    func report(
        from: Date,
        to: Date,
        by: UsageGrouping = .reservation,
        owner: String? = nil,
        threshold: TimeInterval = 6 * 3600
    ) throws -> UsageReport {
        let query = UsageQuery(from: from, to: to, now: now, grouping: by, idleThreshold: threshold, buckets: 24)
        return UsageReport.compute(try ledger.readNow { try $0.usageFacts(query, owner: owner) }, query)
    }

    func row(_ report: UsageReport, _ key: String) throws -> UsageRow {
        try #require(report.rows.first { $0.key == key }, "no row \(key) in \(report.rows.map(\.key))")
    }

    /// Every report this suite checks, over whole and part hours, each grouping, with and
    /// without the idle threshold that flags spells.
    func everyReport() throws -> [UsageReport] {
        var reports: [UsageReport] = []
        for (from, to) in [(t(0), t(30)), (t(-24), t(0)), (t(0.5), t(20.75)), (t(-48), t(30))] {
            for by in [UsageGrouping.reservation, .model, .owner, .day] {
                for threshold in [6 * 3600.0, 60.0] { reports.append(try report(from: from, to: to, by: by, threshold: threshold)) }
            }
        }
        return reports
    }

    @Test("calls not rolled up yet count the same as rolled-up ones, whole or in steps, idle spells included")
    func rollUpChangesNoReport() throws {
        let pending = try everyReport()
        // In two steps: the mark can fall between calls of the same hour.
        #expect(try ledger.writeNow { try $0.rollUpRecorded(limit: 3) } == 3)
        #expect(try everyReport() == pending)
        #expect(try ledger.writeNow { try $0.rollUpRecorded() } == 6)
        #expect(try ledger.writeNow { try $0.rollUpRecorded() } == 0)
        #expect(try everyReport() == pending)
    }

    @Test("November by reservation: hours clipped at the month boundary, costs by commitment, p50/p99, idle spells")
    func novemberByReservation() throws {
        let report = try report(from: t(0), to: t(24))
        #expect(report.rows.map(\.key) == ["infer-b", "on-demand:\(model.id)", "train-a"])

        let a = try row(report, "train-a")
        #expect(a.reservedUnitHours == 48)  // 2 units × 24 h of November 1 (12 h of October left out)
        #expect(a.busyUnitHours == 8)  // 2 units × 00:00–03:00 + 1 unit × 05:00–07:00
        #expect(a.utilization == 0.166667)
        #expect(a.jobs.failed == 1 && a.jobs.completed == 0)  // the completed job was submitted in October
        #expect(a.provisionedCost == 768)  // 48 model-unit-hours × 16 (1-month term)
        #expect(a.invocations == 0 && a.latencyP50Ms == nil)
        // Idle from 07:00 to now (23 h > 6 h): 17 h of it in the window, 2 units × 17 h × 16.
        #expect(a.idleHours == 17)
        #expect(a.idleCost == 544)

        let b = try row(report, "infer-b")
        #expect(b.reservedUnitHours == 4)  // 20:00–24:00
        #expect(b.provisionedCost == 80)  // 4 × 20, no commitment
        #expect(b.invocations == 6 && b.served == 5 && b.throttled == 1)
        #expect(b.inputTokens == 410 && b.outputTokens == 810)
        // Served latencies 10, 15, 20, 30, 40: nearest rank 3 of 5 and 5 of 5.
        #expect(b.latencyP50Ms == 20 && b.latencyP99Ms == 40)
        #expect(b.onDemandCost == 0.5 && b.cost == 80.5)  // the spilled call is billed on demand
        // 1,200 tokens served on its own unit at 10,000 per minute: 0.12 unit-minutes.
        #expect(b.busyUnitHours == 0.002)
        // Idle from 22:00 (the spilled call) to now: 2 h in the window, 1 unit × 2 h × 20.
        #expect(b.idleHours == 2 && b.idleCost == 40)

        let onDemand = try row(report, "on-demand:\(model.id)")
        #expect(onDemand.invocations == 2 && onDemand.onDemandCost == 0.5 && onDemand.reservedUnitHours == 0)
        #expect(onDemand.latencyP50Ms == 5 && onDemand.latencyP99Ms == 7)

        #expect(report.totals.reservedUnitHours == 52)
        #expect(report.totals.invocations == 8)
        #expect(report.totals.cost == 849)  // 768 + 80 + 0.5 + 0.5
        #expect(report.totals.latencyP50Ms == 15 && report.totals.latencyP99Ms == 40)  // 5 7 10 15 20 30 40
        #expect(report.idle.map(\.reservation) == ["train-a", "infer-b"])  // most expensive first
        #expect(report.idle[0].periods == [IdlePeriod(start: t(7), end: t(24), hours: 17)])
    }

    @Test("October: the same reservation's October hours, the job submitted then, the idle spell before it")
    func october() throws {
        let report = try report(from: t(-31 * 24), to: t(0))
        #expect(report.rows.map(\.key) == ["on-demand:\(model.id)", "train-a"])
        let a = try row(report, "train-a")
        #expect(a.reservedUnitHours == 24 && a.provisionedCost == 384)  // 2 units × 12 h × 16
        #expect(a.busyUnitHours == 4)  // 22:00–24:00 on 2 units
        #expect(a.jobs.completed == 1)
        // Leased from 12:00 with nothing running until 22:00: 10 h × 2 units × 16.
        #expect(a.idleHours == 10 && a.idleCost == 320)
        #expect(try row(report, "on-demand:\(model.id)").onDemandCost == 1)
    }

    @Test("by day splits leases, jobs and calls at midnight UTC")
    func byDay() throws {
        let report = try report(from: t(-24), to: t(24), by: .day)
        #expect(report.rows.map(\.key) == ["2026-10-31", "2026-11-01"])
        let october = try row(report, "2026-10-31")
        let november = try row(report, "2026-11-01")
        #expect(october.reservedUnitHours == 24 && november.reservedUnitHours == 52)
        #expect(october.jobs.completed == 1 && november.jobs.failed == 1)
        #expect(october.invocations == 1 && november.invocations == 8)
        #expect(october.cost == 385 && november.cost == 849)
        #expect(report.totals.cost == 1234)
    }

    @Test("by owner and by model add the same numbers up differently")
    func byOwnerAndModel() throws {
        let owners = try report(from: t(0), to: t(24), by: .owner)
        #expect(owners.rows.map(\.key) == ["alice", "bob", "carol"])
        #expect(try row(owners, "alice").provisionedCost == 768)
        #expect(try row(owners, "bob").cost == 80.5)
        #expect(try row(owners, "carol").cost == 0.5)
        let models = try report(from: t(0), to: t(24), by: .model)
        #expect(models.rows.map(\.key) == [model.id])
        #expect(models.totals.cost == owners.totals.cost)
    }

    @Test("a window that does not start or end on the hour counts the raw calls at its edges")
    func partHours() throws {
        let report = try report(from: t(0.5), to: t(20.75))
        let b = try row(report, "infer-b")
        #expect(b.reservedUnitHours == 0.75)
        #expect(b.invocations == 4 && b.latencyP99Ms == 40)  // 20:30 in, 21:00 and 22:00 out
        #expect(try row(report, "on-demand:\(model.id)").invocations == 2)  // 01:00, a whole hour inside
        let inside = try self.report(from: t(20.25), to: t(20.75))  // inside one hour: raw calls only
        #expect(try row(inside, "infer-b").served == 4)
    }

    @Test("a user sees only their own reservations and calls")
    func ownRowsOnly() throws {
        let report = try report(from: t(0), to: t(24), owner: "bob")
        #expect(report.rows.map(\.key) == ["infer-b"])
        #expect(report.totals.cost == 80.5)
        #expect(report.idle.map(\.reservation) == ["infer-b"])
    }

    @Test("nothing is flagged idle below the threshold")
    func threshold() throws {
        let report = try report(from: t(0), to: t(24), threshold: 30 * 3600)
        #expect(report.idle.isEmpty)
        #expect(report.totals.idleCost == 0)
    }

    @Test("series: reserved units per bucket follow the leases")
    func series() throws {
        let report = try report(from: t(0), to: t(24))
        let a = try row(report, "train-a")
        let b = try row(report, "infer-b")
        #expect(report.bucketSeconds == 3600)
        #expect(a.series.reservedUnits == Array(repeating: 2, count: 24))
        #expect(b.series.reservedUnits == Array(repeating: 0, count: 20) + [1, 1, 1, 1])
        #expect(b.series.budgetPerMinute[20] == 10_000)
        #expect(a.series.busyUnits[0] == 2 && a.series.busyUnits[5] == 1 && a.series.busyUnits[8] == 0)
        #expect(b.series.tokensPerMinute[20] == 1200.0 / 60)
    }
}
