import BerthCore
import BerthTestSupport
import Foundation
import Testing

@testable import BerthStore

private let t = Fixtures.t

/// The scheduler's snapshot is kept in memory between the changes that touch it. Whatever
/// happens to the ledger, a snapshot must be exactly what reading the ledger afresh gives.
@Suite("The scheduler's snapshot as last committed")
struct SnapshotCacheTests {
    /// What the snapshot holds, comparable.
    struct Seen: Equatable, CustomStringConvertible {
        var units: [String]
        var freeSince: [String: Date]
        var reservations: [Reservation]
        var leases: [Lease]
        var jobs: [Job]

        init(_ snapshot: Snapshot) {
            units = snapshot.dedicatedUnits
            freeSince = snapshot.unitFreeSince
            reservations = snapshot.reservations
            leases = snapshot.heldLeases
            jobs = snapshot.jobs
        }

        var description: String { "\(reservations.count) reservations, \(leases.count) leases, \(jobs.count) jobs" }
    }

    /// `units` dedicated units and the text model, as a config gives them.
    func catalog(_ ledger: Ledger, units: Int) throws {
        try ledger.writeNow { tx in
            try tx.syncCatalog(
                units: Fixtures.dedicatedUnits(units).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) },
                models: [Fixtures.textModel],
                now: t(0)
            )
        }
    }

    func fresh(_ ledger: Ledger) throws -> Seen {
        try ledger.readNow { tx in Seen(try LedgerTransaction(db: tx.db).snapshot()) }
    }

    func cached(_ ledger: Ledger) throws -> Seen {
        try ledger.readNow { tx in Seen(try tx.snapshot()) }
    }

    func job(_ reservation: Reservation, _ i: Int) -> JobRecord {
        Fixtures.queuedJob("j\(i)", on: reservation.id, priority: i % 3, submittedAt: t(Double(i) / 3600))
    }

    @Test("a thousand random changes, each followed by a cycle: the kept snapshot always equals a fresh read", arguments: [1, 2, 3] as [UInt64])
    func randomChanges(seed: UInt64) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Ledger(path: dir.file("berth.db"))
        try catalog(ledger, units: 6)
        var random = SeededGenerator(seed: seed)
        var reservations: [Reservation] = []
        var jobs = 0
        for step in 0..<1000 {
            let now = t(Double(step) / 60)
            let live = try ledger.readNow { try $0.liveReservations() }
            let running = try ledger.readNow { try $0.runningJobs() }
            // Each change goes through the ledger's own API, as berthd makes it.
            switch Int.random(in: 0..<9, using: &random) {
            case 0:
                let r = Fixtures.reservation(Int64(reservations.count + 1), units: Int.random(in: 1...3, using: &random), start: now, end: nil)
                reservations.append(try ledger.writeNow { try $0.insert(r) })
            case 1, 2:
                guard let r = live.filter({ $0.status == .active }).randomElement(using: &random) else { continue }
                jobs += 1
                _ = try ledger.writeNow { [jobs] tx in try tx.insert(job(r, jobs)) }
            case 3:
                guard let id = running.randomElement(using: &random)?.id else { continue }
                try ledger.writeNow { try $0.finishJob(id, status: .completed, reason: nil, exitStatus: 0, at: now) }
            case 4:
                guard let id = running.randomElement(using: &random)?.id else { continue }
                try ledger.writeNow { try $0.requestStop(id, reason: "asked", at: now) }
            case 5:
                guard let id = running.randomElement(using: &random)?.id else { continue }
                try ledger.writeNow { try $0.setJobPID(id, pid: 42) }  // no column the planner reads
            case 6:
                guard let r = live.randomElement(using: &random) else { continue }
                try ledger.writeNow { try $0.finish(reservationID: r.id, status: .deleted, at: now, reason: "released") }
            case 7:
                // A change that rolls back leaves the ledger, and the snapshot, as they were.
                guard let r = live.randomElement(using: &random) else { continue }
                struct Refused: Error {}
                #expect(throws: Refused.self) {
                    try ledger.writeNow { tx in
                        try tx.finish(reservationID: r.id, status: .deleted, at: now, reason: "released")
                        throw Refused()
                    }
                }
            default:
                break
            }
            // The cycle the change was followed by, in its own write, as the scheduler runs it.
            try ledger.writeNow { tx in try tx.apply(Planner.plan(try tx.snapshot(), now: now)) }
            let seen = try cached(ledger)
            #expect(seen == (try fresh(ledger)), "step \(step): \(seen)")
            // Read twice: the second comes from memory and must not differ either.
            #expect(try cached(ledger) == seen)
        }
    }

    @Test(
        "inside a write that has only inserted reservations, the kept snapshot with those rows added equals a fresh read",
        arguments: [1, 2, 3] as [UInt64]
    )
    func reservationsInsertedInsideWrite(seed: UInt64) throws {
        struct Refused: Error {}
        let ledger = try Ledger()
        try catalog(ledger, units: 6)
        var random = SeededGenerator(seed: seed)
        var made: Int64 = 0
        for step in 0..<300 {
            let now = t(Double(step) / 60)
            _ = try cached(ledger)  // the committed base, kept
            let live = try ledger.readNow { try $0.liveReservations() }
            let (readFirst, inserts) = (Bool.random(using: &random), Int.random(in: 1...3, using: &random))
            let plan: [Int] = (0..<inserts).map { _ in Int.random(in: 0..<4, using: &random) }
            let released = live.randomElement(using: &random)
            made += Int64(inserts)
            let first = made - Int64(inserts) + 1
            try ledger.writeNow { tx in
                // As admission does, before its insert; or not at all.
                if readFirst { _ = try tx.snapshot(readingQueues: false) }
                for (offset, kind) in plan.enumerated() {
                    let r = Fixtures.reservation(first + Int64(offset), units: 1 + offset % 2, start: now, end: now.addingTimeInterval(3600))
                    switch kind {
                    case 0, 1:
                        _ = try tx.insert(r)
                    case 2:
                        // Inserted in a savepoint that is rolled back: gone again.
                        #expect(throws: Refused.self) {
                            try tx.savepoint {
                                _ = try tx.insert(r)
                                throw Refused()
                            }
                        }
                    default:
                        // Inserted, and another change besides: the base must be read afresh.
                        _ = try tx.insert(r)
                        if let released { try tx.finish(reservationID: released.id, status: .deleted, at: now, reason: "released") }
                    }
                }
                let seen = Seen(try tx.snapshot())
                #expect(seen == Seen(try LedgerTransaction(db: tx.db).snapshot()), "step \(step): \(seen)")
                // The batch's cycle, on that snapshot.
                try tx.apply(Planner.plan(try tx.snapshot(), now: now))
            }
            #expect(try cached(ledger) == (try fresh(ledger)), "step \(step)")
            // Keep the pool from filling up for good.
            if let gone = live.randomElement(using: &random), gone.id != released?.id, Bool.random(using: &random) {
                try ledger.writeNow { try $0.finish(reservationID: gone.id, status: .deleted, at: now, reason: "released") }
            }
        }
    }

    @Test("inside a write, a snapshot taken after a change shows that change")
    func changeInsideWrite() throws {
        let ledger = try Ledger()
        try catalog(ledger, units: 4)
        _ = try cached(ledger)  // kept: no reservation
        let seen = try ledger.writeNow { tx -> Seen in
            _ = try tx.insert(Fixtures.reservation(1, units: 2, start: t(0), end: nil))
            return Seen(try tx.snapshot())
        }
        #expect(seen.reservations.map(\.name) == ["r1"])
        #expect(try cached(ledger).reservations.map(\.name) == ["r1"])
    }
}
