import BerthNGram
import BerthWire
import Foundation

/// A batch-inference job: a completion for every record, written in order to
/// `output_dir/output.jsonl` (through a `.partial` file, renamed when every record is done).
struct BatchJob {
    static let outputFileName = "output.jsonl"
    /// Tokens generated per record unless the record says otherwise.
    static let defaultMaxTokens = 64

    let spec: JobSpec

    /// One record's input, read from `{"recordId", "modelInput"}`.
    struct Input {
        var recordID: JSONValue
        var prompt: String
        var maxTokens: Int?
        var temperature: Double?
    }

    /// One output line, `{"recordId":…,"modelOutput":{…}}`, with the record id first and the
    /// rest in a fixed order, so the same job writes the same bytes.
    struct OutputRecord {
        struct ModelOutput: Encodable {
            var text: String
            var inputTokens: Int
            var outputTokens: Int
            enum CodingKeys: String, CodingKey {
                case text
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
            }
        }

        var recordId: JSONValue
        var modelOutput: ModelOutput

        func line() throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Data(#"{"recordId":"#.utf8) + (try encoder.encode(recordId)) + Data(#","modelOutput":"#.utf8)
                + (try encoder.encode(modelOutput)) + Data("}\n".utf8)
        }
    }

    func run() throws {
        // 1. The spec, the model and every input, before any output is written.
        guard spec.kind == "batch-inference" else {
            throw RunnerFailure.invalid("`batch` runs batch-inference jobs, not \(spec.kind); use `berth-runner train`")
        }
        let model: NGramModel
        if let modelDir = spec.modelDir {
            do {
                model = try NGramModel.load(from: URL(fileURLWithPath: modelDir))
            } catch let error as ModelFileError {
                throw RunnerFailure.failed("\(error.description); is model_dir the output folder of a completed training job?")
            }
            RunnerOutput.note("batch inference with \(spec.model) from \(modelDir)")
        } else {
            model = NGramModel.builtInBase(modelID: spec.model)
            RunnerOutput.note("batch inference with the built-in base model \(spec.model)")
        }
        let inputs = try JobData.read(spec.dataPath).records.map(Self.input)
        let generator = TextGenerator(model: model)

        // 2. Generate, record by record, in order.
        let output = URL(fileURLWithPath: spec.outputDir)
        let final = output.appendingPathComponent(Self.outputFileName)
        let partial = output.appendingPathComponent(Self.outputFileName + ".partial")
        let file: FileHandle
        do {
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: partial.path, contents: nil) else {
                throw CocoaError(.fileWriteNoPermission)
            }
            file = try FileHandle(forWritingTo: partial)
        } catch {
            throw RunnerFailure.failed("cannot write \(partial.path): \(error.localizedDescription)")
        }
        var usage = (input: 0, output: 0)
        var reportedPercent = -1
        for (i, input) in inputs.enumerated() {
            if StopSignal.requested {
                try? file.close()
                try? FileManager.default.removeItem(at: partial)
                RunnerOutput.emit(.usage(inputTokens: usage.input, outputTokens: usage.output))
                throw RunnerFailure(
                    message: "stopped by signal after \(i) of \(inputs.count) records; no output written",
                    exitCode: RunnerFailure.stoppedExitCode
                )
            }
            let promptTokens = model.tokenCount(input.prompt)
            let room = max(0, spec.maxTokens - promptTokens)
            let completion = generator.complete(
                prompt: input.prompt,
                maxTokens: min(input.maxTokens ?? Self.defaultMaxTokens, room),
                seed: SplitMix64.derive(spec.seed, UInt64(i)),
                temperature: input.temperature ?? 1
            )
            let record = OutputRecord(
                recordId: input.recordID,
                modelOutput: .init(text: completion.text, inputTokens: completion.promptTokens, outputTokens: completion.completionTokens)
            )
            do {
                try file.write(contentsOf: try record.line())
            } catch {
                throw RunnerFailure.failed("cannot write \(partial.path): \(error.localizedDescription)")
            }
            usage.input += completion.promptTokens
            usage.output += completion.completionTokens
            let percent = (i + 1) * 100 / inputs.count
            if percent > reportedPercent {
                reportedPercent = percent
                RunnerOutput.emit(.progress(fraction: Double(i + 1) / Double(inputs.count)))
            }
        }

        // 3. Publish the output whole.
        do {
            try file.close()
            if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
            try FileManager.default.moveItem(at: partial, to: final)
        } catch {
            throw RunnerFailure.failed("cannot write \(final.path): \(error.localizedDescription)")
        }
        if inputs.isEmpty { RunnerOutput.emit(.progress(fraction: 1)) }
        RunnerOutput.note("wrote \(inputs.count) records to \(final.path): \(usage.input) input and \(usage.output) output tokens")
        RunnerOutput.emit(.usage(inputTokens: usage.input, outputTokens: usage.output))
    }

    /// `modelInput` is a string, or an object with `prompt` or `inputText` and optionally
    /// `max_tokens`/`maxTokens` and `temperature`.
    static func input(_ record: JobData.Record) throws -> Input {
        let place = "\(record.file) line \(record.line)"
        guard let id = record.fields["recordId"] else { throw RunnerFailure.invalid("\(place): missing field \"recordId\"") }
        switch id {
        case .string, .integer: break
        default: throw RunnerFailure.invalid("\(place): \"recordId\" must be a string or an integer, not \(id.typeName)")
        }
        guard let modelInput = record.fields["modelInput"] else { throw RunnerFailure.invalid("\(place): missing field \"modelInput\"") }
        if let prompt = modelInput.string { return Input(recordID: id, prompt: prompt) }
        guard let fields = modelInput.object else {
            throw RunnerFailure.invalid("\(place): \"modelInput\" must be a string or an object, not \(modelInput.typeName)")
        }
        guard let prompt = (fields["prompt"] ?? fields["inputText"])?.string else {
            throw RunnerFailure.invalid("\(place): \"modelInput\" needs a string \"prompt\" or \"inputText\"")
        }
        var input = Input(recordID: id, prompt: prompt)
        if let value = fields["max_tokens"] ?? fields["maxTokens"] {
            guard let maxTokens = value.integer, maxTokens >= 0 else {
                throw RunnerFailure.invalid("\(place): \"max_tokens\" must be a whole number ≥ 0")
            }
            input.maxTokens = maxTokens
        }
        if let value = fields["temperature"] {
            guard let temperature = value.number, (0...2).contains(temperature) else {
                throw RunnerFailure.invalid("\(place): \"temperature\" must be a number from 0 to 2")
            }
            input.temperature = temperature
        }
        return input
    }
}
