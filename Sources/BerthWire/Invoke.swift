import FoundationEssentials

/// `POST /v1/invoke`: a real-time call. `target` is a reservation name (provisioned) or a
/// base model id (on demand). `image` is base64, for models that take images.
public struct InvokeRequest: StrictBody, Equatable {
    public var target: String
    public var prompt: String
    public var maxTokens: Int?
    public var image: String?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case target, prompt, maxTokens, image
    }

    public init(target: String, prompt: String, maxTokens: Int? = nil, image: String? = nil) {
        self.target = target
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.image = image
    }
}

public struct InvokeResponse: Codable, Sendable, Equatable {
    public var target: String
    /// The reservation that served it; `nil` on demand.
    public var reservation: String?
    public var model: String
    /// `provisioned` or `on-demand`.
    public var servedBy: String
    public var output: String
    public var finishReason: String?
    public var inputTokens: Int
    public var outputTokens: Int
    /// Through berthd, from request to answer, in milliseconds.
    public var latencyMs: Double
    /// What the call cost: on demand per 1,000 tokens; provisioned calls are paid by the hour (0).
    public var cost: Double

    public init(
        target: String,
        reservation: String?,
        model: String,
        servedBy: String,
        output: String,
        finishReason: String?,
        inputTokens: Int,
        outputTokens: Int,
        latencyMs: Double,
        cost: Double
    ) {
        self.target = target
        self.reservation = reservation
        self.model = model
        self.servedBy = servedBy
        self.output = output
        self.finishReason = finishReason
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.latencyMs = latencyMs
        self.cost = cost
    }
}

extension InvokeResponse: SnakeCaseEncodable {
    enum WireKeys: String, CodingKey {
        case target, reservation, model, served_by, output, finish_reason, input_tokens, output_tokens, latency_ms, cost
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKeys.self)
        try c.encode(target, forKey: .target)
        try c.encodeIfPresent(reservation, forKey: .reservation)
        try c.encode(model, forKey: .model)
        try c.encode(servedBy, forKey: .served_by)
        try c.encode(output, forKey: .output)
        try c.encodeIfPresent(finishReason, forKey: .finish_reason)
        try c.encode(inputTokens, forKey: .input_tokens)
        try c.encode(outputTokens, forKey: .output_tokens)
        try c.encode(latencyMs, forKey: .latency_ms)
        try c.encode(cost, forKey: .cost)
    }
}
