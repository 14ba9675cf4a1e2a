public import BerthCore
import Foundation
import GRDB

/// Usage rollups: what calls add up to per hour, and the spans in which a reservation was called.
/// They are written in the same transaction as the calls themselves, so a report over a month
/// reads hundreds of rows instead of millions, and can never disagree with the raw records.
extension LedgerTransaction {
    /// Calls with less than this between them belong to one span of activity.
    static let activityJoin: TimeInterval = 60

    /// Adds a batch of calls to the hourly rollup and to their reservations' activity spans.
    func rollUp(_ calls: [InvocationRecord]) throws {
        struct Key: Hashable {
            var hour: Int64
            var reservation: Int64
            var model: String
            var owner: String
        }
        var hours: [Key: InvocationSlice] = [:]
        var called: [Int64: [Date]] = [:]
        for call in calls {
            let hour = Int64((call.at.timeIntervalSince1970 / 3600).rounded(.down)) * 3600
            let key = Key(hour: hour, reservation: call.reservationID ?? 0, model: call.model, owner: call.owner)
            var slice =
                hours[key]
                ?? InvocationSlice(
                    at: Date(timeIntervalSince1970: Double(hour)),
                    reservationID: call.reservationID,
                    model: call.model,
                    owner: call.owner
                )
            Self.count(call, into: &slice)
            hours[key] = slice
            if let reservation = call.reservationID, call.outcome.usedTokens || call.outcome == .throttled {
                called[reservation, default: []].append(call.at)
            }
        }
        let existing = try db.cachedStatement(
            sql: "SELECT latency FROM usage_hours WHERE hour = ? AND reservation_id = ? AND model = ? AND owner = ?"
        )
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO usage_hours (hour, reservation_id, model, owner, calls, served, throttled, input_tokens, output_tokens,
                                         provisioned_tokens, cost, latency)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (hour, reservation_id, model, owner) DO UPDATE SET
                    calls = calls + excluded.calls, served = served + excluded.served, throttled = throttled + excluded.throttled,
                    input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
                    provisioned_tokens = provisioned_tokens + excluded.provisioned_tokens, cost = cost + excluded.cost,
                    latency = excluded.latency
                """
        )
        for (key, slice) in hours {
            var latency = slice.latency
            if let stored = try Data.fetchOne(existing, arguments: [key.hour, key.reservation, key.model, key.owner]) {
                latency.merge(encoded: [UInt8](stored))
            }
            try upsert.execute(arguments: [
                key.hour, key.reservation, key.model, key.owner, slice.calls, slice.served, slice.throttled,
                slice.inputTokens, slice.outputTokens, slice.provisionedTokens, slice.cost, Data(latency.encoded()),
            ])
        }
        for (reservation, times) in called { try extendActivity(reservation: reservation, times: times.sorted()) }
    }

    static func count(_ call: InvocationRecord, into slice: inout InvocationSlice) {
        slice.calls += 1
        if call.outcome == .throttled { slice.throttled += 1 }
        guard call.outcome.usedTokens else { return }
        if call.outcome == .served { slice.served += 1 }
        slice.inputTokens += call.inputTokens
        slice.outputTokens += call.outputTokens
        slice.cost += call.cost
        if call.reservationID != nil, call.tier != .onDemand { slice.provisionedTokens += call.inputTokens + call.outputTokens }
        slice.latency.add(milliseconds: call.latencyMs)
    }

    /// Joins sorted call times into spans and adds them, extending the reservation's last span
    /// when the first call follows it closely.
    private func extendActivity(reservation: Int64, times: [Date]) throws {
        let spans = Self.joined(times.map(\.timeIntervalSince1970))
        guard let first = spans.first else { return }
        let last = try lastActivity(reservation: reservation)
        var rest = spans[...]
        if let last, Self.extends(first, last: (last.first, last.last)) {
            try db.execute(
                sql: "UPDATE reservation_activity SET first_call = min(first_call, ?), last_call = max(last_call, ?) WHERE rowid = ?",
                arguments: [first.start, first.end, last.rowid]
            )
            rest = rest.dropFirst()
        }
        for span in rest {
            try db.execute(
                sql: "INSERT INTO reservation_activity (reservation_id, first_call, last_call) VALUES (?, ?, ?)",
                arguments: [reservation, span.start, span.end]
            )
        }
    }

    /// Sorted call times (epoch seconds) joined into spans: calls closer than `activityJoin`
    /// are one span.
    static func joined(_ times: [Double]) -> [(start: Double, end: Double)] {
        var spans: [(start: Double, end: Double)] = []
        for time in times {
            if let last = spans.last, time - last.end <= activityJoin {
                spans[spans.count - 1].end = max(last.end, time)
            } else {
                spans.append((time, time))
            }
        }
        return spans
    }

    /// Whether a new span continues a reservation's last stored one.
    static func extends(_ span: (start: Double, end: Double), last: (first: Double, last: Double)) -> Bool {
        span.start - last.last <= activityJoin && span.end >= last.first
    }

    private func lastActivity(reservation: Int64) throws -> (rowid: Int64, first: Double, last: Double)? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT rowid, first_call, last_call FROM reservation_activity WHERE reservation_id = ? ORDER BY last_call DESC LIMIT 1
                    """
            ),
            arguments: [reservation]
        ).map { ($0[0], $0[1], $0[2]) }
    }

    /// Whether calls were recorded since the last roll-up.
    public func callsToRollUp() throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT EXISTS (SELECT 1 FROM invocations WHERE id > (SELECT through FROM usage_rollup WHERE id = 1))
                    """
            )
        ) ?? false
    }

    /// Rolls up calls recorded since the last roll-up, at most `limit` of them, oldest first,
    /// and moves the mark past them: the per-call write stays one insert, and the hourly rows
    /// and activity spans follow within a moment (the meter calls this a few times a second).
    /// Returns how many it rolled up.
    @discardableResult
    public func rollUpRecorded(limit: Int = 50_000) throws -> Int {
        let through = try Int64.fetchOne(db.cachedStatement(sql: "SELECT through FROM usage_rollup WHERE id = 1")) ?? 0
        var last = through
        let calls = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT id, \(InvocationRecord.selection) FROM invocations WHERE id > ? ORDER BY id LIMIT ?
                    """
            ),
            arguments: [through, limit]
        ).map { row -> InvocationRecord in
            last = max(last, row[0])
            return try InvocationRecord(row: row, startingAt: 1)
        }
        guard !calls.isEmpty else { return 0 }
        try rollUp(calls)
        try db.cachedStatement(sql: "UPDATE usage_rollup SET through = ? WHERE id = 1").execute(arguments: [last])
        return calls.count
    }

    /// Everything a usage report over `query`'s window needs, in one read: the reservations near
    /// the window with their leases, jobs and activity; the calls (whole hours from the rollup,
    /// the part-hours at the edges from the raw records); tokens per minute (per hour for
    /// windows over two days) for the series. `owner` limits it to one user's reservations and calls.
    public func usageFacts(_ query: UsageQuery, owner: String?) throws -> UsageFacts {
        let lo = query.from.addingTimeInterval(-query.idleThreshold)
        let hi = query.to.addingTimeInterval(query.idleThreshold)
        let ownerFilter = owner == nil ? "" : "AND owner = ?"
        let ownerArgument: [(any DatabaseValueConvertible)?] = owner.map { [$0] } ?? []

        // 1. Calls. Those after the roll-up mark are not in the hourly rows yet.
        let through = try Int64.fetchOne(db, sql: "SELECT through FROM usage_rollup WHERE id = 1") ?? 0
        var slices: [InvocationSlice] = []
        var samples: [TokenSample] = []
        let hourly = query.to.timeIntervalSince(query.from) > 2 * 86_400
        let fullStart = (query.from.timeIntervalSince1970 / 3600).rounded(.up) * 3600
        let fullEnd = (query.to.timeIntervalSince1970 / 3600).rounded(.down) * 3600
        var edges: [(Date, Date)] = []
        if fullStart < fullEnd {
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT hour, reservation_id, model, owner, calls, served, throttled, input_tokens, output_tokens,
                           provisioned_tokens, cost, latency
                    FROM usage_hours WHERE hour >= ? AND hour < ? \(ownerFilter)
                    """,
                arguments: StatementArguments([Int64(fullStart), Int64(fullEnd)] + ownerArgument)
            )
            while let row = try rows.next() {
                let reservation: Int64 = row[1]
                let slice = InvocationSlice(
                    at: Date(timeIntervalSince1970: Double(row[0] as Int64)),
                    reservationID: reservation == 0 ? nil : reservation,
                    model: row[2],
                    owner: row[3],
                    calls: row[4],
                    served: row[5],
                    throttled: row[6],
                    inputTokens: row[7],
                    outputTokens: row[8],
                    provisionedTokens: row[9],
                    cost: row[10],
                    latency: LatencyHistogram(encoded: [UInt8](row[11] as Data))
                )
                if hourly, let reservation = slice.reservationID, slice.provisionedTokens > 0 {
                    samples.append(TokenSample(reservationID: reservation, at: slice.at, tokens: slice.provisionedTokens, seconds: 3600))
                }
                slices.append(slice)
            }
            // Calls of those hours not rolled up yet, counted from their records. The unary
            // plus keeps SQLite on the short rowid range past the mark instead of an index over
            // the whole window (millions of calls).
            struct Key: Hashable {
                var hour: Int64
                var reservation: Int64?
                var model: String
                var owner: String
            }
            var pending: [Key: InvocationSlice] = [:]
            let recent = try Row.fetchCursor(
                db,
                sql: """
                    SELECT \(InvocationRecord.selection) FROM invocations WHERE id > ? AND +at >= ? AND +at < ? \(owner == nil ? "" : "AND +owner = ?")
                    """,
                arguments: StatementArguments(
                    [through, Date(timeIntervalSince1970: fullStart).stored, Date(timeIntervalSince1970: fullEnd).stored] + ownerArgument
                )
            )
            while let row = try recent.next() {
                let call = try InvocationRecord(row: row)
                let hour = Int64((call.at.timeIntervalSince1970 / 3600).rounded(.down)) * 3600
                let key = Key(hour: hour, reservation: call.reservationID, model: call.model, owner: call.owner)
                var slice =
                    pending[key]
                    ?? InvocationSlice(
                        at: Date(timeIntervalSince1970: Double(hour)),
                        reservationID: call.reservationID,
                        model: call.model,
                        owner: call.owner
                    )
                Self.count(call, into: &slice)
                pending[key] = slice
            }
            for slice in pending.values {
                if hourly, let reservation = slice.reservationID, slice.provisionedTokens > 0 {
                    samples.append(TokenSample(reservationID: reservation, at: slice.at, tokens: slice.provisionedTokens, seconds: 3600))
                }
                slices.append(slice)
            }
            if query.from.timeIntervalSince1970 < fullStart { edges.append((query.from, Date(timeIntervalSince1970: fullStart))) }
            if fullEnd < query.to.timeIntervalSince1970 { edges.append((Date(timeIntervalSince1970: fullEnd), query.to)) }
        } else {
            edges.append((query.from, query.to))
        }
        for (start, end) in edges {
            struct Key: Hashable {
                var reservation: Int64?
                var model: String
                var owner: String
            }
            var byKey: [Key: InvocationSlice] = [:]
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT \(InvocationRecord.selection) FROM invocations WHERE at >= ? AND at < ? \(ownerFilter)
                    """,
                arguments: StatementArguments([start.stored, end.stored] + ownerArgument)
            )
            while let row = try rows.next() {
                let call = try InvocationRecord(row: row)
                let key = Key(reservation: call.reservationID, model: call.model, owner: call.owner)
                var slice = byKey[key] ?? InvocationSlice(at: start, reservationID: call.reservationID, model: call.model, owner: call.owner)
                Self.count(call, into: &slice)
                byKey[key] = slice
            }
            for slice in byKey.values {
                slices.append(slice)
                if hourly, let reservation = slice.reservationID, slice.provisionedTokens > 0 {
                    samples.append(
                        TokenSample(
                            reservationID: reservation,
                            at: slice.at,
                            tokens: slice.provisionedTokens,
                            seconds: end.timeIntervalSince(start)
                        )
                    )
                }
            }
        }

        // 2. Reservations: those holding units near the window, with jobs submitted in it, or called in it.
        var ids = Set(
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT leases.reservation_id FROM leases JOIN reservations ON reservations.id = leases.reservation_id
                    WHERE leases.start < ? AND (leases."end" IS NULL OR leases."end" > ?) \(ownerFilter)
                    UNION
                    SELECT reservation_id FROM jobs WHERE submitted_at >= ? AND submitted_at < ? \(ownerFilter)
                    """,
                arguments: StatementArguments([hi.stored, lo.stored] + ownerArgument + [query.from.stored, query.to.stored] + ownerArgument)
            )
        )
        ids.formUnion(slices.compactMap(\.reservationID))
        var reservations: [ReservationFacts] = []
        var models: [String: Model] = [:]
        for id in ids.sorted() {
            guard let r = try reservation(id: id) else { continue }
            if let owner, r.owner != owner { continue }
            if models[r.model] == nil { models[r.model] = try model(id: r.model) }
            guard let model = models[r.model] else { continue }
            let jobs = try Row.fetchAll(
                db,
                sql: """
                    SELECT status, submitted_at, started_at, ended_at, units_needed, cpu_seconds, peak_memory_bytes FROM jobs
                    WHERE reservation_id = ? AND submitted_at < ? AND (ended_at IS NULL OR ended_at > ?)
                    """,
                arguments: [id, hi, lo]
            ).map { row in
                JobFacts(
                    status: try row.stored(atIndex: 0),
                    submittedAt: row[1],
                    startedAt: row[2],
                    endedAt: row[3],
                    units: row[4],
                    cpuSeconds: row[5],
                    peakMemoryBytes: row[6]
                )
            }
            let activity = try activity(reservation: id, from: lo.timeIntervalSince1970, to: hi.timeIntervalSince1970, since: through)
            let price = model.price.modelUnitHour[r.commitment] ?? model.price.modelUnitHour[.none] ?? 0
            reservations.append(
                ReservationFacts(
                    id: id,
                    name: r.name,
                    owner: r.owner,
                    model: r.model,
                    purpose: r.purpose,
                    commitment: r.commitment,
                    unitsPerModelUnit: model.unitsPerModelUnit,
                    tokensPerMinute: model.tokensPerMinute,
                    pricePerModelUnitHour: price,
                    modelUnits: r.modelUnits,
                    leases: try leases(reservationID: id).map { Span(start: $0.start, end: $0.end) },
                    jobs: jobs,
                    activity: activity,
                    gpuQuiet: try gpuQuietSpans(reservationID: id, from: lo, to: hi).map { Span(start: $0.start, end: $0.end) }
                )
            )
        }

        // 3. Inference reservations' minutes: for the advice, and the series of short windows.
        // A minute that began before the window still has its part inside it.
        var minutes: [ReservationMinute] = []
        let inference = reservations.filter { $0.purpose == .inference }
        if !inference.isEmpty {
            let list = inference.map { String($0.id) }.joined(separator: ",")
            minutes = try Row.fetchAll(
                db,
                sql: """
                    SELECT reservation_id, minute, tokens, calls, throttled, budget FROM reservation_minutes
                    WHERE minute > ? AND minute < ? AND reservation_id IN (\(list))
                    """,
                arguments: [query.from.addingTimeInterval(-60).stored, query.to.stored]
            ).map {
                ReservationMinute(reservationID: $0[0], minute: $0[1], tokens: $0[2], calls: $0[3], throttled: $0[4], budget: $0[5])
            }
        }
        if !hourly {
            samples = minutes.filter { $0.tokens > 0 }.map { TokenSample(reservationID: $0.reservationID, at: $0.minute, tokens: $0.tokens) }
        }
        return UsageFacts(
            reservations: reservations,
            invocations: slices,
            tokenSamples: samples,
            minutes: minutes.filter { $0.minute >= query.from }
        )
    }

    /// A reservation's activity spans that reach into `[from, to)`, with its calls recorded
    /// after the roll-up mark `since` joined in as the roll-up will join them.
    private func activity(reservation: Int64, from: Double, to: Double, since: Int64) throws -> [Span] {
        var spans: [Int64: (start: Double, end: Double)] = [:]
        for row in try Row.fetchAll(
            db,
            sql: """
                SELECT rowid, first_call, last_call FROM reservation_activity WHERE reservation_id = ? AND last_call >= ? AND first_call < ?
                """,
            arguments: [reservation, from, to]
        ) {
            spans[row[0] as Int64] = (row[1], row[2])
        }
        // Sorted here: an ORDER BY at would have SQLite walk the whole `at` index in order
        // instead of the few rows past the mark.
        let times = try Date.fetchAll(
            db,
            sql: """
                SELECT at FROM invocations WHERE id > ? AND +reservation_id = ? AND outcome IN ('served', 'throttled')
                """,
            arguments: [since, reservation]
        ).map(\.timeIntervalSince1970).sorted()
        var fresh = Self.joined(times)[...]
        if let first = fresh.first, let last = try lastActivity(reservation: reservation), Self.extends(first, last: (last.first, last.last)) {
            spans[last.rowid] = (min(last.first, first.start), max(last.last, first.end))
            fresh = fresh.dropFirst()
        }
        let all = Array(spans.values) + fresh.map { ($0.start, $0.end) }
        return all.filter { $0.end >= from && $0.start < to }.sorted { $0.start < $1.start }
            .map { Span(start: Date(timeIntervalSince1970: $0.start), end: Date(timeIntervalSince1970: $0.end)) }
    }
}
