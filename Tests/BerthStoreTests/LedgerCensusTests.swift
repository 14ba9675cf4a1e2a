import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

/// The one read `GET /metrics` makes of the ledger.
@Suite("Ledger census")
struct LedgerCensusTests {
    func call(at: Date, reservation: Int64, tokens: Int, outcome: CallOutcome = .served) -> InvocationRecord {
        InvocationRecord(
            at: at,
            owner: "alice",
            target: "r\(reservation)",
            reservationID: reservation,
            model: Fixtures.textModel.id,
            tier: outcome == .served ? .provisioned : nil,
            outcome: outcome,
            inputTokens: outcome == .served ? tokens / 2 : 0,
            outputTokens: outcome == .served ? tokens - tokens / 2 : 0,
            latencyMs: 3,
            cost: 0,
            budgetPerMinute: 20_000
        )
    }

    @Test("units by pool and state, reservations by status, and a live reservation's restarts and last full minute")
    func counts() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Ledger(path: dir.file("berth.db"))
        let shared = ComputeUnit(id: "shared-0", kind: "cpu", pool: .shared)
        let dedicated = Fixtures.dedicatedUnits(4).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) }
        try ledger.writeNow { try $0.syncCatalog(units: dedicated + [shared], models: [Fixtures.textModel], now: t(0)) }
        let live = try ledger.writeNow { tx in
            let live = try tx.insert(Fixtures.reservation(0, units: 2, start: t(0), end: nil))
            let gone = try tx.insert(Fixtures.reservation(1, units: 1, start: t(0), end: nil))
            try tx.apply(Planner.plan(try tx.snapshot(), now: t(0)))
            try tx.finish(reservationID: gone.id, status: .deleted, at: t(0))
            try tx.countServeRestart(reservationID: live.id)
            try tx.countServeRestart(reservationID: live.id)
            return live
        }
        // cpu-3 leaves the config: retired, since no lease holds it.
        try ledger.writeNow { try $0.syncCatalog(units: Array(dedicated.prefix(3)) + [shared], models: [Fixtures.textModel], now: t(0)) }
        // Now is 2m30s past t(0): the last full minute is the one starting at t(0) + 1m.
        let now = t(0).addingTimeInterval(150)
        try ledger.writeNow { tx in
            try tx.record([
                call(at: t(0).addingTimeInterval(30), reservation: live.id, tokens: 5000),
                call(at: t(0).addingTimeInterval(70), reservation: live.id, tokens: 300),
                call(at: t(0).addingTimeInterval(110), reservation: live.id, tokens: 100),
                call(at: t(0).addingTimeInterval(115), reservation: live.id, tokens: 0, outcome: .throttled),
                call(at: t(0).addingTimeInterval(130), reservation: live.id, tokens: 1000),
            ])
        }

        let census = try ledger.readNow { try $0.census(now: now) }
        let units = Dictionary(census.units.map { ("\($0.pool.rawValue) \($0.state)", $0.count) }, uniquingKeysWith: +)
        #expect(units == ["dedicated leased": 2, "dedicated free": 1, "dedicated retired": 1, "shared free": 1])
        #expect(census.reservationsByStatus == [.active: 1, .deleted: 1])
        #expect(census.jobsByStatus.isEmpty)
        var expected = LedgerCensus.LiveReservation(
            id: live.id,
            name: "r0",
            model: Fixtures.textModel.id,
            purpose: .inference,
            status: .active,
            queuedJobs: 0,
            serveRestarts: 2,
            tokensLastMinute: 400,
            budgetPerMinute: 20_000
        )
        // Its two units, the two the pool shows leased.
        expected.heldUnits = 2
        #expect(census.liveReservations == [expected])
    }

    @Test("a minute with no calls reads 0 tokens against the reservation's budget now")
    func quietMinute() throws {
        let ledger = try Ledger()
        try ledger.writeNow {
            try $0.syncCatalog(units: [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)], models: [Fixtures.textModel], now: t(0))
        }
        try ledger.writeNow { tx in
            _ = try tx.insert(Fixtures.reservation(0, units: 1, start: t(0), end: nil))
            try tx.apply(Planner.plan(try tx.snapshot(), now: t(0)))
        }
        let census = try ledger.readNow { try $0.census(now: t(1)) }
        #expect(census.liveReservations.map(\.tokensLastMinute) == [0])
        #expect(census.liveReservations.map(\.budgetPerMinute) == [Fixtures.textModel.tokensPerMinute])
    }
}

@Suite("Metrics scope in the ledger")
struct MetricsScopeQueryTests {
    @Test("a user's scope: names only they have held, finished ones included; base models and their own custom models")
    func scope() throws {
        let ledger = try Ledger()
        try ledger.writeNow {
            try $0.syncCatalog(units: [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)], models: [Fixtures.textModel], now: t(0))
        }
        try ledger.writeNow { tx in
            func insert(_ id: Int64, _ name: String, _ owner: String, _ status: ReservationStatus) throws {
                var reservation = Fixtures.reservation(id, units: 1, start: t(0), end: t(1), status: status)
                reservation.name = name
                reservation.owner = owner
                _ = try tx.insert(reservation)
            }
            try insert(1, "alices", "alice", .pending)
            try insert(2, "alices-old", "alice", .expired)
            try insert(3, "bobs", "bob", .pending)
            // Held by bob, then by alice: its series count both users' calls.
            try insert(4, "passed-on", "bob", .deleted)
            try insert(5, "passed-on", "alice", .pending)
            for owner in ["alice", "bob"] {
                var custom = Fixtures.textModel
                custom.id = "\(owner)-tuned"
                custom.baseModel = Fixtures.textModel.id
                custom.owner = owner
                try tx.registerCustomModel(custom, now: t(0))
            }
        }
        let alice = try ledger.readNow { try $0.metricsScope(owner: "alice") }
        #expect(alice == MetricsScope(owner: "alice", reservations: ["alices", "alices-old"], models: [Fixtures.textModel.id, "alice-tuned"]))
        let carol = try ledger.readNow { try $0.metricsScope(owner: "carol") }
        #expect(carol.reservations.isEmpty && carol.models == [Fixtures.textModel.id])
    }
}
