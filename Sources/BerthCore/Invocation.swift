/// How a real-time call ended, as metered and stored.
public enum CallOutcome: String, Codable, Sendable, CaseIterable {
    case served
    /// Over its reservation's tokens per minute.
    case throttled
    /// Turned away before it reached a serve process: an unknown target, a bad request.
    case refused
    /// The serve process was not ready or did not answer.
    case failed
    /// The client went away while the answer streamed: it is billed the tokens it was sent.
    case cancelled

    /// Whether the call used tokens (it is billed them, and they count against its budget).
    public var usedTokens: Bool { self == .served || self == .cancelled }
}

/// Which units served a call: its reservation's own, or the on-demand pool's.
public enum ServiceTier: String, Codable, Sendable, CaseIterable {
    case provisioned
    case onDemand = "on-demand"
}
