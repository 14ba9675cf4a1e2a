import BerthCore
import BerthNGram
import BerthWire
import Foundation
import Hummingbird
import Synchronization

/// An error answered in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
struct CompletionError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?

    static func invalid(_ message: String, param: String? = nil) -> CompletionError {
        CompletionError(status: .badRequest, message: message, type: "invalid_request_error", param: param)
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?
        }
        var error: Detail
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = Body(error: .init(message: message, type: type, param: param, code: nil))
        return CompletionServer.json(body, status: status)
    }
}

/// A `POST /v1/completions` body, checked. Fields OpenAI defines that change nothing here
/// (`top_p`, `user`, `logit_bias`, …) are accepted and ignored.
struct CompletionRequest: Equatable {
    /// OpenAI's default.
    static let defaultMaxTokens = 16
    static let maxTokensLimit = 1 << 20

    var model: String?
    var prompt: String
    var maxTokens: Int
    var temperature: Double
    /// Without one, 0: the same request gets the same answer.
    var seed: UInt64
    var stop: [String]
    /// Answer as server-sent events, a chunk per token, as vLLM and llama.cpp's server do.
    var stream = false
    /// `stream_options: {"include_usage": true}`: a last chunk with the token counts.
    var includeUsage = false

    init(model: String? = nil, prompt: String, maxTokens: Int = defaultMaxTokens, temperature: Double = 1, seed: UInt64 = 0, stop: [String] = []) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.seed = seed
        self.stop = stop
    }

    init(body: Data) throws(CompletionError) {
        let fields = try Self.object(body)
        let prompt: String
        switch fields.optional("prompt") {
        case .string(let text)?:
            prompt = text
        case .array(let items)? where items.count == 1 && items[0].string != nil:
            prompt = items[0].string!
        case nil:
            throw .invalid("missing field 'prompt': give the text to continue", param: "prompt")
        default:
            throw .invalid("'prompt' must be a string (or an array of exactly one string)", param: "prompt")
        }
        try self.init(prompt: prompt, fields: fields, maxTokensFields: ["max_tokens"])
    }

    /// A request body's top-level fields.
    static func object(_ body: Data) throws(CompletionError) -> Fields {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            throw .invalid("the request body is not valid JSON")
        }
        guard let fields = value.object else { throw .invalid("the request body must be a JSON object, not \(value.typeName)") }
        return Fields(values: fields)
    }

    struct Fields {
        var values: [String: JSONValue]
        /// A field that is there and not `null`.
        func optional(_ name: String) -> JSONValue? {
            guard let value = values[name], value != .null else { return nil }
            return value
        }
    }

    /// The fields the text and chat completion requests share. `maxTokensFields`: the names
    /// the limit may come under, the first one present counting.
    init(prompt: String, fields: Fields, maxTokensFields: [String]) throws(CompletionError) {
        self.prompt = prompt
        func optional(_ name: String) -> JSONValue? { fields.optional(name) }
        if let value = optional("model") {
            guard let text = value.string else { throw .invalid("'model' must be a string", param: "model") }
            model = text
        }
        maxTokens = Self.defaultMaxTokens
        if let name = maxTokensFields.first(where: { optional($0) != nil }), let value = optional(name) {
            guard let number = value.integer, (0...Self.maxTokensLimit).contains(number) else {
                throw .invalid("'\(name)' must be a whole number from 0 to \(Self.maxTokensLimit)", param: name)
            }
            maxTokens = number
        }
        temperature = 1
        if let value = optional("temperature") {
            guard let number = value.number, (0...2).contains(number) else {
                throw .invalid("'temperature' must be a number from 0 to 2", param: "temperature")
            }
            temperature = number
        }
        seed = 0
        if let value = optional("seed") {
            guard let number = value.integer else { throw .invalid("'seed' must be an integer", param: "seed") }
            seed = UInt64(bitPattern: Int64(number))
        }
        stop = []
        switch optional("stop") {
        case nil: break
        case .string(let text)?: stop = [text]
        case .array(let items)? where items.count <= 4 && items.allSatisfy({ $0.string != nil }): stop = items.compactMap(\.string)
        default: throw .invalid("'stop' must be a string or an array of up to 4 strings", param: "stop")
        }
        stop.removeAll { $0.isEmpty }
        switch optional("stream") {
        case nil, .bool(false)?: stream = false
        case .bool(true)?: stream = true
        default: throw .invalid("'stream' must be true or false", param: "stream")
        }
        if let options = optional("stream_options") {
            guard stream else { throw .invalid("'stream_options' is only for a streamed answer: set 'stream' to true", param: "stream_options") }
            guard let object = options.object else { throw .invalid("'stream_options' must be an object", param: "stream_options") }
            switch object["include_usage"] {
            case nil, .null?, .bool(false)?: includeUsage = false
            case .bool(true)?: includeUsage = true
            default: throw .invalid("'stream_options.include_usage' must be true or false", param: "stream_options")
            }
        }
        if let value = optional("n"), value.integer != 1 {
            throw .invalid("only one choice per request: leave 'n' out or set it to 1", param: "n")
        }
    }
}

/// A `POST /v1/chat/completions` body, checked: OpenAI's chat shape, which is how vLLM,
/// llama.cpp's server and TGI take images. The word model continues the messages' text, one
/// message a line; it cannot see images, so it only checks and counts them.
struct ChatCompletionRequest: Equatable {
    var completion: CompletionRequest
    var images: [Image]

    /// An `image_url` part: a `data:` URL's media type and size, or a URL the server would fetch.
    struct Image: Equatable {
        var mediaType: String?
        var bytes: Int?
        var url: String?
    }

    init(body: Data) throws(CompletionError) {
        let fields = try CompletionRequest.object(body)
        guard case .array(let messages)? = fields.optional("messages"), !messages.isEmpty else {
            throw .invalid("'messages' must be a non-empty array of {\"role\", \"content\"}", param: "messages")
        }
        var lines: [String] = []
        var images: [Image] = []
        for (index, message) in messages.enumerated() {
            let param = "messages[\(index)]"
            guard let message = message.object, message["role"]?.string != nil else {
                throw .invalid("\(param) must be an object with a 'role' string and a 'content'", param: param)
            }
            switch message["content"] {
            case .string(let text)?:
                lines.append(text)
            case .array(let parts)?:
                var texts: [String] = []
                for (partIndex, part) in parts.enumerated() {
                    let partParam = "\(param).content[\(partIndex)]"
                    switch part.object?["type"]?.string {
                    case "text":
                        guard let text = part.object?["text"]?.string else { throw .invalid("\(partParam).text must be a string", param: partParam) }
                        texts.append(text)
                    case "image_url":
                        guard let url = part.object?["image_url"]?.object?["url"]?.string else {
                            throw .invalid("\(partParam).image_url.url must be a string", param: partParam)
                        }
                        images.append(try Self.image(url, param: partParam))
                    default:
                        throw .invalid("\(partParam).type must be 'text' or 'image_url'", param: partParam)
                    }
                }
                lines.append(texts.joined(separator: " "))
            default:
                throw .invalid("\(param).content must be a string or an array of parts", param: param)
            }
        }
        completion = try CompletionRequest(
            prompt: lines.joined(separator: "\n"),
            fields: fields,
            maxTokensFields: ["max_completion_tokens", "max_tokens"]
        )
        self.images = images
    }

    /// `data:<type>;base64,<bytes>` is decoded to count its bytes; any other URL is taken as given.
    static func image(_ url: String, param: String) throws(CompletionError) -> Image {
        guard url.hasPrefix("data:") else { return Image(url: url) }
        guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64"),
            let bytes = Data(base64Encoded: String(url[url.index(after: comma)...]))
        else {
            throw .invalid("\(param).image_url.url: a data URL must be data:<type>;base64,<bytes>", param: param)
        }
        let mediaType = url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count)
        return Image(mediaType: mediaType.isEmpty ? nil : String(mediaType), bytes: bytes.count)
    }
}

/// The model behind the server, and the one thing that changes: the count that numbers answers.
final class CompletionServer: Sendable {
    let generator: TextGenerator
    /// The name answers carry: `--model-id` if given, else the request's `model`.
    let modelID: String?
    private let answered = Atomic<Int>(0)

    /// The name when neither the server nor the request has one.
    static let defaultModelID = "berth-base"

    init(model: NGramModel, modelID: String?) {
        generator = TextGenerator(model: model)
        self.modelID = modelID
    }

    /// One completion. Stop strings cut the text at the first one found.
    func complete(_ request: CompletionRequest, now: Date) -> CompletionResponse {
        let completion = generator.complete(
            prompt: request.prompt,
            maxTokens: request.maxTokens,
            seed: request.seed,
            temperature: request.temperature
        )
        var text = completion.text
        var completionTokens = completion.completionTokens
        var finish = completion.finishReason
        if let cut = request.stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
            text = String(text[..<cut])
            completionTokens = generator.model.tokenCount(text)
            finish = .stop
        }
        let number = answered.add(1, ordering: .relaxed).newValue
        return CompletionResponse(
            id: "cmpl-berth-\(number)",
            created: Int(now.timeIntervalSince1970),
            model: modelID ?? request.model ?? Self.defaultModelID,
            choices: [.init(index: 0, text: text, finishReason: finish.rawValue)],
            usage: CompletionUsage(
                promptTokens: completion.promptTokens,
                completionTokens: completionTokens,
                totalTokens: completion.promptTokens + completionTokens
            )
        )
    }

    /// A completion as server-sent events in OpenAI's chunk shapes (`text_completion`, or
    /// `chat.completion.chunk` with the role first), each token written as it is generated, then
    /// the usage chunk if asked for, then `data: [DONE]`. A client that goes away ends the
    /// generation: the next write fails. Stop strings need the text after them to be found, so
    /// with any, the text is generated first and then sent a token at a time up to the cut.
    func stream(_ request: CompletionRequest, chat: Bool, now: Date) -> Response {
        let number = answered.add(1, ordering: .relaxed).newValue
        let id = chat ? "chatcmpl-berth-\(number)" : "cmpl-berth-\(number)"
        let created = Int(now.timeIntervalSince1970)
        let model = modelID ?? request.model ?? Self.defaultModelID
        let generator = self.generator
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                func send(_ chunk: StreamChunk) async throws {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    var event = Data("data: ".utf8)
                    event.append(try encoder.encode(chunk))
                    event.append(Data("\n\n".utf8))
                    try await writer.write(ByteBuffer(bytes: event))
                }
                func piece(_ text: String?, finish: String?) -> StreamChunk {
                    StreamChunk(id: id, chat: chat, created: created, model: model, text: text, finish: finish)
                }
                if chat { try await send(StreamChunk(id: id, chat: true, created: created, model: model, role: "assistant")) }
                var generation = generator.generate(
                    prompt: request.prompt,
                    maxTokens: request.maxTokens,
                    seed: request.seed,
                    temperature: request.temperature
                )
                var completionTokens = 0
                var finish = FinishReason.length
                if request.stop.isEmpty {
                    while let token = generation.next() {
                        completionTokens += 1
                        try await send(piece(token, finish: nil))
                    }
                    finish = generation.finishReason
                } else {
                    var pieces: [String] = []
                    while let token = generation.next() { pieces.append(token) }
                    finish = generation.finishReason
                    let text = pieces.joined()
                    if let cut = request.stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                        var budget = text.distance(from: text.startIndex, to: cut)
                        finish = .stop
                        var kept: [String] = []
                        for token in pieces where budget > 0 {
                            let part = String(token.prefix(budget))
                            budget -= token.count
                            kept.append(part)
                        }
                        pieces = kept
                        completionTokens = generator.model.tokenCount(String(text[..<cut]))
                    } else {
                        completionTokens = pieces.count
                    }
                    for token in pieces { try await send(piece(token, finish: nil)) }
                }
                try await send(piece(nil, finish: finish.rawValue))
                if request.includeUsage {
                    var usage = StreamChunk(id: id, chat: chat, created: created, model: model)
                    usage.choices = []
                    usage.usage = CompletionUsage(
                        promptTokens: generation.promptTokens,
                        completionTokens: completionTokens,
                        totalTokens: generation.promptTokens + completionTokens
                    )
                    try await send(usage)
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
        )
    }

    /// One server-sent event's JSON: a text completion's chunk (`text`) or a chat one (`delta`).
    struct StreamChunk: Encodable {
        struct Choice: Encodable {
            var index = 0
            var text: String?
            var delta: [String: String]?
            var finishReason: String?
            let chat: Bool

            enum CodingKeys: String, CodingKey {
                case index, text, delta, logprobs
                case finishReason = "finish_reason"
            }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(index, forKey: .index)
                if chat { try c.encode(delta ?? [:], forKey: .delta) } else { try c.encode(text ?? "", forKey: .text) }
                try c.encodeNil(forKey: .logprobs)
                if let finishReason { try c.encode(finishReason, forKey: .finishReason) } else { try c.encodeNil(forKey: .finishReason) }
            }
        }

        var id: String
        var object: String
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: CompletionUsage?

        init(id: String, chat: Bool, created: Int, model: String, text: String? = nil, finish: String? = nil, role: String? = nil) {
            self.id = id
            object = chat ? "chat.completion.chunk" : "text_completion"
            self.created = created
            self.model = model
            var delta: [String: String] = [:]
            if let role { delta["role"] = role }
            if let text { delta["content"] = text }
            choices = [Choice(text: text, delta: delta, finishReason: finish, chat: chat)]
        }

        enum CodingKeys: String, CodingKey {
            case id, object, created, model, choices, usage
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(object, forKey: .object)
            try c.encode(created, forKey: .created)
            try c.encode(model, forKey: .model)
            try c.encode(choices, forKey: .choices)
            try c.encodeIfPresent(usage, forKey: .usage)
        }
    }

    /// Request bodies over this are refused: room for berthd's largest call (a 1 MiB body, an
    /// image in it) in the chat shape.
    static let bodyLimit = 2 << 20

    /// With a `token` (berthd's `BERTH_SERVE_TOKEN`), every request but `GET /health` must
    /// carry it as `Authorization: Bearer <token>`.
    func router(token: String? = nil) -> Router<BasicRequestContext> {
        let router = Router()
        // Before the routes: a route takes the middleware added before it.
        if let token { router.add(middleware: BearerToken(token: token)) }
        router.get("health") { _, _ in
            Self.json(["status": "ok"])
        }
        router.get("v1/models") { _, _ in
            Self.json(ModelList(data: [.init(id: self.modelID ?? Self.defaultModelID)]))
        }
        router.post("v1/completions") { request, _ -> Response in
            let parsed = try CompletionRequest(body: try await Self.body(request))
            if parsed.stream { return self.stream(parsed, chat: false, now: Date()) }
            return Self.json(self.complete(parsed, now: Date()))
        }
        router.post("v1/chat/completions") { request, _ -> Response in
            let parsed = try ChatCompletionRequest(body: try await Self.body(request))
            if !parsed.images.isEmpty {
                // The word model cannot see them; the log says what came, for whoever wonders why
                // the answer ignores the picture.
                let described = parsed.images.map { image in
                    image.url.map { "a URL, not fetched: \($0.prefix(80))" } ?? "\(image.bytes ?? 0) bytes, \(image.mediaType ?? "no media type")"
                }
                FileHandle.standardError.write(
                    Data(
                        "chat completion with \(parsed.images.count) image(s) (\(described.joined(separator: "; "))); the word model reads only the text\n"
                            .utf8
                    )
                )
            }
            if parsed.completion.stream { return self.stream(parsed.completion, chat: true, now: Date()) }
            return Self.json(ChatCompletionResponse(self.complete(parsed.completion, now: Date())))
        }
        return router
    }

    static func body(_ request: Request) async throws -> Data {
        do {
            return Data(try await request.body.collect(upTo: Self.bodyLimit).readableBytesView)
        } catch {
            throw CompletionError(
                status: .contentTooLarge,
                message: "the request body is over \(Self.bodyLimit) bytes",
                type: "invalid_request_error",
                param: nil
            )
        }
    }

    struct ModelList: Encodable {
        struct Entry: Encodable {
            var id: String
            var object = "model"
            var ownedBy = "berth"
            enum CodingKeys: String, CodingKey {
                case id, object
                case ownedBy = "owned_by"
            }
        }
        var object = "list"
        var data: [Entry]
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }
}

/// Assembles the completion server; `Serve` only builds and runs it.
func buildApplication(server: CompletionServer, host: String, port: Int, token: String? = nil) -> some ApplicationProtocol {
    Application(
        router: server.router(token: token),
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "berth-runner")
    )
}

/// Lets through only requests that carry the serve process's token: whoever else reaches its
/// port (a Slurm node's addresses, this host's loopback) would call the model past berthd's
/// budget and metering. `GET /health` stays open: it says only that the server is up.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let expected: [UInt8]

    init(token: String) {
        expected = Array("Bearer \(token)".utf8)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get && request.uri.path == "/health" { return try await next(request, context) }
        guard let offered = request.headers[.authorization], ConstantTime.equal(Array(offered.utf8), expected) else {
            throw CompletionError(
                status: .unauthorized,
                message: "no valid token: this server answers berthd only (Authorization: Bearer with the BERTH_SERVE_TOKEN it was given)",
                type: "authentication_error"
            )
        }
        return try await next(request, context)
    }
}
