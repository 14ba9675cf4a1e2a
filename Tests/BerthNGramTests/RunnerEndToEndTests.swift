import BerthNGram
import BerthTestSupport
import BerthWire
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `berth-runner`, run as berthd runs it: a spec file, events on stdout.
@Suite(.serialized) struct RunnerEndToEndTests {
    static var runner: String { Products.path("berth-runner") }

    /// A spec for `kind` over `data`, writing into `folder/out`.
    static func spec(
        _ kind: String,
        data: String,
        in folder: TemporaryDirectory,
        output: String = "out",
        epochs: Int = 2,
        batchSize: Int = 10,
        seed: UInt64 = 42,
        modelDir: String? = nil,
        validation: String? = nil
    ) throws -> String {
        let spec = JobSpec(
            jobId: 7,
            kind: kind,
            model: "amazon.nova-micro-v1:0",
            baseModel: "amazon.nova-micro-v1:0",
            modelName: "harbour-talk",
            hyperparameters: kind == "batch-inference"
                ? nil : Hyperparameters(epochs: epochs, batchSize: batchSize, learningRate: 0.00001, warmupSteps: 2),
            dataPath: data,
            validationDataPath: validation,
            outputDir: folder.file(output),
            modelDir: modelDir,
            seed: seed,
            units: ["cpu-0"],
            maxTokens: 8192
        )
        let path = folder.file("spec-\(output).json")
        try Wire.encoder().encode(spec).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func writeLines(_ objects: [[String: Any]], to path: String) throws {
        let lines = try objects.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func fineTuningData(_ count: Int, in folder: TemporaryDirectory) throws -> String {
        let sentences = Corpus.sentences(count, seed: 3)
        let path = folder.file("train.jsonl")
        try writeLines(
            sentences.map { sentence in
                let words = sentence.split(separator: " ")
                return ["prompt": words.prefix(3).joined(separator: " "), "completion": words.dropFirst(3).joined(separator: " ")]
            },
            to: path
        )
        return path
    }

    static func events(_ stdout: String) -> [RunnerEvent?] {
        stdout.split(separator: "\n").map { RunnerEvent(line: String($0)) }
    }

    // MARK: train

    @Test func trainPrintsALossPerStepAndPerEpochThenSavesTheModel() throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let spec = try Self.spec("fine-tuning", data: Self.fineTuningData(200, in: folder), in: folder)
        let result = try Products.run(Self.runner, ["train", "--spec", spec])
        #expect(result.status == 0, "\(result)")

        let parsed = Self.events(result.stdout)
        #expect(!parsed.isEmpty && parsed.allSatisfy { $0 != nil }, "every stdout line is an event: \(result.stdout)")
        let events = parsed.compactMap { $0 }
        var trainSteps: [Int] = []
        var validation: [(step: Int, epoch: Int?)] = []
        var progress: [Double] = []
        var usage: [(Int, Int)] = []
        for event in events {
            switch event {
            case .metric("train_loss", let step, let epoch, let value):
                trainSteps.append(step)
                #expect(epoch != nil && value.isFinite && value > 0)
            case .metric("validation_loss", let step, let epoch, _):
                validation.append((step, epoch))
            case .progress(let fraction):
                progress.append(fraction)
            case .usage(let input, let output):
                usage.append((input, output))
            default:
                Issue.record("unexpected event \(event)")
            }
        }
        // About 180 training records in batches of 10, twice.
        let perEpoch = trainSteps.count / 2
        #expect(trainSteps == Array(1...trainSteps.count))
        #expect(trainSteps.count % 2 == 0 && (17...20).contains(perEpoch))
        #expect(validation.map(\.step) == [perEpoch, 2 * perEpoch])
        #expect(validation.map(\.epoch) == [1, 2])
        #expect(progress.count == trainSteps.count && progress.last == 1 && progress == progress.sorted())
        #expect(usage.count == 1 && usage[0].0 > 0 && usage[0].1 == 0)
        if case .usage? = events.last {} else { Issue.record("usage is the last event") }

        #expect(FileManager.default.fileExists(atPath: folder.file("out/model.json")))
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder.file("out/runner.json")))) as? [String: Any]
        )
        #expect(report["kind"] as? String == "fine-tuning")
        #expect(report["base_model"] as? String == "amazon.nova-micro-v1:0")
        #expect(report["seed"] as? Int == 42)
        #expect((report["final_validation_loss"] as? Double)?.isFinite == true)
        #expect((report["hyperparameters"] as? [String: Any])?["batch_size"] as? Int == 10)
        _ = try NGramModel.load(from: URL(fileURLWithPath: folder.file("out")))
    }

    @Test func theSameSeedWritesTheSameModelFile() throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let data = try Self.fineTuningData(150, in: folder)
        let first = try Self.spec("fine-tuning", data: data, in: folder, output: "first")
        let second = try Self.spec("fine-tuning", data: data, in: folder, output: "second")
        let other = try Self.spec("fine-tuning", data: data, in: folder, output: "other", seed: 43)
        // The spec may also come from BERTH_JOB_SPEC.
        #expect(try Products.run(Self.runner, ["train"], environment: ["BERTH_JOB_SPEC": first]).status == 0)
        #expect(try Products.run(Self.runner, ["train", "--spec", second]).status == 0)
        #expect(try Products.run(Self.runner, ["train", "--spec", other]).status == 0)
        let bytes = { (name: String) in try Data(contentsOf: URL(fileURLWithPath: folder.file("\(name)/model.json"))) }
        #expect(try bytes("first") == bytes("second"))
        #expect(try bytes("first") != bytes("other"))
    }

    @Test(arguments: ["continued-pretraining", "distillation"])
    func theOtherTrainingKindsTrainToo(kind: String) throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let data = folder.file("data.jsonl")
        let field = kind == "distillation" ? "prompt" : "input"
        try Self.writeLines(Corpus.sentences(80, seed: 4).map { [field: $0] }, to: data)
        let validation = folder.file("validation.jsonl")
        try Self.writeLines(Corpus.sentences(10, seed: 5).map { [field: $0] }, to: validation)
        let result = try Products.run(Self.runner, ["train", "--spec", try Self.spec(kind, data: data, in: folder, validation: validation)])
        #expect(result.status == 0, "\(result)")
        let events = Self.events(result.stdout).compactMap { $0 }
        #expect(events.filter { if case .metric("validation_loss", _, _, _) = $0 { true } else { false } }.count == 2)
        guard case .usage(let input, let output)? = events.last else {
            Issue.record("no usage at the end")
            return
        }
        #expect(input > 0)
        // The distillation teacher's answers are output tokens; plain training has none.
        #expect(kind == "distillation" ? output > 0 : output == 0)
        #expect(FileManager.default.fileExists(atPath: folder.file("out/model.json")))
    }

    @Test func aBadRecordFailsWithItsLineNumberAndNoModel() throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let data = folder.file("bad.jsonl")
        try #"{"prompt":"a","completion":"b"}\#n{"prompt":"only a prompt"}\#n"#.write(toFile: data, atomically: true, encoding: .utf8)
        let result = try Products.run(Self.runner, ["train", "--spec", try Self.spec("fine-tuning", data: data, in: folder)])
        #expect(result.status != 0)
        #expect(result.stderr.contains("line 2") && result.stderr.contains("completion"), "\(result)")
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: folder.file("out/model.json")))
    }

    @Test func sigtermDuringALongTrainingRunStopsItPromptly() throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let data = folder.file("big.jsonl")
        try Self.writeLines(Corpus.sentences(5000, seed: 6).map { ["input": $0] }, to: data)
        let spec = try Self.spec("continued-pretraining", data: data, in: folder, epochs: 500, batchSize: 1)
        let process = try RunningProcess(Self.runner, ["train", "--spec", spec], in: folder)
        // Wait until it is training, then stop it.
        try process.waitForOutput(timeout: 30) { $0.contains("train_loss") }
        let stopped = Date()
        process.signal(SIGTERM)
        let status = try process.waitForExit(timeout: 10)
        #expect(Date().timeIntervalSince(stopped) < 5)
        #expect(status != 0)
        #expect(status == 143)
        #expect(process.stderr.contains("stopped"))
        #expect(!FileManager.default.fileExists(atPath: folder.file("out/model.json")))
        // Everything it printed, even the last line, is a whole event.
        #expect(Self.events(process.stdout).allSatisfy { $0 != nil })
    }

    // MARK: batch

    @Test func batchWritesOneOutputPerRecordInOrderWithTokenCounts() throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        // A custom model from a training run, then batch inference with it.
        #expect(
            try Products.run(
                Self.runner,
                ["train", "--spec", try Self.spec("fine-tuning", data: Self.fineTuningData(100, in: folder), in: folder, output: "model")]
            ).status == 0
        )
        let data = folder.file("batch.jsonl")
        try Self.writeLines(
            [
                ["recordId": "r-1", "modelInput": "the captain"],
                ["recordId": "r-2", "modelInput": ["prompt": "a pilot checks", "max_tokens": 3]],
                ["recordId": "r-3", "modelInput": ["inputText": "The crew", "maxTokens": 0]],
                ["recordId": 4, "modelInput": ["prompt": "the harbour", "max_tokens": 8, "temperature": 0]],
            ],
            to: data
        )
        for modelDir in [folder.file("model"), nil] {
            let output = modelDir == nil ? "base-out" : "custom-out"
            let spec = try Self.spec("batch-inference", data: data, in: folder, output: output, modelDir: modelDir)
            let result = try Products.run(Self.runner, ["batch", "--spec", spec])
            #expect(result.status == 0, "\(result)")
            let lines = try String(contentsOfFile: folder.file("\(output)/output.jsonl"), encoding: .utf8).split(separator: "\n")
            let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(records.count == 4)
            #expect(records[0]["recordId"] as? String == "r-1")
            #expect(records[1]["recordId"] as? String == "r-2")
            #expect(records[2]["recordId"] as? String == "r-3")
            #expect(records[3]["recordId"] as? Int == 4)
            let outputs = records.compactMap { $0["modelOutput"] as? [String: Any] }
            #expect(outputs.count == 4)
            #expect(outputs.map { $0["input_tokens"] as? Int } == [2, 3, 2, 2])
            #expect(outputs.allSatisfy { $0["text"] is String && $0["output_tokens"] is Int })
            #expect((outputs[1]["output_tokens"] as? Int ?? 99) <= 3)
            #expect(outputs[2]["output_tokens"] as? Int == 0 && outputs[2]["text"] as? String == "")
            let events = Self.events(result.stdout)
            #expect(events.allSatisfy { $0 != nil })
            let totalOutput = outputs.reduce(0) { $0 + ($1["output_tokens"] as? Int ?? 0) }
            #expect(events.last == .usage(inputTokens: 9, outputTokens: totalOutput))
            #expect(events.contains(.progress(fraction: 1)))
            #expect(!FileManager.default.fileExists(atPath: folder.file("\(output)/output.jsonl.partial")))
        }
    }

    // MARK: serve

    @Test func serveAnswersHealthCompletionsAndChatCompletionsLikeOpenAIAndExitsZeroOnSigterm() async throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner")
        defer { folder.remove() }
        let port = try freePort()
        let process = try RunningProcess(
            Self.runner,
            ["serve", "--model-dir", folder.file("no-model-here"), "--port", String(port), "--model-id", "amazon.nova-micro-v1:0"],
            in: folder
        )
        defer { process.kill() }
        let base = "http://127.0.0.1:\(port)"

        // 1. Health, once it is up.
        var healthy = false
        _ = await eventuallyAwaiting(timeout: 30) {
            if let (body, status) = try? await http("GET", "\(base)/health"), status == 200 {
                let shown = try? JSONSerialization.jsonObject(with: body) as? [String: String]
                #expect(shown == ["status": "ok"])
                healthy = true
            }
            return healthy || !process.isRunning
        }
        #expect(healthy, "serve did not answer /health: \(process.stderr)")

        // 2. A completion in OpenAI's shape, the same again for the same seed.
        let request = #"{"model":"amazon.nova-micro-v1:0","prompt":"The harbour","max_tokens":12,"temperature":1,"seed":5}"#
        let (body, status) = try await http("POST", "\(base)/v1/completions", body: request)
        #expect(status == 200)
        let answer = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect((answer["id"] as? String)?.isEmpty == false)
        #expect(answer["object"] as? String == "text_completion")
        #expect(answer["created"] is Int)
        #expect(answer["model"] as? String == "amazon.nova-micro-v1:0")
        let choices = try #require(answer["choices"] as? [[String: Any]])
        #expect(choices.count == 1)
        #expect(choices[0]["index"] as? Int == 0)
        #expect(choices[0]["text"] is String)
        #expect(["length", "stop"].contains(choices[0]["finish_reason"] as? String))
        let usage = try #require(answer["usage"] as? [String: Int])
        #expect(usage["prompt_tokens"] == 2)
        #expect((usage["completion_tokens"] ?? 99) <= 12)
        #expect(usage["total_tokens"] == (usage["prompt_tokens"] ?? 0) + (usage["completion_tokens"] ?? 0))
        let again = try #require(
            try JSONSerialization.jsonObject(with: try await http("POST", "\(base)/v1/completions", body: request).0) as? [String: Any]
        )
        #expect((again["choices"] as? [[String: Any]])?.first?["text"] as? String == choices[0]["text"] as? String)

        // 3. A bad body is a 400 with an OpenAI-like error.
        for bad in ["not json", #"{"max_tokens":3}"#, #"{"prompt":"x","max_tokens":-1}"#, #"{"prompt":"x","temperature":"hot"}"#] {
            let (errorBody, errorStatus) = try await http("POST", "\(base)/v1/completions", body: bad)
            #expect(errorStatus == 400, "\(bad)")
            let error = try #require((try JSONSerialization.jsonObject(with: errorBody) as? [String: Any])?["error"] as? [String: Any])
            #expect(error["message"] is String && error["type"] as? String == "invalid_request_error")
        }

        // 4. A chat completion, as calls with an image come: the messages' text is the prompt,
        // the answer is in the chat shape, and the image is checked and logged.
        let pixel = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]).base64EncodedString()
        let chat =
            #"{"model":"amazon.nova-micro-v1:0","max_tokens":6,"seed":5,"messages":[{"role":"user","content":[{"type":"text","text":"The harbour"},{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(pixel)"}}]}]}"#
        let (chatBody, chatStatus) = try await http("POST", "\(base)/v1/chat/completions", body: chat)
        #expect(chatStatus == 200, "\(String(decoding: chatBody, as: UTF8.self))")
        let chatAnswer = try #require(try JSONSerialization.jsonObject(with: chatBody) as? [String: Any])
        #expect(chatAnswer["object"] as? String == "chat.completion")
        #expect(chatAnswer["model"] as? String == "amazon.nova-micro-v1:0")
        let chatChoice = try #require((chatAnswer["choices"] as? [[String: Any]])?.first)
        let message = try #require(chatChoice["message"] as? [String: Any])
        #expect(message["role"] as? String == "assistant")
        #expect(message["content"] is String)
        #expect(["length", "stop"].contains(chatChoice["finish_reason"] as? String))
        let chatUsage = try #require(chatAnswer["usage"] as? [String: Int])
        #expect(chatUsage["prompt_tokens"] == 2)
        #expect((chatUsage["completion_tokens"] ?? 99) <= 6)
        #expect(process.stderr.contains("chat completion with 1 image(s) (8 bytes, image/png)"), "\(process.stderr)")
        for bad in [
            #"{"messages":[]}"#, #"{"messages":[{"content":"x"}]}"#, #"{"messages":[{"role":"user","content":[{"type":"audio"}]}]}"#,
            #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}]}]}"#,
            #"{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":-2}"#,
        ] {
            let (errorBody, errorStatus) = try await http("POST", "\(base)/v1/chat/completions", body: bad)
            #expect(errorStatus == 400, "\(bad)")
            let error = try #require((try JSONSerialization.jsonObject(with: errorBody) as? [String: Any])?["error"] as? [String: Any])
            #expect(error["message"] is String && error["type"] as? String == "invalid_request_error")
        }

        // 5. SIGTERM: a clean exit.
        process.signal(SIGTERM)
        #expect(try process.waitForExit(timeout: 10) == 0)
        #expect(process.stdout.isEmpty)
    }
}

func http(_ method: String, _ url: String, body: String? = nil) async throws -> (Data, Int) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 10
    if let body {
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
}
