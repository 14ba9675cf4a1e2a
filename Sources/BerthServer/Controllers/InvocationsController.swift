import BerthClient
import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird
import Synchronization

/// Each inference reservation's token bucket, in memory: a restart starts it full, which errs
/// toward the customer. A lock, not an actor: every call passes here.
final class ThroughputLimiter: Sendable {
    private let buckets = Mutex<[Int64: TokenBucket]>([:])

    func take(_ amount: Int, reservation: Int64, budget: Int, now: Date) -> TokenBucket.Decision {
        buckets.withLock { buckets in
            if buckets[reservation]?.capacity != Double(budget) {
                buckets[reservation] = TokenBucket(tokensPerMinute: budget, now: now)
            }
            return buckets[reservation]!.take(amount, now: now)
        }
    }

    func reconcile(reservation: Int64, charged: Int, used: Int, now: Date) {
        buckets.withLock { $0[reservation]?.reconcile(charged: charged, used: used, now: now) }
    }
}

/// Where targets went, for a second: a call should not cost a ledger read. Any change through
/// the API clears it, and an entry lives at most `lifetime`, so a reservation the scheduler
/// ended stops being served within a second (its serve process is gone by then anyway).
final class RouteCache: Sendable {
    private let entries = Mutex<[String: (route: InvocationsController.Route, until: ContinuousClock.Instant)]>([:])
    private let lifetime: Duration = .seconds(1)

    func route(_ key: String) -> InvocationsController.Route? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.until < .now {
                entries[key] = nil
                return nil
            }
            return entry.route
        }
    }

    func store(_ route: InvocationsController.Route, for key: String) {
        entries.withLock { $0[key] = (route, .now + lifetime) }
    }

    func clear() {
        entries.withLock { $0.removeAll() }
    }
}

/// `POST /v1/invoke`: routes a call to its reservation's serve process or a base model's
/// on-demand one, charges the reservation's budget, and meters it.
struct InvocationsController: Sendable {
    let ledger: Ledger
    let serve: any ServeProcesses
    let meter: InvocationMeter
    let routes: RouteCache
    let clock: @Sendable () -> Date
    let limiter = ThroughputLimiter()
    /// Kept-alive connections to the serve processes.
    let serveClient = KeepAliveClient()

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("invoke") { request, context in try await invoke(request, context) }
    }

    /// Where a call goes: a reservation's own serve process, or a base model's on-demand one.
    enum Route: Sendable {
        case provisioned(Reservation, Model)
        case onDemand(Model)
    }

    func invoke(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let caller = try context.requireCaller()
        let body = try await Requests.body(request, context: context)
        let input = try Requests.decode(InvokeRequest.self, from: body)
        let now = clock()
        guard !input.prompt.isEmpty else { throw APIError.invalid(field: "prompt", "is empty; give the text to complete") }

        // 1. The target: a reservation of that name, else a model id.
        let route: Route
        do {
            let cacheKey = "\(caller.user)|\(caller.isAdmin)|\(input.target)"
            if let cached = routes.route(cacheKey) {
                route = cached
            } else {
                route = try await resolve(input.target, caller: caller)
                routes.store(route, for: cacheKey)
            }
        } catch let error as APIError {
            try? await meter.record(
                InvocationRecord(
                    at: now,
                    owner: caller.user,
                    target: input.target,
                    reservationID: nil,
                    model: input.target,
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
                    target: input.target,
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
        var imageURL: String?
        if let image = input.image {
            guard model.inputModalities.contains(.image) else {
                throw await refuse(
                    APIError(
                        .unsupportedModality,
                        "\(model.id) takes \(model.inputModalities.map(\.rawValue).joined(separator: ", ")) input, not images; leave out the image or choose a model that takes images"
                    )
                )
            }
            guard let bytes = Data(base64Encoded: image) else { throw await refuse(APIError.invalid(field: "image", "is not base64")) }
            guard let format = ImageFormat(bytes: bytes) else {
                throw await refuse(APIError.invalid(field: "image", "is not a PNG, JPEG, GIF or WebP image; send one of those"))
            }
            imageURL = "data:\(format.mediaType);base64,\(image)"
        }
        let maxTokens: Int
        let estimate: Int
        switch CallRules.size(maxTokens: input.maxTokens, promptTokens: DatasetCheck.tokenCount(input.prompt), model: model) {
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

        // 4. The call itself.
        let key: ServeSupervisor.Key
        let port: Int?
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
                    "the serve process for \(input.target) is not ready (starting or restarting); retry in a few seconds",
                    retryAfterSeconds: 2
                ),
                outcome: .failed
            )
        }
        let completion: (text: String, finish: String?, input: Int, output: Int)
        do {
            completion = try await complete(port: port, model: model.id, prompt: input.prompt, maxTokens: maxTokens, imageURL: imageURL)
        } catch {
            // The supervisor looks at it now rather than at its next pass.
            serve.wake()
            if let r = reservation, charged > 0 { limiter.reconcile(reservation: r.id, charged: charged, used: 0, now: clock()) }
            throw await refuse(
                APIError(
                    .invalidState,
                    "the serve process for \(input.target) failed to answer (\(error)); retry in a few seconds",
                    retryAfterSeconds: 2
                ),
                outcome: .failed
            )
        }
        if let r = reservation, charged > 0 {
            limiter.reconcile(reservation: r.id, charged: charged, used: completion.input + completion.output, now: clock())
        }
        let elapsed = (ContinuousClock.now - started).components
        let latency = Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        let cost = CallRules.cost(tier: tier, inputTokens: completion.input, outputTokens: completion.output, price: model.price)
        // Group commit: the call is answered once its record is in the ledger, with others'.
        do {
            try await meter.record(
                InvocationRecord(
                    at: now,
                    owner: caller.user,
                    target: input.target,
                    reservationID: reservation?.id,
                    model: model.id,
                    tier: tier,
                    outcome: .served,
                    inputTokens: completion.input,
                    outputTokens: completion.output,
                    latencyMs: latency,
                    cost: cost,
                    budgetPerMinute: reservation.map { CallRules.budget($0, model: model) } ?? 0
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
        return try Requests.json(
            InvokeResponse(
                target: input.target,
                reservation: reservation?.name,
                model: model.id,
                servedBy: tier.rawValue,
                output: completion.text,
                finishReason: completion.finish,
                inputTokens: completion.input,
                outputTokens: completion.output,
                latencyMs: latency,
                cost: cost
            )
        )
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

    /// `POST /v1/completions` to a serve process, in the OpenAI shape that vLLM, llama.cpp's
    /// server and TGI share; a call with an image goes to `POST /v1/chat/completions` instead,
    /// the image as a `data:` URL in the user's message, the one shape in which those servers
    /// all take images.
    func complete(
        port: Int,
        model: String,
        prompt: String,
        maxTokens: Int,
        imageURL: String?
    )
        async throws -> (text: String, finish: String?, input: Int, output: Int)
    {
        let path: String
        let body: Data
        if let imageURL {
            path = "/v1/chat/completions"
            body = try JSONEncoder().encode(
                ChatCompletionRequestBody(
                    model: model,
                    messages: [.init(content: [.text(prompt), .image(url: imageURL)])],
                    maxTokens: maxTokens
                )
            )
        } else {
            path = "/v1/completions"
            body = try JSONEncoder().encode(CompletionRequestBody(model: model, prompt: prompt, maxTokens: maxTokens))
        }
        let response: BerthClient.Response
        do {
            response = try await serveClient.send(
                port: port,
                method: "POST",
                path: path,
                body: body,
                headers: [("Content-Type", "application/json")]
            )
        } catch {
            serveClient.forget(port: port)
            throw error
        }
        guard response.status == 200 else {
            throw APIError(.internal, "serve process answered \(response.status) to \(path)")
        }
        let text: String
        let finish: String?
        let usage: CompletionUsage?
        if imageURL != nil {
            let answer = try JSONDecoder().decode(ChatCompletionResponse.self, from: response.body)
            (text, finish, usage) = (answer.choices.first?.message.content ?? "", answer.choices.first?.finishReason, answer.usage)
        } else {
            let answer = try JSONDecoder().decode(CompletionResponse.self, from: response.body)
            (text, finish, usage) = (answer.choices.first?.text ?? "", answer.choices.first?.finishReason, answer.usage)
        }
        return (text, finish, usage?.promptTokens ?? DatasetCheck.tokenCount(prompt), usage?.completionTokens ?? DatasetCheck.tokenCount(text))
    }
}
