import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import GRDB
import Testing

private let t = Fixtures.t

/// A stored value this berthd does not know (written by a newer one, or by hand) is an error
/// when read, naming the column and the value, never a default that passes for the truth.
@Suite("Stored values")
struct StoredValueTests {
    /// A ledger with one reservation, one job and one call, then `sql` run on its file directly.
    func ledger(after sql: String) throws -> (Ledger, TemporaryDirectory) {
        let dir = try TemporaryDirectory()
        let path = dir.file("berth.db")
        let ledger = try Ledger(path: path)
        try ledger.writeNow { tx in
            try tx.syncCatalog(units: [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)], models: [Fixtures.textModel], now: t(0))
            let r = try tx.insert(Fixtures.reservation(0, units: 1, start: t(0), end: nil))
            _ = try tx.insert(
                JobRecord(
                    name: "job",
                    owner: "alice",
                    kind: .batchInference,
                    reservationId: r.id,
                    model: Fixtures.textModel.id,
                    baseModel: Fixtures.textModel.id,
                    priority: 0,
                    modelUnits: 1,
                    unitsNeeded: 1,
                    hyperparameters: nil,
                    data: "/d.jsonl",
                    validationData: nil,
                    output: "/out",
                    modelName: nil,
                    seed: 1,
                    submittedAt: t(0),
                    logPath: "/log",
                    callerUid: 0,
                    callerGid: 0
                )
            )
            try tx.record([
                InvocationRecord(
                    at: t(0.1),
                    owner: "alice",
                    target: "r0",
                    reservationID: r.id,
                    model: Fixtures.textModel.id,
                    tier: .provisioned,
                    outcome: .served,
                    inputTokens: 1,
                    outputTokens: 1,
                    latencyMs: 1,
                    cost: 0,
                    budgetPerMinute: 10_000
                )
            ])
        }
        try ledger.close()
        let raw = try DatabaseQueue(path: path)
        try raw.write { try $0.execute(sql: sql) }
        try raw.close()
        return (try Ledger(path: path), dir)
    }

    @Test(
        "an unknown value in a stored enum's column is an error when read, not a default",
        arguments: [
            ("UPDATE reservations SET status = 'exploded'", "exploded"),
            ("UPDATE reservations SET purpose = 'juggling'", "juggling"),
            ("UPDATE reservations SET commitment = '7y'", "7y"),
            ("UPDATE jobs SET status = 'exploded'", "exploded"),
            ("UPDATE jobs SET kind = 'juggling'", "juggling"),
            ("UPDATE units SET pool = 'borrowed'", "borrowed"),
            ("UPDATE invocations SET outcome = 'exploded'", "exploded"),
            ("UPDATE invocations SET tier = 'gold'", "gold"),
            ("UPDATE models SET input_modalities = '[\"smell\"]'", "smell"),
            ("UPDATE models SET customizations = '[\"juggling\"]'", "juggling"),
            ("UPDATE models SET price = json_set(price, '$.modelUnitHour.7y', 1)", "7y"),
        ]
    )
    func unknownValueIsAnError(sql: String, value: String) throws {
        let (ledger, dir) = try ledger(after: sql)
        defer { dir.remove() }
        let error = #expect(throws: (any Error).self) {
            try ledger.readNow { tx in
                _ = try tx.reservations()
                _ = try tx.jobs()
                _ = try tx.units()
                _ = try tx.models()
                _ = try tx.census(now: t(1))
                _ = try tx.usageFacts(
                    UsageQuery(from: t(0), to: t(1), now: t(2), grouping: .reservation, idleThreshold: 600, buckets: 10),
                    owner: nil
                )
            }
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains(value))
    }

    @Test("the same reads succeed on the ledger as written")
    func knownValuesRead() throws {
        let (ledger, dir) = try ledger(after: "SELECT 1")
        defer { dir.remove() }
        let (reservations, jobs, units, models, facts) = try ledger.readNow { tx in
            (
                try tx.reservations(), try tx.jobs(), try tx.units(), try tx.models(),
                try tx.usageFacts(UsageQuery(from: t(0), to: t(1), now: t(2), grouping: .reservation, idleThreshold: 600, buckets: 10), owner: nil)
            )
        }
        #expect(reservations.map(\.status) == [.pending])
        #expect(jobs.map(\.status) == [.queued])
        #expect(units.map(\.pool) == [.dedicated])
        #expect(models == [Fixtures.textModel])
        #expect(facts.invocations.map(\.served) == [1])
    }
}
