public import BerthCore
public import Foundation
import GRDB

/// One real-time call, as metered: served, throttled or refused.
public struct InvocationRecord: Sendable, Equatable {
    public var at: Date
    public var owner: String
    public var target: String
    public var reservationID: Int64?
    public var model: String
    /// `nil` when it was not served.
    public var tier: ServiceTier?
    public var outcome: CallOutcome
    public var inputTokens: Int
    public var outputTokens: Int
    public var latencyMs: Double
    public var cost: Double
    /// The reservation's budget per minute, for utilization.
    public var budgetPerMinute: Int

    public init(
        at: Date,
        owner: String,
        target: String,
        reservationID: Int64?,
        model: String,
        tier: ServiceTier?,
        outcome: CallOutcome,
        inputTokens: Int,
        outputTokens: Int,
        latencyMs: Double,
        cost: Double,
        budgetPerMinute: Int
    ) {
        self.at = at
        self.owner = owner
        self.target = target
        self.reservationID = reservationID
        self.model = model
        self.tier = tier
        self.outcome = outcome
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.latencyMs = latencyMs
        self.cost = cost
        self.budgetPerMinute = budgetPerMinute
    }
}

extension InvocationRecord {
    /// The columns `init(row:startingAt:)` reads, in its order: usage reports read calls by the
    /// million, where decoding by column name cost more than the query.
    static let selection = "at, owner, target, reservation_id, model, tier, outcome, input_tokens, output_tokens, latency_ms, cost"

    /// The one way a stored call is read: `selection`'s columns from `start` on.
    init(row: Row, startingAt start: Int = 0) throws {
        self.init(
            at: row[start],
            owner: row[start + 1],
            target: row[start + 2],
            reservationID: row[start + 3],
            model: row[start + 4],
            tier: try row.storedIfPresent(atIndex: start + 5),
            outcome: try row.stored(atIndex: start + 6),
            inputTokens: row[start + 7],
            outputTokens: row[start + 8],
            latencyMs: row[start + 9],
            cost: row[start + 10],
            budgetPerMinute: 0
        )
    }
}

public struct InvocationCounts: Sendable, Equatable {
    public var calls: Int
    public var served: Int
    public var throttled: Int
    public var inputTokens: Int
    public var outputTokens: Int

    public init(calls: Int, served: Int, throttled: Int, inputTokens: Int, outputTokens: Int) {
        self.calls = calls
        self.served = served
        self.throttled = throttled
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

extension LedgerTransaction {
    /// Records a batch of calls and adds them to their reservations' per-minute rollups.
    public func record(_ invocations: [InvocationRecord]) throws {
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO invocations (\(InvocationRecord.selection))
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        )
        let rollup = try db.cachedStatement(
            sql: """
                INSERT INTO reservation_minutes (reservation_id, minute, tokens, calls, throttled, budget) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (reservation_id, minute) DO UPDATE SET
                    tokens = tokens + excluded.tokens, calls = calls + excluded.calls, throttled = throttled + excluded.throttled
                """
        )
        struct Minute: Hashable {
            var reservation: Int64
            var minute: Date
        }
        var minutes: [Minute: (tokens: Int, calls: Int, throttled: Int, budget: Int)] = [:]
        for call in invocations {
            try insert.execute(arguments: [
                call.at.stored, call.owner, call.target, call.reservationID, call.model, call.tier?.rawValue, call.outcome.rawValue,
                call.inputTokens, call.outputTokens, call.latencyMs, call.cost,
            ])
            // Only what the reservation itself served counts against its budget.
            if let reservation = call.reservationID, call.tier != .onDemand {
                let key = Minute(
                    reservation: reservation,
                    minute: Date(timeIntervalSince1970: (call.at.timeIntervalSince1970 / 60).rounded(.down) * 60)
                )
                var sum = minutes[key] ?? (0, 0, 0, call.budgetPerMinute)
                sum.tokens += call.outcome.usedTokens ? call.inputTokens + call.outputTokens : 0
                sum.calls += 1
                sum.throttled += call.outcome == .throttled ? 1 : 0
                minutes[key] = sum
            }
        }
        // One row update per reservation and minute for the whole batch, not one per call.
        for (key, sum) in minutes {
            try rollup.execute(arguments: [key.reservation, key.minute.stored, sum.tokens, sum.calls, sum.throttled, sum.budget])
        }
        // The hourly rows and activity spans follow in `rollUpRecorded`.
    }

    /// Counts of calls to a reservation (or, with `nil`, to everything).
    public func invocationCounts(reservationID: Int64?) throws -> InvocationCounts {
        let filter = reservationID == nil ? "" : "WHERE reservation_id = ?"
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT COUNT(*), COALESCE(SUM(outcome = 'served'), 0), COALESCE(SUM(outcome = 'throttled'), 0),
                       COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0)
                FROM invocations \(filter)
                """,
            arguments: reservationID.map { [$0] } ?? []
        )
        return InvocationCounts(
            calls: row?[0] ?? 0,
            served: row?[1] ?? 0,
            throttled: row?[2] ?? 0,
            inputTokens: row?[3] ?? 0,
            outputTokens: row?[4] ?? 0
        )
    }

    /// Tokens used ÷ tokens reservable, per minute, for an inference reservation.
    public func utilization(reservationID: Int64) throws -> [(minute: Date, tokens: Int, budget: Int)] {
        try Row.fetchAll(
            db,
            sql: "SELECT minute, tokens, budget FROM reservation_minutes WHERE reservation_id = ? ORDER BY minute",
            arguments: [reservationID]
        ).map { ($0[0], $0[1], $0[2]) }
    }

    public func countServeRestart(reservationID: Int64) throws {
        try db.execute(sql: "UPDATE reservations SET serve_restarts = serve_restarts + 1 WHERE id = ?", arguments: [reservationID])
    }

    /// Adds what one of the reservation's serve processes used, as its cgroup counted it when it ended.
    public func addServeResources(reservationID: Int64, cpuSeconds: Double?, peakMemoryBytes: Int64?) throws {
        try db.execute(
            sql: """
                UPDATE reservations SET serve_cpu_seconds = serve_cpu_seconds + ?,
                serve_peak_memory_bytes = MAX(COALESCE(serve_peak_memory_bytes, 0), COALESCE(?, 0)) WHERE id = ?
                """,
            arguments: [cpuSeconds ?? 0, peakMemoryBytes, reservationID]
        )
    }

    /// Every GPU that the live reservation named `name` holds has been under the idle
    /// threshold since `since`: a quiet span opens, unless one is open.
    public func openGPUQuietSpan(reservation name: String, since: Date) throws {
        try db.execute(
            sql: """
                INSERT INTO gpu_quiet_spans (reservation_id, start)
                SELECT id, ? FROM reservations r WHERE name = ? AND status IN ('pending', 'active')
                  AND NOT EXISTS (SELECT 1 FROM gpu_quiet_spans q WHERE q.reservation_id = r.id AND q."end" IS NULL)
                """,
            arguments: [since.stored, name]
        )
    }

    /// Its GPUs got busy again at `at` (or it let them go): its open quiet span closes.
    public func closeGPUQuietSpan(reservation name: String, at: Date) throws {
        try db.execute(
            sql: """
                UPDATE gpu_quiet_spans SET "end" = MAX(start, ?) WHERE "end" IS NULL
                  AND reservation_id IN (SELECT id FROM reservations WHERE name = ?)
                """,
            arguments: [at.stored, name]
        )
    }

    /// Closes every open quiet span at `at`: nothing watched the GPUs after that.
    public func closeGPUQuietSpans(at: Date) throws {
        try db.execute(sql: #"UPDATE gpu_quiet_spans SET "end" = MAX(start, ?) WHERE "end" IS NULL"#, arguments: [at.stored])
    }

    /// The reservation's quiet spans that reach into `[from, to)`.
    public func gpuQuietSpans(reservationID: Int64, from: Date, to: Date) throws -> [(start: Date, end: Date?)] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT start, "end" FROM gpu_quiet_spans
                WHERE reservation_id = ? AND start < ? AND ("end" IS NULL OR "end" > ?) ORDER BY start
                """,
            arguments: [reservationID, to.stored, from.stored]
        ).map { ($0[0], $0[1]) }
    }

    /// What the reservation's ended serve processes used, added up.
    public func serveResources(reservationID: Int64) throws -> (cpuSeconds: Double, peakMemoryBytes: Int64?) {
        let row = try Row.fetchOne(
            db,
            sql: "SELECT serve_cpu_seconds, serve_peak_memory_bytes FROM reservations WHERE id = ?",
            arguments: [reservationID]
        )
        return (row?[0] ?? 0, row?[1])
    }

    public func serveRestarts(reservationID: Int64) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT serve_restarts FROM reservations WHERE id = ?", arguments: [reservationID]) ?? 0
    }
}
