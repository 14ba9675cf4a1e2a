import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import GRDB
import Testing

private let t = Fixtures.t

/// The invariant checker the crash and fuzz tests rely on finds each kind of broken ledger.
@Suite("Ledger invariants")
struct LedgerInvariantsTests {
    /// A sound ledger: reservation r1 active on cpu-0 and cpu-1 from t(1), its job 1 running on
    /// cpu-0; reservation r2 pending for later.
    func soundLedger(_ dir: TemporaryDirectory) throws -> String {
        let path = dir.file("berth.db")
        let ledger = try Ledger(path: path)
        try ledger.writeNow { tx in
            try tx.syncCatalog(
                units: Fixtures.dedicatedUnits(4).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) }
                    + [ComputeUnit(id: "shared-0", kind: "cpu", pool: .shared)],
                models: [Fixtures.textModel],
                now: t(0)
            )
            let r1 = try tx.insert(Fixtures.reservation(1, units: 2, start: t(1), end: nil))
            _ = try tx.insert(Fixtures.reservation(2, units: 1, start: t(5), end: t(6)))
            try tx.apply(Plan(steps: [.activate(reservationID: r1.id, start: t(1), end: nil, units: ["cpu-0", "cpu-1"], leaseStart: t(1))]))
            let job = try tx.insert(Fixtures.queuedJob("ft", on: r1.id, submittedAt: t(1), modelName: "m"))
            try tx.apply(Plan(steps: [.startJob(jobID: job.id!, units: ["cpu-0"], at: t(1))]))
        }
        try ledger.close()
        return path
    }

    @Test("a sound ledger has no violations")
    func sound() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        #expect(try LedgerInvariants.violations(databaseAt: try soundLedger(dir)) == [])
    }

    struct Breakage: Sendable, CustomTestStringConvertible {
        var name: String
        var sql: String
        var arguments: [Date] = []
        var expected: String
        var testDescription: String { name }
    }

    @Test(
        "each broken ledger is caught, in a sentence that names what broke",
        arguments: [
            Breakage(
                name: "a closed lease overlapping a held one on the same unit",
                sql: #"INSERT INTO leases (unit_id, reservation_id, start, "end", held) VALUES ('cpu-0', 2, ?, ?, 0)"#,
                arguments: [t(2), t(3)],
                expected: "unit cpu-0 is in two overlapping leases"
            ),
            Breakage(
                name: "an active reservation whose leases are all closed",
                sql: #"UPDATE leases SET held = 0, "end" = ?"#,
                arguments: [t(2)],
                expected: "is active with 0 held leases"
            ),
            Breakage(
                name: "a pending reservation holding a unit",
                sql: "INSERT INTO leases (unit_id, reservation_id, start, held) VALUES ('cpu-2', 2, ?, 1)",
                arguments: [t(2)],
                expected: "is pending but holds 1 leases"
            ),
            Breakage(
                name: "a running job with an end time",
                sql: "UPDATE jobs SET ended_at = ?",
                arguments: [t(2)],
                expected: "is running but ended at"
            ),
            Breakage(
                name: "a completed job with no end time",
                sql: "UPDATE jobs SET status = 'completed'",
                expected: "is completed without an ended_at"
            ),
            Breakage(
                name: "a job ended twice",
                sql: """
                    UPDATE jobs SET status = 'stopped', ended_at = '2026-11-01 02:00:00.000';
                    INSERT INTO job_events (job_id, at, kind, detail) VALUES (1, '2026-11-01 02:00:00.000', 'stopped', ''), (1, '2026-11-01 02:00:01.000', 'stopped', '')
                    """,
                expected: "its end events are [stopped, stopped]"
            ),
            Breakage(
                name: "a job running on a unit its reservation does not hold",
                sql: #"UPDATE jobs SET units = '["cpu-3"]'"#,
                expected: "is running on cpu-3, which its reservation 1 does not hold"
            ),
            Breakage(
                name: "a released reservation still holding a unit no job runs on",
                sql: "UPDATE reservations SET status = 'deleted', ended_at = ? WHERE id = 1",
                arguments: [t(2)],
                expected: "is deleted but still holds cpu-1"
            ),
            Breakage(
                name: "a lease on a shared unit",
                sql: "INSERT INTO leases (unit_id, reservation_id, start, \"end\", held) VALUES ('shared-0', 1, ?, ?, 0)",
                arguments: [t(0), t(0.5)],
                expected: "which is not a dedicated unit"
            ),
        ]
    )
    func broken(_ breakage: Breakage) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try soundLedger(dir)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: breakage.sql, arguments: StatementArguments(breakage.arguments)) }
        try queue.close()
        let violations = try LedgerInvariants.violations(databaseAt: path)
        #expect(violations.contains { $0.contains(breakage.expected) }, "\(violations)")
    }
}
