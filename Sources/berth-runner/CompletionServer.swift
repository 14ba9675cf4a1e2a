import BerthNGram
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

    init(model: String? = nil, prompt: String, maxTokens: Int = defaultMaxTokens, temperature: Double = 1, seed: UInt64 = 0, stop: [String] = []) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.seed = seed
        self.stop = stop
    }

    init(body: Data) throws(CompletionError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            throw .invalid("the request body is not valid JSON")
        }
        guard let fields = value.object else { throw .invalid("the request body must be a JSON object, not \(value.typeName)") }
        func optional(_ name: String) -> JSONValue? {
            guard let value = fields[name], value != .null else { return nil }
            return value
        }

        switch optional("prompt") {
        case .string(let text)?:
            prompt = text
        case .array(let items)? where items.count == 1 && items[0].string != nil:
            prompt = items[0].string!
        case nil:
            throw .invalid("missing field 'prompt': give the text to continue", param: "prompt")
        default:
            throw .invalid("'prompt' must be a string (or an array of exactly one string)", param: "prompt")
        }
        if let value = optional("model") {
            guard let text = value.string else { throw .invalid("'model' must be a string", param: "model") }
            model = text
        }
        maxTokens = Self.defaultMaxTokens
        if let value = optional("max_tokens") {
            guard let number = value.integer, (0...Self.maxTokensLimit).contains(number) else {
                throw .invalid("'max_tokens' must be a whole number from 0 to \(Self.maxTokensLimit)", param: "max_tokens")
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
        if let value = optional("stream"), value != .bool(false) {
            throw .invalid("streaming is not supported: leave 'stream' out or set it to false", param: "stream")
        }
        if let value = optional("n"), value.integer != 1 {
            throw .invalid("only one choice per request: leave 'n' out or set it to 1", param: "n")
        }
    }
}

/// `POST /v1/completions` answers, OpenAI's text-completion shape.
struct CompletionResponse: Encodable, Equatable {
    struct Choice: Encodable, Equatable {
        var index: Int
        var text: String
        var logprobs: String?
        var finishReason: String
        enum CodingKeys: String, CodingKey {
            case index, text, logprobs
            case finishReason = "finish_reason"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(text, forKey: .text)
            try container.encodeNil(forKey: .logprobs)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    struct Usage: Encodable, Equatable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int
        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
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
            prompt: request.prompt, maxTokens: request.maxTokens, seed: request.seed, temperature: request.temperature)
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
            id: "cmpl-berth-\(number)", created: Int(now.timeIntervalSince1970), model: modelID ?? request.model ?? Self.defaultModelID,
            choices: [.init(index: 0, text: text, finishReason: finish.rawValue)],
            usage: .init(promptTokens: completion.promptTokens, completionTokens: completionTokens,
                         totalTokens: completion.promptTokens + completionTokens))
    }

    /// Request bodies over this are refused.
    static let bodyLimit = 1 << 20

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("health") { _, _ in
            Self.json(["status": "ok"])
        }
        router.get("v1/models") { _, _ in
            Self.json(ModelList(data: [.init(id: self.modelID ?? Self.defaultModelID)]))
        }
        router.post("v1/completions") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: Self.bodyLimit)
            } catch {
                throw CompletionError(
                    status: .contentTooLarge, message: "the request body is over \(Self.bodyLimit) bytes",
                    type: "invalid_request_error", param: nil)
            }
            let parsed = try CompletionRequest(body: Data(body.readableBytesView))
            return Self.json(self.complete(parsed, now: Date()))
        }
        return router
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
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Assembles the completion server; `Serve` only builds and runs it.
func buildApplication(server: CompletionServer, host: String, port: Int) -> some ApplicationProtocol {
    Application(
        router: server.router(),
        configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "berth-runner"))
}
