import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

@Suite("Job queues in the ledger")
struct JobQueueTests {
    /// A ledger with one active 2-unit reservation and `queued` jobs on it, priorities mixed.
    func ledger(queued: Int) throws -> (Ledger, Int64, TemporaryDirectory) {
        let dir = try TemporaryDirectory()
        let ledger = try Ledger(path: dir.file("berth.db"))
        let id = try ledger.writeNow { tx -> Int64 in
            try tx.syncCatalog(
                units: Fixtures.dedicatedUnits(4).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) },
                models: [Fixtures.textModel],
                now: t(0)
            )
            let r = try tx.insert(Fixtures.reservation(0, units: 2, start: t(0), end: nil))
            try tx.apply(Planner.plan(try tx.snapshot(), now: t(0)))
            for i in 0..<queued {
                _ = try tx.insert(Fixtures.queuedJob("j\(i)", on: r.id, priority: i % 3, submittedAt: t(1 + Double(i) / 3600)))
            }
            return r.id
        }
        return (ledger, id, dir)
    }

    @Test("the scheduler's snapshot holds only the head of a long queue, in queue order")
    func snapshotHoldsHead() throws {
        let (ledger, id, dir) = try ledger(queued: 1000)
        defer { dir.remove() }
        let jobs = try ledger.readNow { try $0.snapshot().jobs }
        #expect(jobs.count == 2)  // the reservation has 2 units
        // Priority 2 first (jobs 3, 6, … by index 2, 5, …), earliest submitted first.
        #expect(jobs.map(\.name) == ["j2", "j5"])
        #expect(jobs.allSatisfy { $0.reservationID == id && $0.status == .queued })
        let plan = try ledger.readNow { Planner.plan(try $0.snapshot(), now: t(2)) }
        #expect(plan.steps.count == 2)
    }

    @Test("a cycle reads no queue of a reservation that starts later, plans the same without it, and reads it from the start on")
    func futureQueueNotRead() throws {
        let (ledger, _, dir) = try ledger(queued: 3)
        defer { dir.remove() }
        // A 2-unit advance reservation from t(5), with jobs queued ahead of it.
        let future = try ledger.writeNow { tx -> Int64 in
            let r = try tx.insert(Fixtures.reservation(1, units: 2, start: t(5), end: t(9)))
            for i in 0..<3 {
                _ = try tx.insert(Fixtures.queuedJob("f\(i)", on: r.id, priority: 0, submittedAt: t(2 + Double(i) / 3600)))
            }
            return r.id
        }
        for now in [t(2), t(4.5)] {
            let (planning, every) = try ledger.readNow { tx in (try tx.snapshot(planningAt: now), try tx.snapshot()) }
            #expect(!planning.jobs.contains { $0.reservationID == future })
            #expect(every.jobs.contains { $0.reservationID == future })
            #expect(Planner.plan(planning, now: now) == Planner.plan(every, now: now))
        }
        // From its start the cycle reads the queue, activates the reservation and starts two jobs on it.
        let started = try ledger.writeNow { tx -> [String] in
            let plan = Planner.plan(try tx.snapshot(planningAt: t(5)), now: t(5))
            try tx.apply(plan)
            return try tx.jobs().filter { $0.reservationId == future && $0.status == .running }.map(\.name)
        }
        #expect(started.sorted() == ["f0", "f1"])
    }

    @Test("a reservation that ends stops its whole queue, each job with an event")
    func endingStopsQueue() throws {
        let (ledger, id, dir) = try ledger(queued: 50)
        defer { dir.remove() }
        try ledger.writeNow { try $0.finish(reservationID: id, status: .deleted, at: t(3), reason: "released") }
        let statuses = try ledger.readNow { tx in try tx.jobs().map(\.status) }
        #expect(statuses.count == 50 && statuses.allSatisfy { $0 == .stopped })
        let events = try ledger.readNow { try $0.jobEvents(1) }
        #expect(events.last?.kind == "stopped" && events.last?.detail == "reservation-ended")
        #expect(try ledger.readNow { try $0.snapshot().jobs }.isEmpty)
    }

    @Test("each user's queued count follows jobs as they queue, start, stop and end with their reservation")
    func queuedCountsFollowJobs() throws {
        let (ledger, id, dir) = try ledger(queued: 10)
        defer { dir.remove() }
        #expect(try ledger.readNow { try $0.queuedJobCount(owner: "alice") } == 10)
        #expect(try ledger.readNow { try $0.queuedJobCount(owner: "bob") } == 0)
        // The scheduler starts two (the reservation has two units).
        try ledger.writeNow { tx in try tx.apply(Planner.plan(try tx.snapshot(), now: t(2))) }
        #expect(try ledger.readNow { try $0.queuedJobCount(owner: "alice") } == 8)
        // One stopped while queued.
        let queued = try ledger.readNow { tx in try tx.jobs().filter { $0.status == .queued }.map { $0.id! } }
        try ledger.writeNow { try $0.finishJob(queued[0], status: .stopped, reason: "stopped by alice", exitStatus: nil, at: t(3)) }
        #expect(try ledger.readNow { try $0.queuedJobCount(owner: "alice") } == 7)
        // The reservation ends: its queue goes with it.
        try ledger.writeNow { try $0.finish(reservationID: id, status: .deleted, at: t(4), reason: "released") }
        #expect(try ledger.readNow { try $0.queuedJobCount(owner: "alice") } == 0)
        #expect(try LedgerInvariants.violations(databaseAt: dir.file("berth.db")).isEmpty)
    }

    @Test(
        "a job's last metric point is the last of its whole curve: its highest step, with every name recorded at that step",
        arguments: [
            [],
            [("train_loss", 1, 1, 3.0)],
            [("train_loss", 1, 1, 3.0), ("train_loss", 2, 1, 2.0), ("validation_loss", 2, 1, 2.5), ("accuracy", 2, 1, 0.5)],
            // A late validation loss for an earlier step, and a step recorded twice: the highest
            // step is last, and the later value of a name wins.
            [("train_loss", 3, nil, 1.0), ("validation_loss", 1, 1, 4.0), ("train_loss", 3, 2, 0.9), ("val_loss", 2, 1, 3.0)],
        ] as [[(String, Int, Int?, Double)]]
    )
    func lastMetricPoint(events: [(String, Int, Int?, Double)]) throws {
        let (ledger, _, dir) = try ledger(queued: 1)
        defer { dir.remove() }
        let (last, curve) = try ledger.writeNow { tx in
            let id = try #require(try tx.jobs(limit: 1).first?.id)
            for (name, step, epoch, value) in events {
                try tx.record(.metric(name: name, step: step, epoch: epoch, value: value), jobID: id, at: t(2))
            }
            return (try tx.lastMetricPoint(jobID: id), try tx.metrics(jobID: id))
        }
        #expect(last == curve.last)
    }
}
