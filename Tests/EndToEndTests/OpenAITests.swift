import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// berthd's OpenAI routes as OpenAI's own clients call them: `Tests/openai/suite.py` drives the
/// official `openai` package (from `.build/venv`, made by `scripts/install-deps.sh`) against one
/// daemon, over the control socket and over `[openai] listen` with API keys. The daemon, its
/// reservations, a custom model and the keys are made here with the real CLI.
@Suite("OpenAI routes", .serialized)
struct OpenAITests {
    static let model = "amazon.nova-micro-v1:0"

    /// One daemon for the suite's checks: what it needs is slow to make (a fine-tuned model).
    final class Fixture: @unchecked Sendable {
        let daemon: TemporaryDaemon
        let port: Int
        let markers: TemporaryDirectory
        var keys: [String: String] = [:]

        init() throws {
            port = try freePort()
            markers = try TemporaryDirectory(prefix: "berth-openai-markers")
            chmod(markers.path, 0o777)
            var config = TemporaryDaemon.config(
                extra: """

                    [openai]
                    listen = "127.0.0.1:\(port)"

                    # Served by Tests/openai/serve.py itself: a slow stream to leave in the middle.
                    [[models]]
                    id = "test.slow-v1"
                    provider = "Test"
                    input_modalities = ["text"]
                    output_modalities = ["text"]
                    max_tokens = 4096
                    on_demand = false
                    units_per_model_unit = 1
                    tokens_per_minute = 1000000
                    [models.price]
                    model_unit_hour = 1.0

                    """
            )
            let serve = #"serve = ["berth-runner", "serve""#
            precondition(config.contains(serve))
            config = config.replacingOccurrences(
                of: serve,
                with:
                    #"serve = ["/usr/bin/python3", "\#(OpenAIValidatorPaths.repository)/Tests/openai/serve.py", "\#(markers.path)", "\#(Products.path("berth-runner"))", "serve""#
            )
            daemon = try TemporaryDaemon(config: config)
            try daemon.start()
        }

        func cli(_ arguments: [String], as user: TestUser? = nil) throws -> CommandResult {
            try daemon.cli(arguments, as: user)
        }

        deinit { markers.remove() }
    }

    @Test(
        "the official openai SDK over the socket and over TCP with API keys: completions, chat, streaming, refusals, throttling, keys, a client leaving mid-stream"
    )
    func officialSDK() throws {
        let python = OpenAIValidatorPaths.python
        try #require(FileManager.default.isExecutableFile(atPath: python), "no \(python): run scripts/install-deps.sh (make deps)")
        let fixture = try Fixture()

        // Reservations: root's, two tiny budgets to burst, a slow stream to leave, and nobody's own.
        for (name, model) in [("demo-serve", Self.model), ("tiny-socket", "test.tiny-v1"), ("tiny-tcp", "test.tiny-v1"), ("slow", "test.slow-v1")] {
            let reserved = try fixture.cli(["reserve", name, "--model", model, "--units", "1", "--purpose", "inference"])
            #expect(reserved.status == 0, "\(reserved)")
        }
        let theirs = try fixture.cli(["reserve", "theirs", "--model", Self.model, "--units", "1", "--purpose", "inference"], as: .nobody)
        #expect(theirs.status == 0, "\(theirs)")

        // A custom model: fine-tuned here, so that calling it on demand is refused with advice.
        #expect(try fixture.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let submitted = try fixture.cli([
            "submit", "ft", "--reservation", "train", "--kind", "fine-tuning", "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
            "--output", fixture.daemon.directory.file("custom"), "--model-name", "nova-harbour", "--epochs", "1",
        ])
        #expect(submitted.status == 0, "\(submitted)")
        #expect(try eventually(timeout: 60) { try fixture.daemon.jobView(1).status == "completed" })

        // Keys: root's, nobody's, and one made and revoked.
        func createKey(_ name: String, as user: TestUser? = nil) throws -> String {
            let made = try fixture.cli(["api-key", "create", name], as: user)
            #expect(made.status == 0, "\(made)")
            return made.stdout.split(separator: "\n").first.map(String.init) ?? ""
        }
        let rootKey = try createKey("laptop")
        let nobodyKey = try createKey("scripts", as: .nobody)
        let revokedKey = try createKey("old")
        #expect(try fixture.cli(["api-key", "revoke", "old"]).status == 0)
        #expect(rootKey.hasPrefix("berth_") && rootKey.count > 70, "\(rootKey)")

        let setup: [String: Any] = [
            "socket": fixture.daemon.socket,
            "tcp": "http://127.0.0.1:\(fixture.port)",
            "ledger": fixture.daemon.database,
            "reservation": "demo-serve",
            "nobody_reservation": "theirs",
            "custom_model": "nova-harbour",
            "tiny": ["socket": "tiny-socket", "tcp": "tiny-tcp"],
            "slow": "slow",
            "keys": ["root": rootKey, "nobody": nobodyKey, "revoked": revokedKey],
        ]
        let setupFile = fixture.daemon.directory.file("openai-setup.json")
        try JSONSerialization.data(withJSONObject: setup).write(to: URL(fileURLWithPath: setupFile))
        let run = try Products.run(python, [OpenAIValidatorPaths.repository + "/Tests/openai/suite.py", setupFile], timeout: 240)
        #expect(run.status == 0, "\(run.stderr)")

        var seen: Set<String> = []
        for line in run.stdout.split(separator: "\n") {
            guard let result = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            let name = "\(result["check"] as? String ?? "?") (\(result["transport"] as? String ?? "?"))"
            seen.insert(name)
            #expect(result["ok"] as? Bool == true, "\(name): \(result["detail"] as? String ?? "")")
        }
        let expected =
            [
                "completion and chat completion", "streamed chat completion", "a stream is the whole answer a token at a time",
                "custom model on demand", "burst over budget",
                "client leaves mid-stream", "models", "image to a text-only model",
            ].flatMap { ["\($0) (socket)", "\($0) (tcp)"] }
            + ["only the OpenAI routes (tcp)", "revoked key (tcp)", "wrong keys (tcp)", "another user's key (tcp)"]
        #expect(seen == Set(expected), "checks that did not report: \(Set(expected).subtracting(seen)); stderr: \(run.stderr)")

        // The serve process saw each client that left: berthd closed its request too.
        let cancelled = (try? FileManager.default.contentsOfDirectory(atPath: fixture.markers.path))?.filter { $0.hasPrefix("cancelled-") } ?? []
        #expect(cancelled.count >= 2, "serve.py saw \(cancelled.count) cancelled requests")

        // Every refused key was counted.
        let metrics = try Products.run("/usr/bin/curl", ["-sS", "--unix-socket", fixture.daemon.socket, "http://localhost/metrics"])
        let refusals = metrics.stdout.split(separator: "\n").first { $0.hasPrefix("berth_openai_unauthorized_total ") }
        #expect(refusals.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 >= 4 } == true, "\(refusals ?? "no series")")

        // Keys are listed without the key itself, with their last use; revoked ones are gone.
        let listed = try fixture.daemon.view(APIKeyList.self, ["api-key", "list"])
        let keys = listed.apiKeys
        #expect(Set(keys.map(\.name)) == ["laptop", "scripts"], "\(listed)")
        #expect(keys.allSatisfy { $0.key == nil })
        #expect(keys.first { $0.name == "laptop" }?.lastUsedAt != nil, "\(listed)")
        let mine = try fixture.daemon.view(APIKeyList.self, ["api-key", "list"], as: .nobody)
        #expect(mine.apiKeys.map(\.name) == ["scripts"], "\(mine)")
        #expect(try fixture.cli(["api-key", "revoke", "laptop"], as: .nobody).status == 3)

        // docs/openai.md's examples, as written there but for the socket's path and the port.
        try runDocsExamples(fixture, key: rootKey)

        // berth invoke --stream prints the text while the call is still under way, then how it was served.
        let streaming = try RunningProcess(
            Products.path("berth"),
            ["--socket", fixture.daemon.socket, "invoke", "slow", "--prompt", "count", "--max-tokens", "40", "--stream"],
            in: fixture.daemon.directory
        )
        defer { streaming.kill() }
        try streaming.waitForOutput(timeout: 30) { $0.contains(" tick") }
        #expect(streaming.isRunning, "the first token came only with the end: \(streaming.stdout)")
        #expect(try streaming.waitForExit(timeout: 60) == 0, "\(streaming.stderr)")
        #expect(streaming.stdout.contains("served by provisioned (reservation 'slow', model test.slow-v1): "), "\(streaming.stdout)")
        #expect(streaming.stdout.contains(", 40 out tokens,"), "\(streaming.stdout)")
        let refused = try fixture.cli(["invoke", "nova-harbour", "--prompt", "x", "--stream"])
        #expect(refused.status == 4 && refused.stderr.hasPrefix("berth: on-demand-not-supported: "), "\(refused)")
    }

    /// Runs every `python` and `sh` block of docs/openai.md against the fixture's daemon.
    func runDocsExamples(_ fixture: Fixture, key: String) throws {
        let manual = try String(contentsOfFile: OpenAIValidatorPaths.repository + "/docs/openai.md", encoding: .utf8)
        var blocks: [(language: String, code: String)] = []
        var current: (language: String, lines: [String])?
        for line in manual.components(separatedBy: "\n") {
            if let open = current {
                if line == "```" {
                    blocks.append((open.language, open.lines.joined(separator: "\n")))
                    current = nil
                } else {
                    current?.lines.append(line)
                }
            } else if line.hasPrefix("```") {
                current = (String(line.dropFirst(3)), [])
            }
        }
        let runnable = blocks.filter { ["python", "sh"].contains($0.language) }
        #expect(runnable.filter { $0.language == "python" }.count >= 4 && runnable.contains { $0.language == "sh" }, "\(blocks.map(\.language))")
        for (index, block) in runnable.enumerated() {
            let code = block.code
                .replacingOccurrences(of: "/run/berth/berthd.sock", with: fixture.daemon.socket)
                .replacingOccurrences(of: "127.0.0.1:8400", with: "127.0.0.1:\(fixture.port)")
            let file = fixture.daemon.directory.file("example-\(index).\(block.language == "python" ? "py" : "sh")")
            try code.write(toFile: file, atomically: true, encoding: .utf8)
            let program = block.language == "python" ? OpenAIValidatorPaths.python : "/bin/sh"
            let result = try Products.run(program, block.language == "sh" ? ["-e", file] : [file], environment: ["BERTH_API_KEY": key], timeout: 60)
            #expect(result.status == 0 && !result.stdout.isEmpty, "docs/openai.md example \(index + 1) (\(block.language)):\n\(code)\n\(result)")
            #expect(!result.stdout.contains("\"error\""), "docs/openai.md example \(index + 1): \(result.stdout)")
        }
    }

    @Test("a taken [openai] listen address stops berthd, and a host name is refused by check-config, both naming openai.listen")
    func listenerConfig() throws {
        let taken = try freePort()
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(taken).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(socket, 1) == 0)
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[openai]\nlisten = \"127.0.0.1:\(taken)\"\n"))
        try daemon.launch()
        #expect(eventually(timeout: 30) { !daemon.isRunning })
        #expect(daemon.log.contains("openai.listen"), "\(daemon.log)")

        let checked = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[openai]\nlisten = \"localhost:8400\"\n"))
        let result = try Products.run(Products.path("berthd"), ["check-config", "--config", checked.configPath])
        #expect(result.status != 0 && result.stderr.contains("openai.listen"), "\(result)")
    }
}

/// Where the repository and its test Python are, as `OpenAPIValidator` finds them.
enum OpenAIValidatorPaths {
    static var repository: String { OpenAPIValidator.repository }
    static var python: String { OpenAPIValidator.python }
}
