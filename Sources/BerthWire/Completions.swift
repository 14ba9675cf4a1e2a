import FoundationEssentials

// OpenAI's completion shapes, as vLLM, llama.cpp's server, TGI and berth-runner speak them:
// berthd sends the requests to a serve process and reads its answers, berth-runner answers them.
// Answers decode leniently: OpenAI-compatible servers differ in the fields they add or leave
// out, so only what berthd reads is required (the choices' text or message, and the token
// counts when there is a `usage`).

/// `POST /v1/completions`, as berthd sends it.
public struct CompletionRequestBody: Codable, Sendable, Equatable {
    public var model: String
    public var prompt: String
    public var maxTokens: Int

    enum CodingKeys: String, CodingKey {
        case model, prompt
        case maxTokens = "max_tokens"
    }

    public init(model: String, prompt: String, maxTokens: Int) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
    }
}

/// `POST /v1/chat/completions`, as berthd sends it: one user message of text parts and image
/// parts (`data:` URLs), the one shape in which those servers all take images.
public struct ChatCompletionRequestBody: Codable, Sendable, Equatable {
    public struct Message: Codable, Sendable, Equatable {
        public var role: String
        public var content: [Part]

        public init(role: String = "user", content: [Part]) {
            self.role = role
            self.content = content
        }
    }

    public struct Part: Codable, Sendable, Equatable {
        public struct ImageURL: Codable, Sendable, Equatable {
            public var url: String
        }

        /// `text` or `image_url`.
        public var type: String
        public var text: String?
        public var imageURL: ImageURL?

        enum CodingKeys: String, CodingKey {
            case type, text
            case imageURL = "image_url"
        }

        public static func text(_ text: String) -> Part { Part(type: "text", text: text) }
        public static func image(url: String) -> Part { Part(type: "image_url", imageURL: ImageURL(url: url)) }
    }

    public var model: String
    public var messages: [Message]
    public var maxTokens: Int

    enum CodingKeys: String, CodingKey {
        case model, messages
        case maxTokens = "max_tokens"
    }

    public init(model: String, messages: [Message], maxTokens: Int) {
        self.model = model
        self.messages = messages
        self.maxTokens = maxTokens
    }
}

/// Tokens a completion read and wrote.
public struct CompletionUsage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    public init(promptTokens: Int, completionTokens: Int, totalTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try c.decode(Int.self, forKey: .promptTokens)
        completionTokens = try c.decode(Int.self, forKey: .completionTokens)
        totalTokens = try c.decodeIfPresent(Int.self, forKey: .totalTokens) ?? promptTokens + completionTokens
    }
}

/// `POST /v1/completions`'s answer, OpenAI's text-completion shape.
public struct CompletionResponse: Codable, Sendable, Equatable {
    public struct Choice: Codable, Sendable, Equatable {
        public var index: Int
        public var text: String
        /// `stop` or `length`; some servers leave it out.
        public var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, text, logprobs
            case finishReason = "finish_reason"
        }

        public init(index: Int, text: String, finishReason: String?) {
            self.index = index
            self.text = text
            self.finishReason = finishReason
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decodeIfPresent(Int.self, forKey: .index) ?? 0
            text = try c.decode(String.self, forKey: .text)
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
        }

        /// `logprobs` is written as `null`: OpenAI's clients expect the key.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(text, forKey: .text)
            try c.encodeNil(forKey: .logprobs)
            try c.encodeIfPresent(finishReason, forKey: .finishReason)
        }
    }

    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: CompletionUsage?

    public init(id: String, object: String = "text_completion", created: Int, model: String, choices: [Choice], usage: CompletionUsage?) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        object = try c.decodeIfPresent(String.self, forKey: .object) ?? "text_completion"
        created = try c.decodeIfPresent(Int.self, forKey: .created) ?? 0
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        choices = try c.decode([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(CompletionUsage.self, forKey: .usage)
    }
}

/// `POST /v1/chat/completions`'s answer, OpenAI's chat shape.
public struct ChatCompletionResponse: Codable, Sendable, Equatable {
    public struct Choice: Codable, Sendable, Equatable {
        public struct Message: Codable, Sendable, Equatable {
            public var role: String
            /// `null` from some servers when the answer is empty.
            public var content: String?

            public init(role: String = "assistant", content: String?) {
                self.role = role
                self.content = content
            }

            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                role = try c.decodeIfPresent(String.self, forKey: .role) ?? "assistant"
                content = try c.decodeIfPresent(String.self, forKey: .content)
            }
        }

        public var index: Int
        public var message: Message
        public var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }

        public init(index: Int, message: Message, finishReason: String?) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decodeIfPresent(Int.self, forKey: .index) ?? 0
            message = try c.decode(Message.self, forKey: .message)
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
        }
    }

    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: CompletionUsage?

    /// A text completion's answer in the chat shape.
    public init(_ completion: CompletionResponse) {
        id = "chat" + completion.id
        object = "chat.completion"
        created = completion.created
        model = completion.model
        choices = completion.choices.map { Choice(index: $0.index, message: Choice.Message(content: $0.text), finishReason: $0.finishReason) }
        usage = completion.usage
    }

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? ""
        object = try c.decodeIfPresent(String.self, forKey: .object) ?? "chat.completion"
        created = try c.decodeIfPresent(Int.self, forKey: .created) ?? 0
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        choices = try c.decode([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(CompletionUsage.self, forKey: .usage)
    }
}
