import Foundation

/// A word trigram language model: counts of words, word pairs and word triples, mixed by
/// learned interpolation weights (see `InterpolationWeights`).
///
/// Every text is one sequence `<s> <s> w₁ … wₙ </s>`; the model predicts `w₁ … wₙ </s>`, each
/// from the two words before it. Counting is exact and incremental, so the model can learn
/// from mini-batches; the interpolation weights are what training optimises.
public struct NGramModel: Sendable {
    /// Words, pairs and triples: the model conditions on the two previous words.
    public static let order = 3

    public let tokenizer: Tokenizer
    public internal(set) var vocabulary: Vocabulary
    public internal(set) var weights: InterpolationWeights

    /// `c(w)` by id, and their sum: the number of predicted tokens counted.
    var unigrams: [Int]
    var unigramTotal: Int
    /// `c(v w)` keyed by `pairKey(v, w)`, and `c(v •)` by id.
    var bigrams: [UInt64: Int]
    var bigramContexts: [Int]
    /// `c(u v w)` keyed by `tripleKey(u, v, w)`, and `c(u v •)` keyed by `pairKey(u, v)`.
    var trigrams: [UInt64: Int]
    var trigramContexts: [UInt64: Int]

    /// An empty model: every word equally likely among `Vocabulary.capacity` possible words.
    public init(tokenizer: Tokenizer = Tokenizer()) {
        self.tokenizer = tokenizer
        vocabulary = Vocabulary()
        weights = InterpolationWeights()
        unigrams = [Int](repeating: 0, count: vocabulary.count)
        unigramTotal = 0
        bigrams = [:]
        bigramContexts = [Int](repeating: 0, count: vocabulary.count)
        trigrams = [:]
        trigramContexts = [:]
    }

    /// Predicted tokens counted so far (each text's words and its end marker).
    public var tokensCounted: Int { unigramTotal }
    /// Distinct word triples with a non-zero count.
    public var trigramCount: Int { trigrams.values.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }

    /// The probability every word keeps, whatever was counted: one in the nominal universe.
    static let floorProbability = 1.0 / Double(Vocabulary.capacity)

    @inline(__always)
    static func pairKey(_ a: Int, _ b: Int) -> UInt64 { UInt64(a) << 21 | UInt64(b) }

    @inline(__always)
    static func tripleKey(_ a: Int, _ b: Int, _ c: Int) -> UInt64 { UInt64(a) << 42 | UInt64(b) << 21 | UInt64(c) }

    // MARK: Text to ids

    /// Ids of known words; the unknown word's id for the rest. Reading never changes the model.
    func ids(of tokens: [String]) -> [Int] {
        tokens.map { vocabulary.id(of: $0) ?? Vocabulary.unknown }
    }

    /// Ids of the words, adding new ones to the vocabulary.
    mutating func internIDs(of tokens: [String]) -> [Int] {
        let ids = tokens.map { vocabulary.intern($0) }
        if unigrams.count < vocabulary.count {
            unigrams.append(contentsOf: repeatElement(0, count: vocabulary.count - unigrams.count))
            bigramContexts.append(contentsOf: repeatElement(0, count: vocabulary.count - bigramContexts.count))
        }
        return ids
    }

    // MARK: Counting

    /// Adds (`times` = 1) or takes out (`times` = -1) one sequence's counts. Ids must be interned.
    mutating func count(_ sequence: [Int], times: Int) {
        var u = Vocabulary.sentenceStart
        var v = Vocabulary.sentenceStart
        for i in 0...sequence.count {
            let w = i < sequence.count ? sequence[i] : Vocabulary.sentenceEnd
            unigrams[w] += times
            unigramTotal += times
            bigrams[Self.pairKey(v, w), default: 0] += times
            bigramContexts[v] += times
            trigrams[Self.tripleKey(u, v, w), default: 0] += times
            trigramContexts[Self.pairKey(u, v), default: 0] += times
            u = v
            v = w
        }
    }

    /// Learns from texts at once: counts them, with no change to the weights.
    public mutating func count(_ texts: [String]) {
        for text in texts {
            count(internIDs(of: tokenizer.tokens(text)), times: 1)
        }
    }

    // MARK: Scoring

    /// `P(w | u v)`, and the E-step's expected counts for it added to `statistics`.
    @inline(__always)
    func probability(_ u: Int, _ v: Int, _ w: Int, statistics: inout WeightStatistics) -> Double {
        let known = w < unigrams.count
        // Order 1.
        let total1 = unigramTotal
        let weight1 = total1 > 0 ? weights.weight(level: 0, count: total1) : 0
        let ml1 = total1 > 0 && known ? Double(unigrams[w]) / Double(total1) : 0
        let p1 = weight1 * ml1 + (1 - weight1) * Self.floorProbability
        // Order 2.
        let total2 = v < bigramContexts.count ? bigramContexts[v] : 0
        var weight2 = 0.0
        var ml2 = 0.0
        if total2 > 0 {
            weight2 = weights.weight(level: 1, count: total2)
            if known { ml2 = Double(bigrams[Self.pairKey(v, w)] ?? 0) / Double(total2) }
        }
        let p2 = weight2 * ml2 + (1 - weight2) * p1
        // Order 3.
        let total3 = trigramContexts[Self.pairKey(u, v)] ?? 0
        var weight3 = 0.0
        var ml3 = 0.0
        if total3 > 0 {
            weight3 = weights.weight(level: 2, count: total3)
            if known { ml3 = Double(trigrams[Self.tripleKey(u, v, w)] ?? 0) / Double(total3) }
        }
        let p3 = weight3 * ml3 + (1 - weight3) * p2

        // E-step, top down: the share of the probability each order's own counts explain,
        // given that the mass reached that order.
        var reached = 1.0
        if total3 > 0 {
            let share = weight3 * ml3 / p3
            statistics.add(level: 2, count: total3, explained: reached * share, reached: reached)
            reached *= 1 - share
        }
        if total2 > 0 {
            let share = weight2 * ml2 / p2
            statistics.add(level: 1, count: total2, explained: reached * share, reached: reached)
            reached *= 1 - share
        }
        if total1 > 0 {
            let share = weight1 * ml1 / p1
            statistics.add(level: 0, count: total1, explained: reached * share, reached: reached)
        }
        return p3
    }

    /// The negative log-likelihood (nats) of one sequence and the number of tokens predicted.
    func score(_ sequence: [Int], statistics: inout WeightStatistics) -> (nll: Double, predictions: Int) {
        var u = Vocabulary.sentenceStart
        var v = Vocabulary.sentenceStart
        var nll = 0.0
        for i in 0...sequence.count {
            let w = i < sequence.count ? sequence[i] : Vocabulary.sentenceEnd
            nll -= log(probability(u, v, w, statistics: &statistics))
            u = v
            v = w
        }
        return (nll, sequence.count + 1)
    }

    /// Cross-entropy in nats per predicted token (each word and each text's end) of `texts`;
    /// `nil` when there is nothing to predict.
    public func crossEntropy(_ texts: [String]) -> Double? {
        crossEntropy(tokenized: texts.map { tokenizer.tokens($0) })
    }

    func crossEntropy(tokenized: [[String]]) -> Double? {
        var statistics = WeightStatistics()
        var nll = 0.0
        var predictions = 0
        for tokens in tokenized {
            let scored = score(ids(of: tokens), statistics: &statistics)
            nll += scored.nll
            predictions += scored.predictions
        }
        return predictions > 0 ? nll / Double(predictions) : nil
    }

    /// `P(word | previous two words)`, for tests and inspection. `nil` as `next` means the end.
    public func probability(of next: String?, after context: [String]) -> Double {
        let ids = ids(of: context)
        let u = ids.count >= 2 ? ids[ids.count - 2] : Vocabulary.sentenceStart
        let v = ids.last ?? Vocabulary.sentenceStart
        let w = next.map { vocabulary.id(of: $0) ?? Vocabulary.unknown } ?? Vocabulary.sentenceEnd
        var statistics = WeightStatistics()
        return probability(u, v, w, statistics: &statistics)
    }

    /// How many tokens the tokenizer makes of `text`: what usage counts.
    public func tokenCount(_ text: String) -> Int {
        tokenizer.tokens(text).count
    }
}
