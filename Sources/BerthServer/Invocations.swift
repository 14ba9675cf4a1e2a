import BerthClient
import BerthCore
import BerthStore
import Foundation

/// What every real-time call goes through, whichever route brought it (`POST /v1/invoke` or the
/// OpenAI routes), so that they cannot differ: the target resolved as the caller may see it,
/// the model's checks, sizing, the reservation's budget or spillover, the serve process's
/// port (`admit`); then, once the serve process has answered or failed, the bucket reconciled
/// and the call metered (`settle`, `fail`). Every refusal is recorded as `invoke`'s always were.
struct Invocations: Sendable {
    let ledger: Ledger
    let serve: any ServeProcesses
    let meter: InvocationMeter
    let routes: RouteCache
    let clock: @Sendable () -> Date
    let limiter: ThroughputLimiter
    /// Kept-alive connections to the serve processes.
    let serveClient: KeepAliveClient

    /// Every route's calls share the services' buckets, routes and connections: a call over
    /// TCP and one over the socket draw on the same budget.
    init(_ services: ControlServices, serve: any ServeProcesses) {
        ledger = services.ledger
        self.serve = serve
        meter = services.meter
        routes = services.routes
        clock = services.clock
        limiter = services.limiter
        serveClient = services.serveClient
    }

    /// Where a call goes: a reservation's own serve process, or a base model's on-demand one.
    enum Route: Sendable {
        case provisioned(Reservation, Model)
        case onDemand(Model)
    }

    /// A call let through: where it goes and what its reservation was charged for it.
    struct Admitted: Sendable {
        var caller: Caller
        var target: String
        var model: Model
        var reservation: Reservation?
        var tier: ServiceTier
        /// Tokens taken from the reservation's bucket, to be reconciled with what was used.
        var charged: Int
        var port: Int
        /// The token the serve process wants with every call.
        var authorization: (String, String)
        var maxTokens: Int
        var promptTokens: Int
        /// When it arrived, on the ledger's clock and on the monotonic one (for its latency).
        var at: Date
        var started: ContinuousClock.Instant

        var budget: Int { reservation.map { CallRules.budget($0, model: model) } ?? 0 }
    }

    /// What a call asks for, before it is let through.
    struct Ask: Sendable {
        var caller: Caller
        var target: String
        var promptTokens: Int
        var maxTokens: Int?
        /// Images in the input, for the modality check.
        var images: Int = 0
        /// What is wrong with the input once the model is known to take it (a bad image), if anything.
        var inputProblem: APIError?
        var started: ContinuousClock.Instant = .now
    }

    /// Steps 1 to 4 of a call: the target, what the model can take, sizing, the budget, the
    /// serve process. Throws the refusal, recorded, as an `APIError`.
    func admit(_ ask: Ask) async throws -> Admitted {
        let caller = ask.caller
        let now = clock()
        // 1. The target: a reservation of that name, else a model id.
        let route: Route
        do {
            let cacheKey = "\(caller.user)|\(caller.isAdmin)|\(ask.target)"
            if let cached = routes.route(cacheKey) {
                route = cached
            } else {
                route = try await resolve(ask.target, caller: caller)
                routes.store(route, for: cacheKey)
            }
        } catch let error as APIError {
            try? await meter.record(
                InvocationRecord(
                    at: now,
                    owner: caller.user,
                    target: ask.target,
                    reservationID: nil,
                    model: ask.target,
                    tier: nil,
                    outcome: .refused,
                    inputTokens: 0,
                    outputTokens: 0,
                    latencyMs: 0,
                    cost: 0,
                    budgetPerMinute: 0
                ),
                targetResolved: false
            )
            throw error
        }
        let model: Model
        var reservation: Reservation?
        switch route {
        case .provisioned(let r, let m): (reservation, model) = (r, m)
        case .onDemand(let m): model = m
        }
        func refuse(_ error: APIError, outcome: CallOutcome = .refused) async -> APIError {
            // The refusal stands even if its record cannot be written (the meter logs that).
            try? await meter.record(
                InvocationRecord(
                    at: now,
                    owner: caller.user,
                    target: ask.target,
                    reservationID: reservation?.id,
                    model: model.id,
                    tier: nil,
                    outcome: outcome,
                    inputTokens: 0,
                    outputTokens: 0,
                    latencyMs: 0,
                    cost: 0,
                    budgetPerMinute: reservation.map { CallRules.budget($0, model: model) } ?? 0
                )
            )
            return error
        }

        // 2. What the model can take.
        if ask.images > 0, !model.inputModalities.contains(.image) {
            throw await refuse(
                APIError(
                    .unsupportedModality,
                    "\(model.id) takes \(model.inputModalities.map(\.rawValue).joined(separator: ", ")) input, not images; leave out the image or choose a model that takes images"
                )
            )
        }
        if let problem = ask.inputProblem { throw await refuse(problem) }
        let maxTokens: Int
        let estimate: Int
        switch CallRules.size(maxTokens: ask.maxTokens, promptTokens: ask.promptTokens, model: model) {
        case .success(let size): (maxTokens, estimate) = size
        case .failure(let problem): throw await refuse(APIError(problem))
        }

        // 3. Provisioned calls are charged their estimate against the reservation's budget.
        var tier: ServiceTier = reservation == nil ? .onDemand : .provisioned
        var charged = 0
        if let r = reservation {
            let budget = CallRules.budget(r, model: model)
            switch limiter.take(estimate, reservation: r.id, budget: budget, now: now) {
            case .granted:
                charged = estimate
            case .tooLarge:
                throw await refuse(
                    APIError.invalid(
                        field: "max_tokens",
                        "\(estimate) tokens (prompt + max_tokens) is more than '\(r.name)' can serve in a minute (\(budget)); lower max_tokens or add model units"
                    )
                )
            case .throttled(let wait):
                if CallRules.spillsOver(r, model: model) {
                    // Over budget: this reservation asked for overflow to go to the on-demand pool.
                    tier = .onDemand
                } else {
                    let seconds = max(1, Int(wait.rounded(.up)))
                    throw await refuse(
                        APIError(
                            .throttled,
                            "'\(r.name)' is over its \(budget) tokens per minute; retry after \(seconds) s, or add model units with berth update \(r.name) --units N",
                            retryAfterSeconds: seconds
                        ),
                        outcome: .throttled
                    )
                }
            }
        }

        // 4. The serve process that will answer it.
        let port: Int?
        let key: ServeSupervisor.Key
        if tier == .provisioned, let r = reservation {
            key = .reservation(r.id)
            if let ready = serve.readyPort(for: key) { port = ready } else { port = await serve.port(for: key) }
        } else {
            key = .onDemand(model.id)
            if let ready = serve.readyPort(for: key) { port = ready } else { port = await serve.onDemandPort(model: model) }
        }
        guard let port else {
            if let r = reservation, charged > 0 { limiter.reconcile(reservation: r.id, charged: charged, used: 0, now: clock()) }
            throw await refuse(
                APIError(
                    .invalidState,
                    "the serve process for \(ask.target) is not ready (starting or restarting); retry in a few seconds",
                    retryAfterSeconds: 2
                ),
                outcome: .failed
            )
        }
        return Admitted(
            caller: caller,
            target: ask.target,
            model: model,
            reservation: reservation,
            tier: tier,
            charged: charged,
            port: port,
            authorization: serve.authorization(for: key),
            maxTokens: maxTokens,
            promptTokens: ask.promptTokens,
            at: now,
            started: ask.started
        )
    }

    /// The serve process did not answer: nothing was used, the supervisor looks at the process
    /// now, and the call is recorded `failed`. Returns the error to answer with.
    func fail(_ call: Admitted, _ error: any Error) async -> APIError {
        serve.wake()
        serveClient.forget(port: call.port)
        if let r = call.reservation, call.charged > 0 { limiter.reconcile(reservation: r.id, charged: call.charged, used: 0, now: clock()) }
        try? await meter.record(
            InvocationRecord(
                at: call.at,
                owner: call.caller.user,
                target: call.target,
                reservationID: call.reservation?.id,
                model: call.model.id,
                tier: nil,
                outcome: .failed,
                inputTokens: 0,
                outputTokens: 0,
                latencyMs: 0,
                cost: 0,
                budgetPerMinute: call.budget
            )
        )
        return APIError(
            .invalidState,
            "the serve process for \(call.target) failed to answer (\(error)); retry in a few seconds",
            retryAfterSeconds: 2
        )
    }

    /// What a settled call cost and how long it took through berthd.
    struct Settled: Sendable {
        var latencyMs: Double
        var cost: Double
    }

    /// The serve process answered (`served`), or the client went away while it streamed
    /// (`cancelled`, with the tokens it had been sent): the bucket is reconciled with the tokens
    /// used and the call is recorded. Returns once the record is committed (group commit).
    func settle(_ call: Admitted, inputTokens: Int, outputTokens: Int, outcome: CallOutcome = .served) async throws -> Settled {
        if let r = call.reservation, call.charged > 0 {
            limiter.reconcile(reservation: r.id, charged: call.charged, used: inputTokens + outputTokens, now: clock())
        }
        let elapsed = (ContinuousClock.now - call.started).components
        let latency = Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        let cost = CallRules.cost(tier: call.tier, inputTokens: inputTokens, outputTokens: outputTokens, price: call.model.price)
        do {
            try await meter.record(
                InvocationRecord(
                    at: call.at,
                    owner: call.caller.user,
                    target: call.target,
                    reservationID: call.reservation?.id,
                    model: call.model.id,
                    tier: call.tier,
                    outcome: outcome,
                    inputTokens: inputTokens,
                    outputTokens: outputTokens,
                    latencyMs: latency,
                    cost: cost,
                    budgetPerMinute: call.budget
                )
            )
        } catch let error as LedgerFullError {
            // The meter keeps the record and writes it once there is room: the call is billed.
            throw APIError(
                .ledgerFull,
                "the ledger's disk is full: free space on \(error.folder); the call was served, and its record waits in berthd until it can be written"
            )
        } catch {
            throw APIError(.internal, "the call was served but its record could not be written to the ledger; the daemon's log has the details")
        }
        return Settled(latencyMs: latency, cost: cost)
    }

    func resolve(_ target: String, caller: Caller) async throws -> Route {
        try await ledger.read { tx -> Route in
            if let r = try tx.reservation(named: target) {
                guard caller.canSee(owner: r.owner) else {
                    throw APIError(.forbidden, "reservation '\(target)' belongs to another user; invoke through your own")
                }
                guard r.status == .active else {
                    throw APIError(
                        .invalidState,
                        "reservation '\(target)' is \(r.status.rawValue)\(r.waiting ? " (waiting for capacity)" : ""); calls are served only while it is active"
                    )
                }
                guard r.purpose == .inference else {
                    throw APIError(
                        .invalidState,
                        "reservation '\(target)' is for training; invoke through an inference reservation (berth reserve NAME --model \(r.model) --units 1 --purpose inference)"
                    )
                }
                guard let model = try tx.model(id: r.model) else {
                    throw APIError(.invalidState, "reservation '\(target)' is for \(r.model), which is no longer in the catalog")
                }
                return .provisioned(r, model)
            }
            guard let model = try tx.model(id: target), caller.canSee(model) else {
                throw APIError(.notFound, "no reservation or model '\(target)'; `berth reservations` and `berth models` list them")
            }
            if model.isCustom {
                throw APIError(
                    .onDemandNotSupported,
                    "\(model.id) is a custom model, and custom models are never served on demand: create an inference reservation for it with berth reserve NAME --model \(model.id) --units 1 --purpose inference, then invoke through it with berth invoke NAME --prompt …"
                )
            }
            guard model.onDemand else {
                throw APIError(
                    .onDemandNotSupported,
                    "\(model.id) is not offered on demand: reserve it with berth reserve NAME --model \(model.id) --units 1 --purpose inference, then invoke through the reservation"
                )
            }
            return .onDemand(model)
        }
    }
}
