import BerthClient
import BerthCore
import BerthDataset
import BerthStore
import BerthWire
import Foundation
import Hummingbird
import Logging
import NIOCore

/// `/openai/v1/…`: the routes OpenAI's SDKs, LangChain and the rest call, on the control socket
/// and on the `[openai] listen` address. `model` is a reservation name (provisioned) or a base
/// model id (on demand), and a call goes through `Invocations` exactly as `berth invoke` does:
/// the same refusals, budget, spillover and metering. Errors are in OpenAI's shape, with the
/// statuses those clients act on (the official ones retry 429 and 503 after `Retry-After`).
struct OpenAIController: Sendable {
    let calls: Invocations
    /// Who calls: the socket's peer, or the owner of the API key a TCP request carries.
    let callers: OpenAICallers

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("completions") { request, context in
            await answer(request, context) { caller in try await call(request, context, caller: caller, chat: false) }
        }
        group.post("chat/completions") { request, context in
            await answer(request, context) { caller in try await call(request, context, caller: caller, chat: true) }
        }
        group.get("models") { request, context in
            await answer(request, context) { caller in try await models(caller) }
        }
    }

    /// Runs a route as its caller; whatever goes wrong is answered in OpenAI's shape, here
    /// rather than by the socket's error middleware, which answers in berth's.
    func answer(_ request: Request, _ context: BerthRequestContext, _ route: (Caller) async throws -> Response) async -> Response {
        do {
            let caller = try await callers.caller(request, context)
            return try await route(caller)
        } catch let error as OpenAIError {
            return error.response
        } catch let error as APIError {
            return OpenAIError(error).response
        } catch let error as LedgerFullError {
            return OpenAIError(APIError(.ledgerFull, error.description)).response
        } catch {
            context.logger.error("OpenAI request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return OpenAIError(APIError(.internal, "internal error; the daemon's log has the details")).response
        }
    }

    /// What the caller may call: their active inference reservations, then the base models
    /// offered on demand.
    func models(_ caller: Caller) async throws -> Response {
        let list = try await calls.ledger.read { tx in
            let reservations = try tx.liveReservations().filter { r in
                r.status == .active && r.purpose == .inference && caller.canSee(owner: r.owner)
            }
            let models = try tx.models().filter { $0.onDemand && !$0.isCustom }
            return OpenAIModelList(
                data: reservations.map { .init(id: $0.name, created: Int($0.start.timeIntervalSince1970), ownedBy: $0.owner) }
                    + models.map { .init(id: $0.id, created: 0, ownedBy: "berth") }
            )
        }
        return OpenAIError.json(list, status: .ok)
    }

    func call(_ request: Request, _ context: BerthRequestContext, caller: Caller, chat: Bool) async throws -> Response {
        let started = ContinuousClock.now
        let body = try await Requests.body(request, context: context)
        let input: OpenAICallRequest
        do {
            input = try OpenAICallRequest.parse(body, chat: chat)
        } catch {
            throw OpenAIError(status: 400, message: error.message, param: error.param, code: ErrorCode.invalidArgument.rawValue)
        }
        let call = try await calls.admit(
            Invocations.Ask(
                caller: caller,
                target: input.model,
                promptTokens: DatasetCheck.tokenCount(input.text),
                maxTokens: input.maxTokens,
                images: input.images,
                started: started
            )
        )
        let path = chat ? "/v1/chat/completions" : "/v1/completions"
        let upstream: Data
        do {
            upstream = try input.upstreamBody(model: call.model.id, maxTokens: call.maxTokens)
        } catch {
            throw await calls.fail(call, error)
        }
        // How the call is served, as `berth invoke` prints it.
        var headers: HTTPFields = [:]
        headers[.init("Berth-Served-By")!] = call.tier.rawValue
        headers[.init("Berth-Model")!] = call.model.id
        if let reservation = call.reservation { headers[.init("Berth-Reservation")!] = reservation.name }
        if input.stream {
            return stream(call, path: path, body: upstream, input: input, headers: headers, logger: context.logger)
        }

        let response: BerthClient.Response
        do {
            response = try await calls.serveClient.send(
                port: call.port,
                method: "POST",
                path: path,
                body: upstream,
                headers: [("Content-Type", "application/json"), call.authorization]
            )
        } catch {
            calls.serveClient.forget(port: call.port)
            throw await calls.fail(call, error)
        }
        guard response.status == 200 else {
            let refused = await calls.fail(call, ServeRefusal(status: response.status))
            // The serve process's own verdict on a body berthd passed on (a sampling field it
            // cannot honour): the client's to fix, in the serve process's words.
            if (400..<500).contains(response.status), (try? JSONDecoder().decode(OpenAIErrorBody.self, from: response.body)) != nil {
                var fields: HTTPFields = headers
                fields[.contentType] = "application/json"
                return Response(status: .init(code: response.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: response.body)))
            }
            throw refused
        }
        // The serve process's answer is passed on as it wrote it, named as the client named it.
        guard case .object(var answer) = try? JSONDecoder().decode(JSONField.self, from: response.body) else {
            throw await calls.fail(call, ServeRefusal(status: response.status))
        }
        let usage = answer["usage"].flatMap { try? JSONDecoder().decode(CompletionUsage.self, from: JSONEncoder().encode($0)) }
        let text = Self.text(of: answer)
        let inputTokens = usage?.promptTokens ?? call.promptTokens
        let outputTokens = usage?.completionTokens ?? DatasetCheck.tokenCount(text)
        // Group commit: the call is answered once its record is in the ledger, with others'.
        _ = try await calls.settle(call, inputTokens: inputTokens, outputTokens: outputTokens)
        answer["model"] = .string(input.model)
        answer["usage"] = .object([
            "prompt_tokens": .number(Double(inputTokens)),
            "completion_tokens": .number(Double(outputTokens)),
            "total_tokens": .number(Double(inputTokens + outputTokens)),
        ])
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: try Self.encode(JSONField.object(answer)))))
    }

    /// A streamed answer: the serve process's chunks passed on as it writes them, each named
    /// as the client named the model. When the serve process ends its stream, the call is
    /// settled (the bucket reconciled, the record committed), then `data: [DONE]` goes out.
    /// A client that goes away mid-stream is noticed at the next write: the connection to the
    /// serve process is closed, which cancels its request, and the call is recorded
    /// `cancelled` with the tokens the client was sent.
    func stream(_ call: Invocations.Admitted, path: String, body: Data, input: OpenAICallRequest, headers: HTTPFields, logger: Logger) -> Response {
        var fields = headers
        fields[.contentType] = "text/event-stream"
        fields[.cacheControl] = "no-cache"
        let calls = self.calls
        return Response(
            status: .ok,
            headers: fields,
            body: ResponseBody { writer in
                struct ClientGone: Error {}
                var events = ServerSentEvents()
                var status = 0
                var refusal = Data()
                var delivered = ""
                var usage: CompletionUsage?
                /// The last chunk's fields, for a usage chunk berthd writes itself.
                var last: [String: JSONField] = [:]
                do {
                    try await SocketClient(loopbackPort: call.port).stream(
                        method: "POST",
                        path: path,
                        body: body,
                        headers: [("Content-Type", "application/json"), call.authorization],
                        head: { answered, _ in status = answered },
                        body: { bytes in
                            guard status == 200 else {
                                refusal.append(bytes)
                                return
                            }
                            for event in events.feed(bytes) where event != "[DONE]" {
                                guard case .object(var chunk)? = try? JSONDecoder().decode(JSONField.self, from: Data(event.utf8)) else { continue }
                                if case .object? = chunk["usage"] {
                                    usage = chunk["usage"].flatMap { try? JSONDecoder().decode(CompletionUsage.self, from: JSONEncoder().encode($0)) }
                                    // berthd always asks for the usage, to meter the call; the
                                    // client gets the usage chunk only if it asked for it too.
                                    if !input.includeUsage {
                                        if case .array(let choices)? = chunk["choices"], choices.isEmpty { continue }
                                        chunk["usage"] = nil
                                    }
                                }
                                delivered += Self.text(of: chunk, streamed: true)
                                chunk["model"] = .string(input.model)
                                last = chunk
                                var line = Data("data: ".utf8)
                                line.append(try Self.encode(JSONField.object(chunk)))
                                line.append(Data("\n\n".utf8))
                                do {
                                    try await writer.write(ByteBuffer(bytes: line))
                                } catch {
                                    throw ClientGone()
                                }
                            }
                        }
                    )
                } catch is ClientGone {
                    let outputTokens = DatasetCheck.tokenCount(delivered)
                    _ = try? await calls.settle(
                        call,
                        inputTokens: usage?.promptTokens ?? call.promptTokens,
                        outputTokens: outputTokens,
                        outcome: .cancelled
                    )
                    logger.debug("client went away mid-stream", metadata: ["target": "\(call.target)", "tokens": "\(outputTokens)"])
                    return
                } catch {
                    let failed = await calls.fail(call, Task.isCancelled ? CancellationError() : error)
                    try await writer.write(Self.event(OpenAIError(failed).body))
                    try await writer.finish(nil)
                    return
                }
                guard status == 200 else {
                    _ = await calls.fail(call, ServeRefusal(status: status))
                    let error =
                        (try? JSONDecoder().decode(OpenAIErrorBody.self, from: refusal))
                        ?? OpenAIErrorBody(
                            message: "the serve process answered \(status)",
                            type: "server_error",
                            code: ErrorCode.invalidState.rawValue
                        )
                    try await writer.write(Self.event(error))
                    try await writer.finish(nil)
                    return
                }
                let inputTokens = usage?.promptTokens ?? call.promptTokens
                let outputTokens = usage?.completionTokens ?? DatasetCheck.tokenCount(delivered)
                do {
                    _ = try await calls.settle(call, inputTokens: inputTokens, outputTokens: outputTokens)
                } catch let error as APIError {
                    try await writer.write(Self.event(OpenAIError(error).body))
                }
                if input.includeUsage, usage == nil {
                    // A serve process that sends no usage: the counts berthd metered the call by.
                    var chunk = last
                    chunk["choices"] = .array([])
                    chunk["usage"] = .object([
                        "prompt_tokens": .number(Double(inputTokens)),
                        "completion_tokens": .number(Double(outputTokens)),
                        "total_tokens": .number(Double(inputTokens + outputTokens)),
                    ])
                    var line = Data("data: ".utf8)
                    line.append(try Self.encode(JSONField.object(chunk)))
                    line.append(Data("\n\n".utf8))
                    try await writer.write(ByteBuffer(bytes: line))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        )
    }

    /// A completion's text, a chat's message, or a streamed chunk's piece of either.
    static func text(of answer: [String: JSONField], streamed: Bool = false) -> String {
        guard case .array(let choices)? = answer["choices"], case .object(let choice)? = choices.first else { return "" }
        if case .string(let text)? = choice["text"] { return text }
        if case .object(let message)? = choice[streamed ? "delta" : "message"], case .string(let content)? = message["content"] { return content }
        return ""
    }

    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// An error in a stream that has begun: OpenAI's SDKs raise it as an API error.
    static func event(_ error: OpenAIErrorBody) -> ByteBuffer {
        ByteBuffer(string: "data: \(String(decoding: (try? encode(error)) ?? Data(), as: UTF8.self))\n\n")
    }

    /// A serve process that answered with an error status.
    struct ServeRefusal: Error, CustomStringConvertible {
        var status: Int
        var description: String { "it answered \(status)" }
    }
}

/// An error answered in OpenAI's shape. berth's code is its `code`; the status is the one
/// OpenAI's clients act on: a refusal berth answers 409 (a custom model on demand, a model
/// that cannot take images, a training reservation) is the caller's request to change, 400;
/// a serve process not ready yet is 503 with `Retry-After`, which the official clients retry.
struct OpenAIError: Error {
    var status: Int
    var body: OpenAIErrorBody
    var retryAfterSeconds: Int?

    init(status: Int, message: String, param: String? = nil, code: String?, retryAfterSeconds: Int? = nil) {
        self.status = status
        body = OpenAIErrorBody(message: message, type: OpenAIErrorBody.type(status: status), param: param, code: code)
        self.retryAfterSeconds = retryAfterSeconds
    }

    init(_ error: APIError) {
        var status = error.code.httpStatus
        if status == 409 { status = error.retryAfterSeconds == nil ? 400 : 503 }
        var param: String?
        if error.code == .invalidArgument, let colon = error.message.firstIndex(of: ":"),
            error.message[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." })
        {
            param = String(error.message[..<colon])
        }
        self.init(status: status, message: error.message, param: param, code: error.code.rawValue, retryAfterSeconds: error.retryAfterSeconds)
    }

    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { headers[.retryAfter] = String(retryAfterSeconds) }
        if status == 401 { headers[.wwwAuthenticate] = "Bearer" }
        let data = (try? OpenAIController.encode(body)) ?? Data()
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status) -> Response {
        let data = (try? OpenAIController.encode(value)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Who calls an OpenAI route. On the control socket, the peer the kernel names (an
/// `Authorization` header there is ignored: the SDKs always send one). On the `[openai] listen`
/// address, the owner of the API key in `Authorization: Bearer KEY`, with the same rules.
enum OpenAICallers: Sendable {
    case peerCredentials
    case apiKeys(APIKeyring)

    func caller(_ request: Request, _ context: BerthRequestContext) async throws -> Caller {
        switch self {
        case .peerCredentials:
            guard let caller = context.caller else {
                throw OpenAIError(
                    status: 403,
                    message: "cannot identify the caller: connect through the daemon's UNIX socket",
                    code: ErrorCode.forbidden.rawValue
                )
            }
            return caller
        case .apiKeys(let keyring):
            return try await keyring.caller(authorization: request.headers[.authorization])
        }
    }
}
