/// The learned parameters of the model: how much each order trusts its own counts.
///
/// The model mixes, recursively, the maximum-likelihood estimate of each order with the
/// estimate of the order below (Jelinek–Mercer interpolation):
/// `P₃ = λ₃·ML₃ + (1−λ₃)·P₂`, `P₂ = λ₂·ML₂ + (1−λ₂)·P₁`, `P₁ = λ₁·ML₁ + (1−λ₁)·P₀`, where P₀ spreads
/// evenly over a nominal universe of `Vocabulary.capacity` word types. Each λ depends on how
/// often its context was seen (one weight per power-of-two bucket of the context's count), as
/// in Chen and Goodman's bucketed interpolation: a context seen a thousand times deserves more
/// trust than one seen twice.
///
/// The weights are trained by online EM on each mini-batch *before* its counts are added (or,
/// after the first epoch, with the batch's counts taken out), so the batch is always held out
/// from the counts it is scored against: deleted interpolation, done incrementally.
public struct InterpolationWeights: Sendable, Equatable, Codable {
    /// Orders 1 (unigram), 2 and 3.
    public static let levels = 3
    /// Bucket 0 is "context never seen" (its weight is never used); bucket `b ≥ 1` holds
    /// contexts seen `2^(b-1) ..< 2^b` times, the last bucket everything above.
    public static let buckets = 16
    /// No order is ever trusted fully or not at all, so every word keeps a non-zero
    /// probability and a loss is always finite.
    static let bounds = 0.001...0.999

    /// `levels × buckets` weights, level-major (`values[level * buckets + bucket]`).
    public private(set) var values: [Double]

    /// Starting weights: the share a Witten–Bell-like rule `n / (n + 2)` gives a context seen
    /// `n` times, within 0.05…0.95. Training moves them.
    public init() {
        var values: [Double] = []
        for _ in 0..<Self.levels {
            values.append(0.5)
            for bucket in 1..<Self.buckets {
                let n = Double(1 << (bucket - 1))
                values.append(min(0.95, max(0.05, n / (n + 2))))
            }
        }
        self.values = values
    }

    init?(values: [Double]) {
        guard values.count == Self.levels * Self.buckets, values.allSatisfy({ $0.isFinite && Self.bounds.contains($0) }) else {
            return nil
        }
        self.values = values
    }

    @inline(__always)
    static func bucket(_ count: Int) -> Int {
        count <= 0 ? 0 : min(buckets - 1, Int.bitWidth - count.leadingZeroBitCount)
    }

    @inline(__always)
    func weight(level: Int, count: Int) -> Double {
        values[level * Self.buckets + Self.bucket(count)]
    }

    /// One online-EM step: each weight moves towards the share of the batch's probability its
    /// order explained, by `stepSize` scaled by how much evidence the batch had for that bucket
    /// (`d / (d + 1)` for `d` tokens' worth), so a bucket the batch barely touched barely moves.
    mutating func learn(from statistics: WeightStatistics, stepSize: Double) {
        guard stepSize > 0 else { return }
        for index in values.indices where statistics.reached[index] > 0 && index % Self.buckets != 0 {
            let evidence = statistics.reached[index]
            let target = statistics.explained[index] / evidence
            let rate = min(1, stepSize) * evidence / (evidence + 1)
            let updated = (1 - rate) * values[index] + rate * target
            values[index] = min(Self.bounds.upperBound, max(Self.bounds.lowerBound, updated))
        }
    }
}

/// Expected counts of one E-step: for each weight, how much probability mass reached its order
/// (`reached`) and how much of that its own counts explained (`explained`).
struct WeightStatistics {
    var explained = [Double](repeating: 0, count: InterpolationWeights.levels * InterpolationWeights.buckets)
    var reached = [Double](repeating: 0, count: InterpolationWeights.levels * InterpolationWeights.buckets)

    @inline(__always)
    mutating func add(level: Int, count: Int, explained share: Double, reached mass: Double) {
        let index = level * InterpolationWeights.buckets + InterpolationWeights.bucket(count)
        explained[index] += share
        reached[index] += mass
    }
}
