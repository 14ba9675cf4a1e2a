import BerthCore
import BerthTestSupport
import Foundation
import GRDB
import Testing

@testable import BerthStore

private let t = Fixtures.t

/// Migrations run on ledgers written by older berthd: what an old ledger upgrades to is fixed
/// when the migration ships.
@Suite("Migrations")
struct MigrationTests {
    /// A ledger as berthd left it at v3, with three reservations and `calls` recorded.
    func v3Ledger(_ calls: [InvocationRecord]) throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        try Migrations.migrator.migrate(queue, upTo: "v3-invocations")
        try queue.write { db in
            try ModelRecord(Fixtures.textModel, createdAt: t(-100)).insert(db)
            for id in Int64(1)...3 {
                // Only the columns v3 had: today's record has more.
                let r = Fixtures.reservation(id, units: 1, start: t(-100), end: nil)
                try db.execute(
                    sql: """
                        INSERT INTO reservations (id, name, owner, model, purpose, model_units, units, commitment, start, "end",
                            duration, status, waiting, spillover, created_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        r.id, r.name, r.owner, r.model, r.purpose.rawValue, r.modelUnits, r.units, r.commitment.rawValue, r.start, r.end,
                        r.duration, r.status.rawValue, r.waiting, r.spillover, r.createdAt,
                    ]
                )
            }
            for call in calls {
                try db.execute(
                    sql: "INSERT INTO invocations (\(InvocationRecord.selection)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        call.at, call.owner, call.target, call.reservationID, call.model, call.tier?.rawValue, call.outcome.rawValue,
                        call.inputTokens, call.outputTokens, call.latencyMs, call.cost,
                    ]
                )
            }
        }
        return queue
    }

    /// The rows v4 left, in a fixed order.
    func rolledUp(_ queue: DatabaseQueue) throws -> (hours: [Row], activity: [Row]) {
        try queue.read { db in
            (
                try Row.fetchAll(db, sql: "SELECT * FROM usage_hours ORDER BY hour, reservation_id, model, owner"),
                try Row.fetchAll(
                    db,
                    sql: "SELECT reservation_id, first_call, last_call FROM reservation_activity ORDER BY reservation_id, first_call"
                )
            )
        }
    }

    func call(
        _ at: Date,
        owner: String = "alice",
        reservation: Int64? = 1,
        model: String = "m",
        tier: ServiceTier? = .provisioned,
        outcome: CallOutcome = .served,
        tokens: (Int, Int) = (10, 20),
        latency: Double = 12.34,
        cost: Double = 0
    ) -> InvocationRecord {
        InvocationRecord(
            at: at,
            owner: owner,
            target: "r",
            reservationID: reservation,
            model: model,
            tier: tier,
            outcome: outcome,
            inputTokens: tokens.0,
            outputTokens: tokens.1,
            latencyMs: latency,
            cost: cost,
            budgetPerMinute: 0
        )
    }

    @Test("v4 rolls a v3 ledger's calls up into the rows worked out by hand")
    func v4ByHand() throws {
        let queue = try v3Ledger([
            // 00:10 to 00:12: one span; 12.34 ms and 12.3 ms are both code 6123 (decade 10¹, digits 123).
            call(t(10.0 / 60), latency: 12.34, cost: 0.5),
            call(t(10.5 / 60), latency: 12.3, cost: 0.25),
            // Throttled: counted, in the span, no tokens.
            call(t(11.0 / 60), tier: nil, outcome: .throttled, tokens: (0, 0), latency: 0),
            // On demand through the reservation: served, not provisioned.
            call(t(12.0 / 60), tier: .onDemand, tokens: (1, 2), latency: 0.7345, cost: 1),
            // Refused with no reservation: a row of its own, nothing served, an empty histogram.
            call(t(0.5), owner: "bob", reservation: nil, tier: nil, outcome: .refused, tokens: (0, 0), latency: 0),
            // An hour later: a new hour row and a new span.
            call(t(1.25), latency: 2000),
        ])
        try Migrations.migrator.migrate(queue, upTo: "v4-usage")
        let (hours, activity) = try rolledUp(queue)
        let hour0 = Int64(t(0).timeIntervalSince1970)
        let hour1 = hour0 + 3600
        // Codes: 12.34 → 6123 (0x17EB) twice; 0.7345 → 4735 (0x127F); 2000 → 8200 (0x2008).
        let expected: [[(any DatabaseValueConvertible)?]] = [
            [hour0, 0, "m", "bob", 1, 0, 0, 0, 0, 0, 0.0, Data()],
            [hour0, 1, "m", "alice", 4, 3, 1, 21, 42, 60, 1.75, Data([0x7F, 0x12, 1, 0, 0, 0, 0xEB, 0x17, 2, 0, 0, 0])],
            [hour1, 1, "m", "alice", 1, 1, 0, 10, 20, 30, 0.0, Data([0x08, 0x20, 1, 0, 0, 0])],
        ]
        #expect(hours.map { Array($0.databaseValues) } == expected.map { $0.map { $0?.databaseValue ?? .null } })
        let spans = activity.map { [$0[0] as Int64, Int64(($0[1] as Double).rounded()), Int64(($0[2] as Double).rounded())] }
        #expect(spans == [[1, hour0 + 600, hour0 + 720], [1, hour0 + 4500, hour0 + 4500]])
    }

    @Test("v4's frozen SQL leaves the rows the roll-up of the time left, for calls of every kind", arguments: [1, 2, 3] as [UInt64])
    func v4MatchesTheRollUp(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var calls: [InvocationRecord] = []
        var at = t(0)
        // Latencies across every decade and at the edges of the rounding: powers of ten, values
        // that round up into the next decade, none, too small and too large to code.
        let edges: [Double] = [0, 1e-6, 0.00009996, 0.0001, 0.09995, 0.1, 1, 9.995, 9.9949, 99.95, 999.5, 1000, 123.45, 9_999_999, 1e7, 5e9]
        for _ in 0..<3000 {
            // Mostly close together (one span), now and then a gap of minutes or hours.
            at = at.addingTimeInterval(random.chance(0.05) ? Double.random(in: 61...7200, using: &random) : Double.random(in: 0...30, using: &random))
            let outcome = [CallOutcome.served, .served, .served, .throttled, .refused, .failed].randomElement(using: &random)!
            let tier: ServiceTier? = outcome == .served ? [ServiceTier.provisioned, .onDemand].randomElement(using: &random) : nil
            let latency = random.chance(0.1) ? edges.randomElement(using: &random)! : pow(10, Double.random(in: -5...8, using: &random))
            calls.append(
                call(
                    at,
                    owner: ["alice", "bob"].randomElement(using: &random)!,
                    reservation: [nil, 1, 2, 3].randomElement(using: &random)!,
                    model: ["m", "n"].randomElement(using: &random)!,
                    tier: tier,
                    outcome: outcome,
                    tokens: (Int.random(in: 0...500, using: &random), Int.random(in: 0...500, using: &random)),
                    latency: latency,
                    cost: Double.random(in: 0...0.01, using: &random)
                )
            )
        }
        // Some calls at the same instant, which keep their order by id.
        calls += calls.suffix(50).map {
            var same = $0
            same.cost *= 3
            return same
        }

        let migrated = try v3Ledger(calls)
        try Migrations.migrator.migrate(migrated, upTo: "v4-usage")

        // The roll-up of the time, over the same ledger: what v4 ran before it was frozen (the
        // live roll-up has not changed since).
        let reference = try v3Ledger(calls)
        try Migrations.migrator.migrate(reference, upTo: "v4-usage")
        try reference.write { db in
            try db.execute(sql: "DELETE FROM usage_hours; DELETE FROM reservation_activity")
            let stored = try Row.fetchAll(db, sql: "SELECT \(InvocationRecord.selection) FROM invocations ORDER BY at, id")
            try LedgerTransaction(db: db).rollUp(try stored.map { try InvocationRecord(row: $0) })
        }

        let (hours, activity) = try rolledUp(migrated)
        let (expectedHours, expectedActivity) = try rolledUp(reference)
        #expect(hours.count > 10 && activity.count > 10)
        #expect(hours == expectedHours)
        #expect(activity == expectedActivity)
    }
}
