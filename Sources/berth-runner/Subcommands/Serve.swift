import ArgumentParser
import BerthNGram
import Foundation
import Hummingbird

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: OpenAI-compatible POST /v1/completions, and GET /health.",
        discussion: """
            Loads DIR/model.json, or the built-in base model named by --model-id when the folder \
            has none. Listens on HOST:PORT until SIGTERM or SIGINT, then finishes the requests in \
            flight and exits 0. Logs go to stderr. With BERTH_SERVE_TOKEN in its environment \
            (berthd sets it), every request but GET /health must carry that token as \
            "Authorization: Bearer TOKEN"; others are answered 401.
            """
    )

    @Option(help: ArgumentHelp("The model's folder (a training job's output_dir).", valueName: "dir"))
    var modelDir: String

    @Option(help: "The TCP port to listen on.")
    var port: Int

    @Option(help: "The address to listen on; keep it loopback.")
    var host = "127.0.0.1"

    @Option(
        help: ArgumentHelp(
            "The model's name in answers (else the request's model), and the built-in base model to serve when DIR has no model.json (default berth-base).",
            valueName: "id"
        )
    )
    var modelId: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
    }

    func run() async throws {
        // The server's own log lines go to stdout by default; berthd keeps stderr as the log.
        dup2(STDERR_FILENO, STDOUT_FILENO)
        let modelID = modelId ?? CompletionServer.defaultModelID
        let model: NGramModel
        let folder = URL(fileURLWithPath: modelDir)
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent(NGramModel.fileName).path) {
            do {
                model = try NGramModel.load(from: folder)
            } catch let error as ModelFileError {
                RunnerOutput.note(error.description)
                throw ExitCode(1)
            }
            RunnerOutput.note("serving \(folder.appendingPathComponent(NGramModel.fileName).path) as \(modelID) on \(host):\(port)")
        } else {
            model = NGramModel.builtInBase(modelID: modelID)
            RunnerOutput.note("no \(NGramModel.fileName) in \(modelDir): serving the built-in base model \(modelID) on \(host):\(port)")
        }
        // berthd gives each serve process a token of its own, and sends it with every call.
        let token = ProcessInfo.processInfo.environment["BERTH_SERVE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let app = buildApplication(server: CompletionServer(model: model, modelID: modelId), host: host, port: port, token: token)
        try await app.runService()
    }
}
