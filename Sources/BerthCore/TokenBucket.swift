public import FoundationEssentials

/// A reservation's throughput budget, enforced continuously: it holds at most a minute's worth
/// of tokens (`model_units × tokens_per_minute`) and refills at that rate. Time is passed in.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let perSecond: Double
    public private(set) var tokens: Double
    public private(set) var updatedAt: Date

    public init(tokensPerMinute: Int, now: Date) {
        capacity = Double(tokensPerMinute)
        perSecond = Double(tokensPerMinute) / 60
        tokens = capacity
        updatedAt = now
    }

    public enum Decision: Sendable, Equatable {
        case granted
        /// Not enough now; this many seconds until there would be.
        case throttled(retryAfter: TimeInterval)
        /// More than the bucket ever holds: no wait would help.
        case tooLarge
    }

    mutating func refill(_ now: Date) {
        let elapsed = now.timeIntervalSince(updatedAt)
        if elapsed > 0 {
            tokens = min(capacity, tokens + elapsed * perSecond)
            updatedAt = now
        }
    }

    /// Charges `amount` (the estimate: input tokens + max_tokens) if the bucket has it.
    public mutating func take(_ amount: Int, now: Date) -> Decision {
        refill(now)
        let need = Double(amount)
        if need > capacity { return .tooLarge }
        if tokens >= need {
            tokens -= need
            return .granted
        }
        return .throttled(retryAfter: (need - tokens) / perSecond)
    }

    /// Settles a granted charge with what the call really used: unused tokens come back,
    /// a call that used more than estimated is charged the difference.
    public mutating func reconcile(charged: Int, used: Int, now: Date) {
        refill(now)
        tokens = min(capacity, tokens + Double(charged - used))
    }
}
