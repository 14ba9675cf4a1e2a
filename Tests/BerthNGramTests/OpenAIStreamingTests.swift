import BerthNGram
import Foundation
import Testing

/// What `berth-runner serve` streams: a continuation a token at a time, whose pieces are the
/// text `complete` gives, spaces and all.
@Suite struct OpenAIStreamingTests {
    let model: NGramModel = {
        TrainingSession(
            model: NGramModel(),
            trainingTexts: Corpus.sentences(300, seed: 3),
            validationTexts: [],
            schedule: TrainingSchedule(epochs: 2),
            seed: 5
        ).run().model
    }()

    @Test(
        "each piece is one token with the space before it, and the pieces are the joined tokens",
        arguments: ["the captain", "the captain ", "a pilot,", "", "(the crew"]
    )
    func piecesAreTheText(prompt: String) {
        let generator = TextGenerator(model: model)
        for seed in UInt64(0)..<30 {
            var generation = generator.generate(prompt: prompt, maxTokens: 25, seed: seed, temperature: seed % 3 == 0 ? 0.7 : 1)
            var pieces: [String] = []
            while let piece = generation.next() { pieces.append(piece) }
            #expect(pieces.count == generation.tokens.count)
            #expect(zip(pieces, generation.tokens).allSatisfy { $0.trimmingCharacters(in: .whitespaces) == $1 })
            // The text as the whole answer has it: the tokens joined, a space first when the
            // prompt ends inside a word and the first token does not attach to it.
            let joined = Tokenizer.join(generation.tokens)
            let first = generation.tokens.first
            let spaced =
                !prompt.isEmpty && first != nil && !Tokenizer.attachesToPrevious(first!)
                && !(prompt.unicodeScalars.last?.properties.isWhitespace ?? true)
            #expect(pieces.joined() == (spaced ? " " : "") + joined, "prompt \(prompt.debugDescription), seed \(seed)")
            let completion = generator.complete(prompt: prompt, maxTokens: 25, seed: seed, temperature: seed % 3 == 0 ? 0.7 : 1)
            #expect(completion.text == pieces.joined() && completion.finishReason == generation.finishReason)
        }
    }

    @Test func aGenerationEndsAtItsLimitAndStaysEnded() {
        var generation = TextGenerator(model: model).generate(prompt: "the ship", maxTokens: 3, seed: 1, temperature: 0)
        var count = 0
        while generation.next() != nil { count += 1 }
        #expect(count <= 3)
        #expect(generation.next() == nil)
        #expect(generation.finishReason == (count < 3 ? .stop : .length))
    }
}
