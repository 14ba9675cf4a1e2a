import BerthNGram
import BerthTestSupport
import Foundation
import Testing

@Suite struct TokenizerTests {
    @Test(
        "Words are lowercased and punctuation is split off",
        arguments: [
            ("Hello, world!", ["hello", ",", "world", "!"]),
            ("Don't stop; the ship's late.", ["don't", "stop", ";", "the", "ship's", "late", "."]),
            ("  spaces\tand\nnew lines  ", ["spaces", "and", "new", "lines"]),
            ("Ünïcode café 42", ["ünïcode", "café", "42"]),
            ("'quoted'", ["'", "quoted", "'"]),
            ("", []),
        ]
    )
    func tokens(text: String, expected: [String]) {
        #expect(Tokenizer().tokens(text) == expected)
    }

    @Test func caseIsKeptWhenLowercasingIsOff() {
        #expect(Tokenizer(lowercase: false).tokens("The Ship") == ["The", "Ship"])
    }

    @Test func joiningPutsNoSpaceBeforeClosingPunctuation() {
        #expect(Tokenizer.join(["hello", ",", "world", "(", "again", ")", "!"]) == "hello, world (again)!")
    }
}

@Suite struct TrainingTests {
    let training = Corpus.sentences(400, seed: 1)
    let validation = Corpus.sentences(60, seed: 2)

    func train(epochs: Int = 3, learningRate: Double = 1e-5, warmupSteps: Int = 0, seed: UInt64 = 7) -> (TrainingResult, [TrainingEvent]) {
        let session = TrainingSession(
            model: NGramModel(),
            trainingTexts: training,
            validationTexts: validation,
            schedule: TrainingSchedule(epochs: epochs, batchSize: 8, learningRate: learningRate, warmupSteps: warmupSteps),
            seed: seed
        )
        var events: [TrainingEvent] = []
        let result = session.run(onEvent: { events.append($0) })
        return (result, events)
    }

    @Test func theTrainingLossFallsOverEpochs() throws {
        let (result, events) = train()
        let steps = events.compactMap { if case .step(let step) = $0 { step } else { nil } }
        #expect(steps.count == 3 * 50)
        #expect(steps.map(\.step) == Array(1...150))
        let firstEpoch = steps.filter { $0.epoch == 1 }.map(\.loss)
        let lastEpoch = steps.filter { $0.epoch == 3 }.map(\.loss)
        let mean = { (losses: [Double]) in losses.reduce(0, +) / Double(losses.count) }
        #expect(mean(lastEpoch) < mean(firstEpoch))
        let first = try #require(steps.first)
        let last = try #require(steps.last)
        #expect(last.loss < first.loss / 2)
        #expect(result.epochs.map(\.epoch) == [1, 2, 3])
        #expect(result.epochs[2].meanTrainingLoss! <= result.epochs[0].meanTrainingLoss!)
    }

    @Test func theTrainedModelPredictsItsTrainingTextBetterThanAnEmptyOne() throws {
        let (result, _) = train(epochs: 1)
        let before = try #require(NGramModel().crossEntropy(training))
        let after = try #require(result.model.crossEntropy(training))
        #expect(after < before / 4)
    }

    @Test func theValidationLossIsFiniteAndReportedOncePerEpochAtItsLastStep() throws {
        let (result, events) = train()
        let ends = events.compactMap { if case .epochEnd(let end) = $0 { end } else { nil } }
        #expect(ends.map(\.step) == [50, 100, 150])
        for end in ends {
            let loss = try #require(end.validationLoss)
            #expect(loss.isFinite && loss > 0)
        }
        // Words the model never saw still get a finite loss.
        let unseen = try #require(result.model.crossEntropy(["zebras juggle quantum marmalade"]))
        #expect(unseen.isFinite)
        let lastValidation = try #require(ends.last?.validationLoss)
        #expect(unseen > lastValidation)
    }

    @Test func theLearningRateAndWarmupChangeTheLearnedWeights() {
        let slow = train(epochs: 1, learningRate: 1e-6).0.model.weights
        let fast = train(epochs: 1, learningRate: 1e-4).0.model.weights
        let warm = train(epochs: 1, learningRate: 1e-4, warmupSteps: 20).0.model.weights
        #expect(slow != fast)
        #expect(warm != fast)
        #expect(TrainingSchedule(learningRate: 1e-5, warmupSteps: 10).stepSize(atStep: 5) == 0.05)
        #expect(TrainingSchedule(learningRate: 1e-5, warmupSteps: 10).stepSize(atStep: 50) == 0.1)
    }

    @Test func theSameSeedTrainsTheSameModelFile() throws {
        let first = try train(seed: 11).0.model.encoded()
        let second = try train(seed: 11).0.model.encoded()
        #expect(first == second)
    }

    @Test func aStopRequestEndsTheRunAtAStepBoundary() {
        let session = TrainingSession(
            model: NGramModel(),
            trainingTexts: training,
            validationTexts: validation,
            schedule: TrainingSchedule(epochs: 3, batchSize: 8),
            seed: 1
        )
        var steps = 0
        let result = session.run(onEvent: { if case .step = $0 { steps += 1 } }, shouldStop: { steps >= 7 })
        #expect(result.stopped)
        #expect(result.completedSteps == 7)
        #expect(result.model.tokensCounted > 0)
    }
}

@Suite struct GenerationTests {
    let model: NGramModel = {
        TrainingSession(
            model: NGramModel(),
            trainingTexts: Corpus.sentences(300, seed: 3),
            validationTexts: [],
            schedule: TrainingSchedule(epochs: 2),
            seed: 5
        ).run().model
    }()

    @Test func generationIsDeterministicForASeedAndDiffersForAnother() {
        let generator = TextGenerator(model: model)
        let first = generator.complete(prompt: "the captain", maxTokens: 30, seed: 42)
        let again = generator.complete(prompt: "the captain", maxTokens: 30, seed: 42)
        #expect(first == again)
        #expect(!first.tokens.isEmpty)
        let others = (43..<53).map { generator.complete(prompt: "the captain", maxTokens: 30, seed: UInt64($0)).text }
        #expect(others.contains { $0 != first.text })
    }

    @Test func generationStopsAtTheTokenLimitOrTheEndOfAText() {
        let generator = TextGenerator(model: model)
        for seed in UInt64(0)..<20 {
            let completion = generator.complete(prompt: "a pilot", maxTokens: 5, seed: seed)
            #expect(completion.completionTokens <= 5)
            #expect(completion.finishReason == (completion.completionTokens < 5 ? .stop : .length))
            #expect(completion.promptTokens == 2)
        }
        #expect(generator.complete(prompt: "a pilot", maxTokens: 0, seed: 1).tokens.isEmpty)
    }

    @Test func theModelLearnsWhatFollowsWhat() {
        // "the harbour" is always followed by "master" in the corpus.
        let generator = TextGenerator(model: model)
        #expect(generator.complete(prompt: "the harbour", maxTokens: 1, seed: 0, temperature: 0).tokens == ["master"])
        #expect(model.probability(of: "master", after: ["the", "harbour"]) > 0.9)
    }

    @Test func temperatureZeroIsGreedyWhateverTheSeed() {
        let generator = TextGenerator(model: model)
        let texts = Set((0..<5).map { generator.complete(prompt: "the crew", maxTokens: 12, seed: UInt64($0), temperature: 0).text })
        #expect(texts.count == 1)
        let warm = generator.complete(prompt: "the crew", maxTokens: 12, seed: 9, temperature: 0.7)
        #expect(warm == generator.complete(prompt: "the crew", maxTokens: 12, seed: 9, temperature: 0.7))
    }

    @Test func savingAndLoadingGivesTheSameModel() throws {
        let folder = try TemporaryDirectory(prefix: "berth-ngram")
        defer { folder.remove() }
        try model.save(to: URL(fileURLWithPath: folder.path))
        let loaded = try NGramModel.load(from: URL(fileURLWithPath: folder.path))
        let texts = Corpus.sentences(20, seed: 99)
        #expect(loaded.crossEntropy(texts) == model.crossEntropy(texts))
        #expect(loaded.weights == model.weights)
        #expect(try loaded.encoded() == model.encoded())
        for seed in UInt64(0)..<5 {
            #expect(
                TextGenerator(model: loaded).complete(prompt: "the ship", maxTokens: 20, seed: seed)
                    == TextGenerator(model: model).complete(prompt: "the ship", maxTokens: 20, seed: seed)
            )
        }
    }

    @Test func aFileThatIsNotAModelIsRefusedWithAReason() throws {
        let folder = try TemporaryDirectory(prefix: "berth-ngram")
        defer { folder.remove() }
        try Data(#"{"format":"something-else"}"#.utf8).write(to: URL(fileURLWithPath: folder.file("model.json")))
        #expect(throws: ModelFileError.self) { try NGramModel.load(from: URL(fileURLWithPath: folder.path)) }
        #expect(throws: ModelFileError.self) { try NGramModel.load(from: URL(fileURLWithPath: folder.file("missing"))) }
    }

    @Test func theBuiltInBaseModelIsTheSameForAnIdAndDiffersBetweenIds() throws {
        let first = try NGramModel.builtInBase(modelID: "amazon.nova-micro-v1:0").encoded()
        let again = try NGramModel.builtInBase(modelID: "amazon.nova-micro-v1:0").encoded()
        let other = try NGramModel.builtInBase(modelID: "meta.llama3-8b-instruct-v1:0").encoded()
        #expect(first == again)
        #expect(first != other)
        let base = NGramModel.builtInBase(modelID: "amazon.nova-micro-v1:0")
        #expect(base.vocabulary.count > 100)
        #expect(!TextGenerator(model: base).complete(prompt: "The harbour", maxTokens: 10, seed: 1).text.isEmpty)
    }
}
