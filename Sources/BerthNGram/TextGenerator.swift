import Foundation

/// Why a completion ended: the model chose to end the text, or the token limit was reached.
public enum FinishReason: String, Sendable, Equatable, Codable {
    case stop
    case length
}

/// A continuation of a prompt, with the token counts usage is billed by.
public struct Completion: Sendable, Equatable {
    /// The continuation as text, with a leading space when it continues a word-final prompt.
    public var text: String
    public var tokens: [String]
    public var promptTokens: Int
    public var completionTokens: Int { tokens.count }
    public var finishReason: FinishReason
}

/// Generates text from a model. Built once per model (it indexes the counts by context), then
/// shared: it is immutable.
///
/// With temperature 1 it samples the model's own distribution exactly, by first choosing an
/// order in proportion to its interpolation weight and then a word from that order's counts:
/// the cost per token does not grow with the vocabulary. Other temperatures need every word's
/// probability, so they cost one pass over the vocabulary per token. Temperature 0 is greedy.
/// Generation never produces a word the model has not seen (the unknown word's share of the
/// uniform floor is dropped and the rest renormalised).
public struct TextGenerator: Sendable {
    public let model: NGramModel

    /// Successor tables: for each context, its words (ascending ids) with running counts.
    struct Successors: Sendable {
        var words: [Int32] = []
        var cumulative: [Int] = []
        /// Context key → range in `words`.
        var ranges: [UInt64: Range<Int>] = [:]

        init() {}

        /// From `key = context << 21 | word` counts.
        init(counts: [UInt64: Int]) {
            let keys = counts.compactMap { $0.value > 0 ? $0.key : nil }.sorted()
            words.reserveCapacity(keys.count)
            cumulative.reserveCapacity(keys.count)
            var start = 0
            var running = 0
            for (i, key) in keys.enumerated() {
                let context = key >> 21
                if i > 0 && keys[i - 1] >> 21 != context {
                    ranges[keys[i - 1] >> 21] = start..<i
                    start = i
                    running = 0
                }
                running += counts[key]!
                words.append(Int32(truncatingIfNeeded: key & 0x1F_FFFF))
                cumulative.append(running)
            }
            if let last = keys.last { ranges[last >> 21] = start..<keys.count }
        }

        func sample(context: UInt64, using random: inout SplitMix64) -> Int? {
            guard let range = ranges[context], let total = cumulative[range].last, total > 0 else { return nil }
            let target = Int(random.next() % UInt64(total))
            // The first running count above the target.
            var low = range.lowerBound
            var high = range.upperBound - 1
            while low < high {
                let middle = (low + high) / 2
                if cumulative[middle] > target { high = middle } else { low = middle + 1 }
            }
            return Int(words[low])
        }

        func forEach(context: UInt64, _ body: (Int, Int) -> Void) {
            guard let range = ranges[context] else { return }
            var previous = 0
            for i in range {
                body(Int(words[i]), cumulative[i] - previous)
                previous = cumulative[i]
            }
        }
    }

    let unigramSuccessors: Successors
    let bigramSuccessors: Successors
    let trigramSuccessors: Successors
    /// Words that may be generated: the end marker and every counted word.
    let candidates: [Int]

    public init(model: NGramModel) {
        self.model = model
        var unigramCounts: [UInt64: Int] = [:]
        var candidates: [Int] = []
        for id in model.unigrams.indices where id != Vocabulary.sentenceStart && id != Vocabulary.unknown && model.unigrams[id] > 0 {
            unigramCounts[UInt64(id)] = model.unigrams[id]
            candidates.append(id)
        }
        if candidates.first != Vocabulary.sentenceEnd { candidates.insert(Vocabulary.sentenceEnd, at: 0) }
        self.candidates = candidates
        unigramSuccessors = Successors(counts: unigramCounts)
        bigramSuccessors = Successors(counts: model.bigrams)
        trigramSuccessors = Successors(counts: model.trigrams)
    }

    /// Continues `prompt` with up to `maxTokens` tokens. The same seed gives the same text.
    public func complete(prompt: String, maxTokens: Int, seed: UInt64, temperature: Double = 1) -> Completion {
        var generation = generate(prompt: prompt, maxTokens: maxTokens, seed: seed, temperature: temperature)
        var text = ""
        while let piece = generation.next() { text += piece }
        return Completion(text: text, tokens: generation.tokens, promptTokens: generation.promptTokens, finishReason: generation.finishReason)
    }

    /// The same continuation as `complete`, a token at a time: for a server that streams each
    /// token as it is generated.
    public func generate(prompt: String, maxTokens: Int, seed: UInt64, temperature: Double = 1) -> Generation {
        Generation(generator: self, prompt: prompt, maxTokens: maxTokens, seed: seed, temperature: temperature)
    }

    /// A continuation under way. `next()` gives each token's text as it joins the text so far
    /// (with the space before it, if any), so the pieces add up to `complete`'s text.
    public struct Generation: Sendable {
        let generator: TextGenerator
        let prompt: String
        let maxTokens: Int
        let temperature: Double
        public let promptTokens: Int
        public private(set) var tokens: [String] = []
        /// `length` until the model ends the text itself.
        public private(set) var finishReason = FinishReason.length
        private var u: Int
        private var v: Int
        private var random: SplitMix64
        private var done = false

        init(generator: TextGenerator, prompt: String, maxTokens: Int, seed: UInt64, temperature: Double) {
            self.generator = generator
            self.prompt = prompt
            self.maxTokens = maxTokens
            self.temperature = temperature
            let promptTokens = generator.model.tokenizer.tokens(prompt)
            let promptIDs = generator.model.ids(of: promptTokens)
            self.promptTokens = promptTokens.count
            u = promptIDs.count >= 2 ? promptIDs[promptIDs.count - 2] : Vocabulary.sentenceStart
            v = promptIDs.last ?? Vocabulary.sentenceStart
            random = SplitMix64(seed: seed)
        }

        /// The next token's text, or nil once the text has ended.
        public mutating func next() -> String? {
            guard !done, tokens.count < max(0, maxTokens) else {
                done = true
                return nil
            }
            let w: Int
            if temperature <= 1e-6 {
                w = generator.greedy(u, v)
            } else if abs(temperature - 1) < 1e-9 {
                w = generator.sample(u, v, using: &random)
            } else {
                w = generator.sample(u, v, temperature: temperature, using: &random)
            }
            if w == Vocabulary.sentenceEnd {
                finishReason = .stop
                done = true
                return nil
            }
            let token = generator.model.vocabulary.words[w]
            let piece: String
            if let previous = tokens.last {
                piece = Tokenizer.attachesToPrevious(token) || Tokenizer.opensGroup(previous) ? token : " " + token
            } else if !prompt.isEmpty, !Tokenizer.attachesToPrevious(token), !(prompt.unicodeScalars.last?.properties.isWhitespace ?? true) {
                piece = " " + token
            } else {
                piece = token
            }
            tokens.append(token)
            u = v
            v = w
            return piece
        }
    }

    /// Interpolation coefficients of orders 3, 2, 1 and the uniform floor for context `u v`.
    private func coefficients(_ u: Int, _ v: Int) -> (Double, Double, Double, Double) {
        let total3 = model.trigramContexts[NGramModel.pairKey(u, v)] ?? 0
        let total2 = v < model.bigramContexts.count ? model.bigramContexts[v] : 0
        let total1 = model.unigramTotal
        let weight3 = total3 > 0 ? model.weights.weight(level: 2, count: total3) : 0
        let weight2 = total2 > 0 ? model.weights.weight(level: 1, count: total2) : 0
        let weight1 = total1 > 0 ? model.weights.weight(level: 0, count: total1) : 0
        var rest = 1.0
        let a3 = weight3
        rest *= 1 - weight3
        let a2 = rest * weight2
        rest *= 1 - weight2
        let a1 = rest * weight1
        rest *= 1 - weight1
        return (a3, a2, a1, rest)
    }

    /// Exact sampling at temperature 1: an order, then a word from its counts.
    private func sample(_ u: Int, _ v: Int, using random: inout SplitMix64) -> Int {
        let (a3, a2, a1, a0) = coefficients(u, v)
        // The floor's share of known words only.
        let floor = a0 * Double(candidates.count) * NGramModel.floorProbability
        for _ in 0..<8 {
            let pick = random.nextUnit() * (a3 + a2 + a1 + floor)
            let word: Int?
            if pick < a3 {
                word = trigramSuccessors.sample(context: NGramModel.pairKey(u, v), using: &random)
            } else if pick < a3 + a2 {
                word = bigramSuccessors.sample(context: UInt64(v), using: &random)
            } else if pick < a3 + a2 + a1 {
                word = unigramSuccessors.sample(context: 0, using: &random)
            } else {
                word = candidates[Int(random.next() % UInt64(candidates.count))]
            }
            if let word, word != Vocabulary.unknown, word != Vocabulary.sentenceStart { return word }
        }
        return Vocabulary.sentenceEnd
    }

    /// Every candidate's probability in context `u v`, indexed by id (0 for non-candidates).
    private func distribution(_ u: Int, _ v: Int) -> [Double] {
        let (a3, a2, a1, a0) = coefficients(u, v)
        var p = [Double](repeating: 0, count: model.vocabulary.count)
        let scale1 = model.unigramTotal > 0 ? a1 / Double(model.unigramTotal) : 0
        let floor = a0 * NGramModel.floorProbability
        for id in candidates {
            p[id] = scale1 * Double(model.unigrams[id]) + floor
        }
        if a2 > 0 {
            let scale2 = a2 / Double(model.bigramContexts[v])
            bigramSuccessors.forEach(context: UInt64(v)) { w, c in p[w] += scale2 * Double(c) }
        }
        if a3 > 0, let total3 = model.trigramContexts[NGramModel.pairKey(u, v)], total3 > 0 {
            let scale3 = a3 / Double(total3)
            trigramSuccessors.forEach(context: NGramModel.pairKey(u, v)) { w, c in p[w] += scale3 * Double(c) }
        }
        p[Vocabulary.sentenceStart] = 0
        p[Vocabulary.unknown] = 0
        return p
    }

    private func greedy(_ u: Int, _ v: Int) -> Int {
        let p = distribution(u, v)
        var best = Vocabulary.sentenceEnd
        for id in candidates where p[id] > p[best] { best = id }
        return best
    }

    /// Sampling from `p^(1/T)`, renormalised.
    private func sample(_ u: Int, _ v: Int, temperature: Double, using random: inout SplitMix64) -> Int {
        let p = distribution(u, v)
        let top = candidates.reduce(0.0) { max($0, p[$1]) }
        guard top > 0 else { return Vocabulary.sentenceEnd }
        let logTop = log(top)
        var weights = [Double](repeating: 0, count: candidates.count)
        var total = 0.0
        for (i, id) in candidates.enumerated() where p[id] > 0 {
            weights[i] = exp((log(p[id]) - logTop) / temperature)
            total += weights[i]
        }
        var pick = random.nextUnit() * total
        for (i, weight) in weights.enumerated() {
            pick -= weight
            if pick < 0 { return candidates[i] }
        }
        return candidates.last ?? Vocabulary.sentenceEnd
    }
}
