public import FoundationEssentials

// The OpenAI-compatible routes of berthd (`/openai/v1/…`) as OpenAI's clients see them, and the
// API keys that let those clients in over TCP. The completion answers themselves are the shapes
// of Completions.swift, which berthd reads from its serve processes.

/// An error in OpenAI's shape, which OpenAI's SDKs turn into their exceptions:
/// `{"error": {"message", "type", "param", "code"}}`. `code` is berth's error code.
public struct OpenAIErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        public init(message: String, type: String, param: String? = nil, code: String?) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        enum CodingKeys: String, CodingKey {
            case message, type, param, code
        }

        /// `param` and `code` are written as `null` when absent, as OpenAI does.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }

    public var error: Detail

    public init(message: String, type: String, param: String? = nil, code: String?) {
        error = Detail(message: message, type: type, param: param, code: code)
    }

    /// OpenAI's `type` for an HTTP status.
    public static func type(status: Int) -> String {
        switch status {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 429: "rate_limit_error"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }
}

/// `GET /openai/v1/models`: what the caller may call, in OpenAI's list shape.
public struct OpenAIModelList: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        /// A reservation's name (provisioned) or a base model's id (on demand): what `model` takes.
        public var id: String
        public var object: String
        public var created: Int
        /// The reservation's owner; `berth` for the on-demand base models.
        public var ownedBy: String

        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }

        public init(id: String, created: Int, ownedBy: String) {
            self.id = id
            object = "model"
            self.created = created
            self.ownedBy = ownedBy
        }
    }

    public var object: String
    public var data: [Entry]

    public init(data: [Entry]) {
        object = "list"
        self.data = data
    }
}

/// A `POST /openai/v1/completions` or `/chat/completions` body: what berthd needs of it to
/// admit the call, and the body itself, to pass on to the serve process (which takes the
/// sampling fields berthd does not read, and refuses those it cannot honour).
public struct OpenAICallRequest: Sendable {
    /// What is wrong with a body, naming the field as the client wrote it.
    public struct Problem: Error, Sendable, Equatable {
        public var param: String?
        public var message: String
    }

    /// A reservation name (provisioned) or a base model id (on demand).
    public var model: String
    /// The text the call reads: the prompt, or every message's text one a line, to size it.
    public var text: String
    /// `image_url` parts in the messages.
    public var images: Int
    /// `max_tokens`, or a chat's `max_completion_tokens`.
    public var maxTokens: Int?
    public var stream: Bool
    /// `stream_options: {"include_usage": true}`.
    public var includeUsage: Bool
    /// The body as the client sent it, as JSON values.
    public var fields: [String: JSONField]

    /// Reads a body; `chat` for `/chat/completions`.
    public static func parse(_ body: Data, chat: Bool) throws(Problem) -> OpenAICallRequest {
        let value: JSONField
        do {
            value = try JSONDecoder().decode(JSONField.self, from: body)
        } catch {
            throw Problem(param: nil, message: "the request body is not valid JSON; send a JSON object")
        }
        guard case .object(let fields) = value else {
            throw Problem(param: nil, message: "the request body must be a JSON object")
        }
        func present(_ name: String) -> JSONField? {
            guard let value = fields[name], value != .null else { return nil }
            return value
        }
        guard case .string(let model)? = present("model"), !model.isEmpty else {
            throw Problem(param: "model", message: "'model' is required: a reservation name (provisioned) or a base model id (on demand)")
        }
        var text = ""
        var images = 0
        if chat {
            guard case .array(let messages)? = present("messages"), !messages.isEmpty else {
                throw Problem(param: "messages", message: "'messages' must be a non-empty array of {\"role\", \"content\"}")
            }
            var lines: [String] = []
            for (index, message) in messages.enumerated() {
                guard case .object(let parts) = message, case .string = parts["role"] else {
                    throw Problem(param: "messages[\(index)]", message: "messages[\(index)] must be an object with a 'role' string and a 'content'")
                }
                switch parts["content"] {
                case .string(let line)?:
                    lines.append(line)
                case .array(let contentParts)?:
                    for (partIndex, part) in contentParts.enumerated() {
                        guard case .object(let partFields) = part, case .string(let type)? = partFields["type"] else {
                            throw Problem(
                                param: "messages[\(index)].content[\(partIndex)]",
                                message: "messages[\(index)].content[\(partIndex)] must be an object with a 'type'"
                            )
                        }
                        if type == "image_url" {
                            images += 1
                        } else if case .string(let line)? = partFields["text"] {
                            lines.append(line)
                        }
                    }
                case nil, .null?:
                    // An assistant message with tool calls has no content.
                    continue
                default:
                    throw Problem(param: "messages[\(index)].content", message: "messages[\(index)].content must be a string or an array of parts")
                }
            }
            text = lines.joined(separator: "\n")
        } else {
            switch present("prompt") {
            case .string(let prompt)?:
                text = prompt
            case .array(let items)? where items.count == 1:
                guard case .string(let prompt) = items[0] else { fallthrough }
                text = prompt
            case nil:
                throw Problem(param: "prompt", message: "'prompt' is required: the text to continue")
            default:
                throw Problem(param: "prompt", message: "'prompt' must be a string (or an array of exactly one string): one completion per request")
            }
            guard !text.isEmpty else { throw Problem(param: "prompt", message: "'prompt' is empty: give the text to continue") }
        }
        var maxTokens: Int?
        for name in chat ? ["max_completion_tokens", "max_tokens"] : ["max_tokens"] {
            guard let value = present(name) else { continue }
            guard case .number(let number) = value, number == number.rounded(), number >= 1, number <= Double(Int32.max) else {
                throw Problem(param: name, message: "'\(name)' must be a whole number of at least 1")
            }
            maxTokens = Int(number)
            break
        }
        var stream = false
        switch present("stream") {
        case nil, .bool(false)?: break
        case .bool(true)?: stream = true
        default: throw Problem(param: "stream", message: "'stream' must be true or false")
        }
        var includeUsage = false
        if let options = present("stream_options") {
            guard stream else {
                throw Problem(param: "stream_options", message: "'stream_options' is only for a streamed answer: set 'stream' to true")
            }
            guard case .object(let option) = options else { throw Problem(param: "stream_options", message: "'stream_options' must be an object") }
            switch option["include_usage"] {
            case nil, .null?, .bool(false)?: break
            case .bool(true)?: includeUsage = true
            default: throw Problem(param: "stream_options", message: "'stream_options.include_usage' must be true or false")
            }
        }
        if let n = present("n"), n != .number(1) {
            throw Problem(param: "n", message: "one choice per request: leave 'n' out or set it to 1, and send more requests for more choices")
        }
        return OpenAICallRequest(
            model: model,
            text: text,
            images: images,
            maxTokens: maxTokens,
            stream: stream,
            includeUsage: includeUsage,
            fields: fields
        )
    }

    /// The body for the serve process: the client's, with the serve process's model name, the
    /// token limit berthd sized, and, when streamed, the usage asked for (berthd meters by it).
    public func upstreamBody(model: String, maxTokens: Int) throws -> Data {
        var body = fields
        body["model"] = .string(model)
        body["max_completion_tokens"] = nil
        body["max_tokens"] = .number(Double(maxTokens))
        if stream { body["stream_options"] = .object(["include_usage": .bool(true)]) }
        // Whom a call is for is berth's business: the serve process sees no user names.
        body["user"] = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(body)
    }
}

/// A JSON value, as a request body holds it: what berthd reads of an OpenAI body and passes on.
public enum JSONField: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONField])
    case object([String: JSONField])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let value = try? c.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? c.decode(Double.self) {
            self = .number(value)
        } else if let value = try? c.decode(String.self) {
            self = .string(value)
        } else if let value = try? c.decode([JSONField].self) {
            self = .array(value)
        } else {
            self = .object(try c.decode([String: JSONField].self))
        }
    }

    /// Whole numbers are written as integers, as clients wrote them.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let value): try c.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try c.encode(Int64(value)) } else { try c.encode(value) }
        case .string(let value): try c.encode(value)
        case .array(let items): try c.encode(items)
        case .object(let fields): try c.encode(fields)
        }
    }
}

/// `POST /v1/api-keys`: a key for the OpenAI listener, named by its owner.
public struct APIKeyCreateRequest: StrictBody, Equatable {
    public var name: String

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case name
    }

    public init(name: String) {
        self.name = name
    }
}

/// An API key as the ledger keeps it: never the key itself, which only the answer to its
/// creation carries (`key`), once.
public struct APIKeyView: Codable, Sendable, Equatable {
    public var name: String
    public var owner: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    /// Only in the answer to `POST /v1/api-keys`.
    public var key: String?

    public init(name: String, owner: String, createdAt: Date, lastUsedAt: Date?, key: String? = nil) {
        self.name = name
        self.owner = owner
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.key = key
    }
}

public struct APIKeyList: Codable, Sendable, Equatable {
    public var apiKeys: [APIKeyView]

    public init(apiKeys: [APIKeyView]) {
        self.apiKeys = apiKeys
    }
}

/// Reads a server-sent event stream as it arrives, in whatever pieces: each complete event's
/// `data` (its `data:` lines joined by newlines). Comments, `event:` and `id:` lines are left
/// out; OpenAI's streams carry everything in `data`.
public struct ServerSentEvents: Sendable {
    private var pending: [UInt8] = []
    private var lines: [String] = []

    public init() {}

    /// The events completed by `bytes`.
    public mutating func feed(_ bytes: Data) -> [String] {
        var events: [String] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                pending.append(byte)
                continue
            }
            if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
            let line = String(decoding: pending, as: UTF8.self)
            pending.removeAll(keepingCapacity: true)
            if line.isEmpty {
                if !lines.isEmpty { events.append(lines.joined(separator: "\n")) }
                lines.removeAll()
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                lines.append(String(value))
            }
        }
        return events
    }
}
