import BerthNGram
import BerthWire
import Foundation

/// A training job from its spec: reads the records as texts, trains the spec's base model on
/// them in mini-batches, reports each step on stdout and saves the custom model.
struct TrainingJob {
    static let kinds = ["fine-tuning", "continued-pretraining", "distillation"]
    /// Used when the spec carries no hyperparameters.
    static let defaultHyperparameters = Hyperparameters(epochs: 2, batchSize: 8, learningRate: 0.00001, warmupSteps: 0)
    /// How long the teacher's answers are in a distillation job.
    static let teacherMaxTokens = 32
    static let reportFileName = "runner.json"

    let spec: JobSpec

    /// What the runner leaves next to `model.json`: how the model was made.
    struct Report: Codable {
        struct Epoch: Codable {
            var epoch: Int
            var step: Int
            var meanTrainLoss: Double?
            var validationLoss: Double?
        }

        var kind: String
        var jobId: Int64
        var model: String
        var baseModel: String
        var modelName: String?
        var modelType: String
        var hyperparameters: Hyperparameters
        var seed: UInt64
        var trainingRecords: Int
        var validationRecords: Int
        /// `validation file`, `held out from the training data` or `the training data`.
        var validationSource: String
        var steps: Int
        var epochs: [Epoch]
        var finalTrainLoss: Double?
        var finalValidationLoss: Double?
        var inputTokens: Int
        var outputTokens: Int
        var vocabularySize: Int
        var trigrams: Int
    }

    func run() throws {
        // 1. The spec.
        guard Self.kinds.contains(spec.kind) else {
            throw RunnerFailure.invalid(
                "`train` runs \(Self.kinds.joined(separator: ", ")) jobs, not \(spec.kind); use `berth-runner batch` for batch-inference"
            )
        }
        let hyperparameters = spec.hyperparameters ?? Self.defaultHyperparameters
        guard hyperparameters.epochs >= 1, hyperparameters.batchSize >= 1, hyperparameters.warmupSteps >= 0,
            hyperparameters.learningRate.isFinite, hyperparameters.learningRate > 0
        else {
            throw RunnerFailure.invalid(
                "hyperparameters need epochs ≥ 1, batch_size ≥ 1, learning_rate > 0 and warmup_steps ≥ 0; got \(hyperparameters)"
            )
        }
        let base = NGramModel.builtInBase(modelID: spec.baseModel)

        // 2. The data, as texts; a distillation teacher writes the completions first.
        var usage = (input: 0, output: 0)
        var training = try texts(of: JobData.read(spec.dataPath), base: base, usage: &usage)
        var validation: [String]
        let validationSource: String
        if let path = spec.validationDataPath {
            validation = try texts(of: JobData.read(path), base: base, usage: &usage)
            validationSource = "validation file"
        } else if training.count >= 2 {
            (training, validation) = Self.holdOut(training, seed: spec.seed)
            validationSource = "held out from the training data"
        } else {
            validation = training
            validationSource = "the training data"
        }
        guard !training.isEmpty else { throw RunnerFailure.invalid("\(spec.dataPath) has no records to train on") }

        // 3. Train.
        let schedule = TrainingSchedule(
            epochs: hyperparameters.epochs,
            batchSize: hyperparameters.batchSize,
            learningRate: hyperparameters.learningRate,
            warmupSteps: hyperparameters.warmupSteps
        )
        let session = TrainingSession(model: base, trainingTexts: training, validationTexts: validation, schedule: schedule, seed: spec.seed)
        RunnerOutput.note(
            "\(spec.kind) of \(spec.baseModel): \(training.count) training records, \(validation.count) validation (\(validationSource)); "
                + "\(schedule.epochs) epochs of \(session.stepsPerEpoch) steps, batch size \(schedule.batchSize), "
                + "learning rate \(schedule.learningRate) (EM step size \(schedule.stepSize(atStep: Int.max))), warmup \(schedule.warmupSteps) steps"
        )
        let result = session.run(
            onEvent: { event in
                switch event {
                case .step(let step):
                    RunnerOutput.emit(.metric(name: "train_loss", step: step.step, epoch: step.epoch, value: step.loss))
                    RunnerOutput.emit(.progress(fraction: step.fraction))
                case .epochEnd(let end):
                    if let loss = end.validationLoss {
                        RunnerOutput.emit(.metric(name: "validation_loss", step: end.step, epoch: end.epoch, value: loss))
                    }
                    RunnerOutput.note(
                        "epoch \(end.epoch) done at step \(end.step): mean train loss \(end.meanTrainingLoss.map { "\($0)" } ?? "-"), validation loss \(end.validationLoss.map { "\($0)" } ?? "-")"
                    )
                }
            },
            shouldStop: { StopSignal.requested }
        )
        usage.input += result.tokensProcessed
        if result.stopped {
            RunnerOutput.emit(.usage(inputTokens: usage.input, outputTokens: usage.output))
            throw RunnerFailure(
                message: "stopped by signal after step \(result.completedSteps) of \(result.totalSteps); no model saved",
                exitCode: RunnerFailure.stoppedExitCode
            )
        }

        // 4. Save the model and how it was made.
        let output = URL(fileURLWithPath: spec.outputDir)
        do {
            try result.model.save(to: output)
        } catch let error as ModelFileError {
            throw RunnerFailure.failed(error.description)
        }
        let report = Report(
            kind: spec.kind,
            jobId: spec.jobId,
            model: spec.model,
            baseModel: spec.baseModel,
            modelName: spec.modelName,
            modelType: "word trigram, bucketed Jelinek-Mercer interpolation (berth-ngram v1)",
            hyperparameters: hyperparameters,
            seed: spec.seed,
            trainingRecords: training.count,
            validationRecords: validation.count,
            validationSource: validationSource,
            steps: result.completedSteps,
            epochs: result.epochs.map {
                Report.Epoch(epoch: $0.epoch, step: $0.step, meanTrainLoss: $0.meanTrainingLoss, validationLoss: $0.validationLoss)
            },
            finalTrainLoss: result.lastTrainingLoss,
            finalValidationLoss: result.lastValidationLoss,
            inputTokens: usage.input,
            outputTokens: usage.output,
            vocabularySize: result.model.vocabulary.count,
            trigrams: result.model.trigramCount
        )
        do {
            try Wire.encoder(pretty: true).encode(report).write(to: output.appendingPathComponent(Self.reportFileName), options: .atomic)
        } catch {
            throw RunnerFailure.failed("cannot write \(output.appendingPathComponent(Self.reportFileName).path): \(error.localizedDescription)")
        }
        RunnerOutput.note(
            "saved \(NGramModel.fileName) and \(Self.reportFileName) in \(spec.outputDir): \(result.model.vocabulary.count) words, "
                + "\(result.model.trigramCount) trigrams; final train loss \(result.lastTrainingLoss ?? .nan), "
                + "validation loss \(result.lastValidationLoss ?? .nan)"
        )
        RunnerOutput.emit(.usage(inputTokens: usage.input, outputTokens: usage.output))
    }

    /// The texts the model learns from: prompt and completion as one text (fine-tuning), the
    /// input (continued pre-training), or the prompt with the teacher's answer (distillation).
    private func texts(of data: JobData, base: NGramModel, usage: inout (input: Int, output: Int)) throws -> [String] {
        switch spec.kind {
        case "fine-tuning":
            return try data.records.map { "\(try $0.string("prompt")) \(try $0.string("completion"))" }
        case "continued-pretraining":
            return try data.records.map { try $0.string("input") }
        default:
            let prompts = try data.records.map { try $0.string("prompt") }
            return try distill(prompts, base: base, usage: &usage)
        }
    }

    /// The teacher is the base model that has also read the prompts (so it knows their words);
    /// it answers each prompt, and the student learns the prompt with that answer. Honest and
    /// small: the student learns to imitate its teacher on these prompts, nothing more.
    private func distill(_ prompts: [String], base: NGramModel, usage: inout (input: Int, output: Int)) throws -> [String] {
        var teacherModel = base
        teacherModel.count(prompts)
        let teacher = TextGenerator(model: teacherModel)
        var texts: [String] = []
        texts.reserveCapacity(prompts.count)
        for (i, prompt) in prompts.enumerated() {
            if StopSignal.requested {
                RunnerOutput.emit(.usage(inputTokens: usage.input, outputTokens: usage.output))
                throw RunnerFailure(
                    message: "stopped by signal while the teacher answered prompt \(i + 1) of \(prompts.count); no model saved",
                    exitCode: RunnerFailure.stoppedExitCode
                )
            }
            let answer = teacher.complete(
                prompt: prompt,
                maxTokens: min(Self.teacherMaxTokens, max(0, spec.maxTokens)),
                seed: SplitMix64.derive(spec.seed, UInt64(i))
            )
            usage.input += answer.promptTokens
            usage.output += answer.completionTokens
            texts.append(prompt + answer.text)
        }
        RunnerOutput.note(
            "distillation: the teacher (\(spec.baseModel), built in, plus the \(prompts.count) prompts) answered with \(usage.output) tokens"
        )
        return texts
    }

    /// About one record in ten, chosen by the seed, for validation; at least one, and never all.
    static func holdOut(_ texts: [String], seed: UInt64) -> (training: [String], validation: [String]) {
        var training: [String] = []
        var validation: [String] = []
        for (i, text) in texts.enumerated() {
            if SplitMix64.derive(seed, UInt64(i)) % 10 == 0 { validation.append(text) } else { training.append(text) }
        }
        if validation.isEmpty, let last = training.popLast() { validation.append(last) }
        if training.isEmpty, let first = validation.first {
            validation.removeFirst()
            training.append(first)
        }
        return (training, validation)
    }
}
