import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird
import Synchronization

/// `/v1/reservations`: reserve, list, show, update and release. Every change goes through
/// the commit group, so it shares a transaction, an fsync and a scheduling cycle with the
/// changes that arrive beside it.
struct ReservationsController: Sendable {
    let ledger: Ledger
    let commits: CommitGroup
    let serve: any ServeProcesses
    let clock: @Sendable () -> Date
    /// Tells the services that follow the ledger to look again.
    let changed: @Sendable () -> Void
    /// The Slurm reservations of reservations on Slurm units, when the config has a cluster.
    var cluster: SlurmReservations? = nil

    var now: Date { clock() }

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("reservations") { request, context in try await create(request, context) }
        group.get("reservations") { request, context in try await list(request, context) }
        group.get("reservations/:name") { _, context in try await show(context) }
        group.patch("reservations/:name") { request, context in try await update(request, context) }
        group.delete("reservations/:name") { request, context in try await release(request, context) }
    }

    func create(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let body = try await Requests.body(request, context: context)
        let input = try Requests.decode(CreateReservationRequest.self, from: body)
        let now = self.now

        // 1. Check every field before touching the ledger.
        try checkName(input.name)
        try checkModelUnits(input.modelUnits)
        let purpose = try enumField(Purpose.self, input.purpose ?? Purpose.inference.rawValue, field: "purpose")
        let commitment = try enumField(Commitment.self, input.commitment ?? Commitment.none.rawValue, field: "commitment")
        let duration: TimeInterval? = try input.duration.map { text in
            guard commitment == .none else {
                throw APIError.invalid(
                    field: "duration",
                    "a \(commitment.rawValue) commitment sets the end itself; leave out duration or use commitment none"
                )
            }
            guard let value = TimeExpression.parseDuration(text), value >= 1 else {
                throw APIError.invalid(field: "duration", "'\(text)' is not a duration: use a whole number and a unit, such as 90s, 30m, 8h or 2d")
            }
            return value
        }
        let start = try Self.startTime(input.start, now: now)
        let wait = input.wait ?? false
        let spillover = input.spillover ?? false

        let response = try await commits.respond(to: request, caller: caller, body: body, route: "POST /v1/reservations") { tx in
            // 2. The model decides the size and what the purpose allows.
            let model = try tx.visibleModel(input.model, caller: caller)
            try refuse(ReservationRules.purposeProblem(purpose, model: model, spillover: spillover))
            let units = input.modelUnits * model.unitsPerModelUnit
            if try tx.hasLiveReservation(named: input.name) {
                throw APIError(.nameTaken, "a reservation named '\(input.name)' already exists; choose another name")
            }
            // 3. Admission against the capacity calendar of one executor's units.
            let snapshot = try tx.snapshot(readingQueues: false)
            let pools = snapshot.pools
            let (admission, executor, pinned) = Planner.admit(
                units: units,
                start: start,
                commitment: commitment,
                duration: duration,
                wait: wait,
                snapshot: snapshot,
                now: now
            )
            let reservation: Reservation
            switch admission {
            case .refuse(let refusal):
                var error = Self.capacityError(refusal, start: start, end: Reservation.end(start: start, commitment: commitment, duration: duration))
                if pools.count > 1 {
                    let sizes = pools.map { "\($0.calendar.total) \($0.executor.isEmpty ? "on this host" : "on \($0.executor.capitalized)")" }
                    error.message += " (a reservation runs on the units of one executor: \(sizes.joined(separator: ", ")))"
                }
                throw error
            case .admit(let admittedStart, let end):
                reservation = Reservation(
                    id: 0,
                    name: input.name,
                    owner: caller.user,
                    model: model.id,
                    purpose: purpose,
                    modelUnits: input.modelUnits,
                    units: units,
                    commitment: commitment,
                    // Written as the ledger keeps times, so the calendar reads back what it admitted.
                    start: Ledger.asStored(admittedStart),
                    end: end.map(Ledger.asStored),
                    duration: duration,
                    status: .pending,
                    waiting: false,
                    spillover: spillover,
                    createdAt: now,
                    executor: executor,
                    pinnedUnits: pinned
                )
            case .queue:
                reservation = Reservation(
                    id: 0,
                    name: input.name,
                    owner: caller.user,
                    model: model.id,
                    purpose: purpose,
                    modelUnits: input.modelUnits,
                    units: units,
                    commitment: commitment,
                    start: start,
                    end: nil,
                    duration: duration,
                    status: .pending,
                    waiting: true,
                    spillover: spillover,
                    createdAt: now
                )
            }
            let inserted = try tx.insert(reservation)
            try cluster?.admit(inserted.id, tx: tx, now: now)
            // 4. The scheduler runs before the answer is rendered, in the same transaction: one
            //    that starts now is answered active, with its leases.
            return Change(status: 201) { tx in
                try Views.reservation(try tx.reservation(id: inserted.id) ?? inserted, in: tx)
            }
        }
        context.logger.info("reserved", metadata: ["reservation": "\(input.name)", "owner": "\(caller.user)", "status": "\(response.status.code)"])
        // An inference reservation is reported active only once its serve process answers:
        // wait for it (or for its failure) before answering.
        if purpose == .inference, let made = try await ledger.read({ tx in try tx.reservation(named: input.name) }),
            made.status == .active, made.owner == caller.user
        {
            _ = await serve.port(for: .reservation(made.id))
            let view = try await ledger.read { tx in try Views.reservation(try tx.reservation(id: made.id) ?? made, in: tx) }
            return try Requests.json(await presented(view, id: made.id), status: .created)
        }
        return response
    }

    /// How the API shows a reservation: an active inference reservation whose serve process
    /// does not answer yet is still `pending`, "starting its serve process".
    func presented(_ view: ReservationView, id: Int64) async -> ReservationView {
        guard view.purpose == Purpose.inference.rawValue, view.status == ReservationStatus.active.rawValue else { return view }
        var shown = view
        shown.servePort = serve.readyPort(for: .reservation(id))
        if shown.servePort == nil {
            shown.status = ReservationStatus.pending.rawValue
            shown.statusReason = "starting its serve process"
        }
        return shown
    }

    /// `GET /v1/reservations?status=&owner=&purpose=&since=&limit=&cursor=&fields=&shape=`: a
    /// page of the reservations the filters let through, newest first (`ListingQuery`), each
    /// with only the `fields` named when they are, as objects or as rows. `since` is the time a reservation was made
    /// (`created_at`). `status` filters on the status the ledger keeps: an active inference
    /// reservation whose serve process is starting is listed as active and shown as `pending`
    /// (`presented`).
    func list(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let query = try ListingQuery(
            request.uri.queryParameters,
            path: "/v1/reservations",
            what: "reservations",
            filters: ["status", "purpose"],
            caller: caller,
            now: now
        )
        let fields = try query.fields(of: "a reservation", ReservationView.fieldNames)
        let shape = try query.shape(fields: fields)
        let filter = ReservationFilter(
            statuses: try query.values("status", "a reservation status"),
            owner: query.owner,
            purpose: try query.value("purpose", "a purpose"),
            since: query.since
        )
        let (rows, more, lastID) = try await ledger.read { tx in
            let page = try tx.reservations(filter, before: query.before, limit: query.limit)
            // Fields that leave out the leases (as the table's do) need none read.
            let leases = fields?.contains("leases") == false ? [:] : try tx.leases(reservationIDs: page.items.map(\.id))
            return (page.items.map { ($0.id, Views.reservation($0, leases: leases[$0.id] ?? [])) }, page.more, page.items.last?.id)
        }
        var shown: [ReservationView] = []
        for (id, view) in rows { shown.append(await presented(view, id: id)) }
        return try Requests.json(
            ReservationList(
                reservations: shown,
                nextCursor: ListingQuery.nextCursor(after: lastID, more: more),
                more: more,
                fields: fields,
                shape: shape
            )
        )
    }

    func show(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let name = try context.parameter("name")
        // Every answered call is in the ledger already (the meter commits it before the answer).
        let (id, view) = try await ledger.read { tx in
            let r = try tx.visibleReservation(name, caller: caller)
            var view = try Views.reservation(r, in: tx)
            if r.purpose == .inference {
                let counts = try tx.invocationCounts(reservationID: r.id)
                view.invocations = InvocationCountsView(
                    calls: counts.calls,
                    served: counts.served,
                    throttled: counts.throttled,
                    inputTokens: counts.inputTokens,
                    outputTokens: counts.outputTokens
                )
                view.serveRestarts = try tx.serveRestarts(reservationID: r.id)
                let used = try tx.serveResources(reservationID: r.id)
                if let peak = used.peakMemoryBytes {
                    view.serveCpuSeconds = used.cpuSeconds
                    view.servePeakMemoryBytes = peak
                }
            }
            return (r.id, view)
        }
        return try Requests.json(await presented(view, id: id))
    }

    func update(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let name = try context.parameter("name")
        let body = try await Requests.body(request, context: context)
        let input = try Requests.decode(UpdateReservationRequest.self, from: body)
        guard input.name != nil || input.model != nil || input.modelUnits != nil else {
            throw APIError(.invalidArgument, "request body: give at least one of name, model, model_units")
        }
        if let newName = input.name { try checkName(newName) }
        if let units = input.modelUnits { try checkModelUnits(units, field: "model_units") }
        let now = self.now
        // Not keyed: an update states the end result, so a retry changes nothing more. It
        // shares the commit group with creations and releases, the one path that writes
        // reservations.
        let answer = try await commits.commit(owner: caller.user, key: nil, route: "PATCH /v1/reservations/\(name)", body: body) { tx in
            var r = try tx.visibleReservation(name, caller: caller)
            guard !r.status.isTerminal else {
                throw APIError(.invalidState, "reservation '\(name)' is \(r.status.rawValue); only pending and active reservations can be updated")
            }
            if let newName = input.name, newName != r.name {
                if try tx.hasLiveReservation(named: newName) {
                    throw APIError(.nameTaken, "a reservation named '\(newName)' already exists; choose another name")
                }
                r.name = newName
            }
            var model = try tx.liveModel(r.model)
            if let modelID = input.model, modelID != r.model {
                let target = try tx.visibleModel(modelID, caller: caller)
                guard target.family == model.family else {
                    throw APIError.invalid(
                        field: "model",
                        "'\(modelID)' is not of the same base as '\(r.model)' (\(model.family)); a reservation can only move within its base model's family"
                    )
                }
                try refuse(ReservationRules.purposeProblem(r.purpose, model: target, spillover: r.spillover))
                r.model = target.id
                model = target
            }
            if let modelUnits = input.modelUnits, modelUnits != r.modelUnits {
                guard modelUnits > r.modelUnits else {
                    throw APIError.invalid(
                        field: "model_units",
                        "units are never taken away mid-term: \(r.modelUnits) is the least this reservation can have; release it and reserve again for fewer"
                    )
                }
                let units = modelUnits * model.unitsPerModelUnit
                let snapshot = try tx.snapshot(readingQueues: false)
                let growth =
                    Planner.admitGrowth(r, to: units, calendar: snapshot.growthCalendar(of: r), now: now).map { PinnedGrowth.refuse($0) }
                    ?? Planner.admitPinnedGrowth(r, to: units, snapshot: snapshot, now: now)
                switch growth {
                case .refuse(let refusal):
                    throw APIError(
                        .insufficientCapacity,
                        "adding \(refusal.needed) units needs them free until \(r.end.map(TimeExpression.format) ?? "the open end"), but only \(refusal.free) of \(refusal.total) dedicated units are; ask for fewer model units"
                    )
                case .admit(let pinned):
                    r.pinnedUnits = pinned
                }
                r.modelUnits = modelUnits
                r.units = units
            }
            try tx.update(r)
            let updated = r
            return Change(status: 200) { tx in try Views.reservation(try tx.reservation(id: updated.id) ?? updated, in: tx) }
        }.encoded()
        let view = try Wire.decoder().decode(ReservationView.self, from: answer.body)
        context.logger.info(
            "updated",
            metadata: [
                "reservation": "\(name)", "name": "\(view.name)", "model": "\(view.model)", "model_units": "\(view.modelUnits)",
                "by": "\(caller.user)",
            ]
        )
        changed()
        await cluster?.sync()
        return Requests.respond(status: answer.status, body: answer.body)
    }

    /// Released in the commit group with the creations, so a burst of releases shares one
    /// transaction, one fsync and one scheduling cycle (which starts what the freed units let
    /// start), as a burst of reservations does.
    func release(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let name = try context.parameter("name")
        let now = self.now
        // Set in the batch's transaction: a replayed answer (Idempotency-Key) released nothing.
        let releasedInference = Mutex(false)
        let response = try await commits.respond(to: request, caller: caller, body: Data(), route: "DELETE /v1/reservations/\(name)") { tx in
            let r = try tx.visibleReservation(name, caller: caller)
            switch Planner.release(r, now: now) {
            case .alreadyFinished(let status):
                throw APIError(.invalidState, "reservation '\(name)' is already \(status.rawValue)")
            case .commitmentActive(let until):
                throw APIError(
                    .commitmentActive,
                    "reservation '\(name)' has a \(r.commitment.rawValue) commitment until \(TimeExpression.format(until)); it cannot be released before then and expires by itself at that time"
                )
            case .release(let at):
                try tx.finish(reservationID: r.id, status: .deleted, at: at, reason: "released by \(caller.user)")
                releasedInference.withLock { $0 = r.purpose == .inference }
            }
            return Change(status: 200) { tx in try Views.reservation(try tx.reservation(id: r.id) ?? r, in: tx) }
        }
        context.logger.info("released", metadata: ["reservation": "\(name)", "by": "\(caller.user)"])
        // The batch's own scheduling cycle ran after the release: it stopped the reservation's
        // jobs (which wakes the job supervisor) and placed what the freed units let start, so the
        // scheduler need not run another. Only an inference reservation's serve process, which
        // no plan step names, is left to stop.
        if releasedInference.withLock({ $0 }) { serve.wake() }
        await cluster?.sync()
        return response
    }

    // MARK: Checks

    /// How far ahead an advance reservation may start: as far as `berth capacity` looks.
    static let maxAdvanceSeconds: TimeInterval = 10 * 366 * 86_400

    /// `now`, a future time, or an offset. A start a little in the past (a slow client) is now.
    static func startTime(_ text: String?, now: Date) throws -> Date {
        guard let text else { return now }
        // As the ledger keeps it: a start pasted from another reservation's end is that end.
        guard let start = TimeExpression.parse(text, now: now).map(Ledger.asStored) else {
            throw APIError.invalid(field: "start", "'\(text)' is not a time: use now, RFC 3339 (2026-12-01T09:00:00Z) or an offset such as +2h")
        }
        if start < now.addingTimeInterval(-300) {
            throw APIError.invalid(field: "start", "\(TimeExpression.format(start)) is in the past; use now or a future time")
        }
        // The ledger keeps times as four-digit years: a start in year 9999 plus a duration
        // once made a reservation that SQLite stored and could not read back (a 500).
        let latest = now.addingTimeInterval(maxAdvanceSeconds)
        if start > latest {
            throw APIError.invalid(
                field: "start",
                "\(TimeExpression.format(start)) is more than 10 years ahead; start by \(TimeExpression.format(latest))"
            )
        }
        return max(start, now)
    }

    static func capacityError(_ refusal: CapacityRefusal, start: Date, end: Date?) -> APIError {
        let window = "from \(TimeExpression.format(start)) \(end.map { "to \(TimeExpression.format($0))" } ?? "on, open-ended")"
        var message = "needs \(refusal.needed) dedicated units \(window), but only \(refusal.free) of \(refusal.total) are free over that window; "
        if let earliest = refusal.earliestStart.map(Wire.formatDate) {
            // To the millisecond, as the ledger keeps it: the start it suggests does fit.
            message += "the earliest start that fits is \(earliest) (--start \(earliest)); or ask for fewer units, or --wait to queue"
        } else if refusal.needed > refusal.total {
            message += "it can never fit: the pool has \(refusal.total) dedicated units; ask for fewer model units"
        } else {
            message += "no start fits while open-ended reservations hold the pool; give a --duration, ask for fewer units, or --wait to queue"
        }
        return APIError(.insufficientCapacity, message)
    }
}
