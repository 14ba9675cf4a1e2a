/// How a training run walks the data, and how far each step may move the weights.
///
/// What the hyperparameters do here, honestly:
/// - `epochs`: passes over the data. The first pass counts the data; every pass trains the
///   interpolation weights. (Counting the same texts twice would only scale the counts, so
///   later passes do not recount.)
/// - `batchSize`: texts per step; one online-EM step of the weights per batch.
/// - `learningRate`: the EM step size, relative to `referenceLearningRate`
///   (`min(1, learningRate / 1e-4)`), so the catalog's range 1e-6…1e-4 maps to step sizes
///   0.01…1. It has no effect on the counts.
/// - `warmupSteps`: the step size rises linearly over the first `warmupSteps` steps.
public struct TrainingSchedule: Sendable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var warmupSteps: Int

    /// The learning rate that means "replace the weights with this batch's estimate".
    public static let referenceLearningRate = 1e-4

    public init(epochs: Int = 2, batchSize: Int = 8, learningRate: Double = 1e-5, warmupSteps: Int = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
    }

    /// The EM step size at `step` (1-based).
    public func stepSize(atStep step: Int) -> Double {
        let peak = min(1, max(0, learningRate / Self.referenceLearningRate))
        guard warmupSteps > 0 else { return peak }
        return peak * min(1, Double(step) / Double(warmupSteps))
    }
}

/// One step of training, as it happened.
public struct TrainingStep: Sendable, Equatable {
    /// 1-based, counted across epochs.
    public var step: Int
    /// 1-based.
    public var epoch: Int
    /// Cross-entropy (nats per predicted token) of the batch under the model before the step
    /// learned from it; after the first epoch, with the batch's own counts taken out, so it
    /// stays an estimate on unseen text rather than a measure of memorisation.
    public var loss: Double
    /// Words and punctuation in the batch's texts.
    public var tokens: Int
    /// Steps done ÷ steps planned.
    public var fraction: Double
}

/// The end of an epoch, with the loss on the held-out texts.
public struct EpochEnd: Sendable, Equatable {
    public var epoch: Int
    /// The last step of the epoch.
    public var step: Int
    /// Mean of the epoch's step losses.
    public var meanTrainingLoss: Double?
    /// Cross-entropy of the validation texts; `nil` with none.
    public var validationLoss: Double?
}

/// What `TrainingSession.run` reports, in order: each step, then each epoch's end.
public enum TrainingEvent: Sendable, Equatable {
    case step(TrainingStep)
    case epochEnd(EpochEnd)
}

/// What a run produced; `stopped` when `shouldStop` ended it early (the model is then
/// consistent but only partly trained).
public struct TrainingResult: Sendable {
    public var model: NGramModel
    public var stopped: Bool
    public var completedSteps: Int
    public var totalSteps: Int
    public var epochs: [EpochEnd]
    /// Words and punctuation of the training texts, summed over every step run.
    public var tokensProcessed: Int
    public var lastTrainingLoss: Double?
    public var lastValidationLoss: Double? { epochs.last?.validationLoss }
}

/// Trains a model over mini-batches in epochs (see `TrainingSchedule`). Batches are a shuffle
/// of the texts per epoch, drawn from the seed, so a run is reproducible.
public struct TrainingSession: Sendable {
    public let initialModel: NGramModel
    public let schedule: TrainingSchedule
    public let seed: UInt64
    let training: [[String]]
    let validation: [[String]]

    public init(model: NGramModel, trainingTexts: [String], validationTexts: [String], schedule: TrainingSchedule, seed: UInt64) {
        initialModel = model
        self.schedule = schedule
        self.seed = seed
        training = trainingTexts.map { model.tokenizer.tokens($0) }
        validation = validationTexts.map { model.tokenizer.tokens($0) }
    }

    public var stepsPerEpoch: Int {
        let batchSize = max(1, schedule.batchSize)
        return (training.count + batchSize - 1) / batchSize
    }

    public var totalSteps: Int { stepsPerEpoch * max(0, schedule.epochs) }

    /// Runs the epochs, reporting each step and each epoch's end to `onEvent`. `shouldStop` is
    /// asked before every step; when it says yes the run ends there.
    public func run(onEvent: (TrainingEvent) -> Void = { _ in }, shouldStop: () -> Bool = { false }) -> TrainingResult {
        var model = initialModel
        let batchSize = max(1, schedule.batchSize)
        let total = totalSteps
        var encoded = [[Int]](repeating: [], count: training.count)
        var result = TrainingResult(
            model: model,
            stopped: false,
            completedSteps: 0,
            totalSteps: total,
            epochs: [],
            tokensProcessed: 0,
            lastTrainingLoss: nil
        )
        var step = 0
        guard schedule.epochs >= 1 else { return result }

        for epoch in 1...schedule.epochs {
            var order = Array(training.indices)
            var random = SplitMix64(seed: SplitMix64.derive(seed, UInt64(epoch)))
            Self.shuffle(&order, using: &random)
            var epochLoss = 0.0
            var epochSteps = 0

            for start in stride(from: 0, to: order.count, by: batchSize) {
                if shouldStop() {
                    result.model = model
                    result.stopped = true
                    return result
                }
                step += 1
                let batch = order[start..<min(order.count, start + batchSize)]
                var statistics = WeightStatistics()
                var nll = 0.0
                var predictions = 0
                var tokens = 0

                // 1. Hold the batch out of the counts: in the first epoch it was never counted;
                //    later its counts are taken out for the step.
                if epoch > 1 {
                    for i in batch { model.count(encoded[i], times: -1) }
                }
                // 2. Score it (the loss) and collect the E-step's expected counts.
                for i in batch {
                    let ids = epoch == 1 ? model.ids(of: training[i]) : encoded[i]
                    let scored = model.score(ids, statistics: &statistics)
                    nll += scored.nll
                    predictions += scored.predictions
                    tokens += training[i].count
                }
                // 3. M-step on the weights, as far as the schedule allows.
                model.weights.learn(from: statistics, stepSize: schedule.stepSize(atStep: step))
                // 4. Put the batch's counts (back) in.
                for i in batch {
                    if epoch == 1 { encoded[i] = model.internIDs(of: training[i]) }
                    model.count(encoded[i], times: 1)
                }

                let loss = nll / Double(max(1, predictions))
                epochLoss += loss
                epochSteps += 1
                result.completedSteps = step
                result.tokensProcessed += tokens
                result.lastTrainingLoss = loss
                onEvent(
                    .step(
                        TrainingStep(
                            step: step,
                            epoch: epoch,
                            loss: loss,
                            tokens: tokens,
                            fraction: total > 0 ? Double(step) / Double(total) : 1
                        )
                    )
                )
            }

            let end = EpochEnd(
                epoch: epoch,
                step: step,
                meanTrainingLoss: epochSteps > 0 ? epochLoss / Double(epochSteps) : nil,
                validationLoss: validation.isEmpty ? nil : model.crossEntropy(tokenized: validation)
            )
            result.epochs.append(end)
            onEvent(.epochEnd(end))
        }
        result.model = model
        return result
    }

    /// Fisher–Yates with our generator, so the order never depends on the standard library's
    /// shuffle algorithm.
    static func shuffle(_ items: inout [Int], using random: inout SplitMix64) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            let j = Int(random.next() % UInt64(i + 1))
            items.swapAt(i, j)
        }
    }
}
