public import Foundation

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
        self.target = target; self.prompt = prompt; self.maxTokens = maxTokens; self.image = image
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
        target: String, reservation: String?, model: String, servedBy: String, output: String, finishReason: String?,
        inputTokens: Int, outputTokens: Int, latencyMs: Double, cost: Double
    ) {
        self.target = target; self.reservation = reservation; self.model = model; self.servedBy = servedBy
        self.output = output; self.finishReason = finishReason; self.inputTokens = inputTokens
        self.outputTokens = outputTokens; self.latencyMs = latencyMs; self.cost = cost
    }
}
