import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// Real-time calls through the real daemon, the CLI and the reference runner's serve processes.
/// The refusals made before a serve process is asked are checked in-process (InvocationRouteTests).
@Suite("Inference end to end", .serialized)
struct InferenceTests {
    static let model = "amazon.nova-micro-v1:0"

    func invocations(_ daemon: TemporaryDaemon, _ reservation: String) throws -> InvocationCountsView? {
        try daemon.reservation(reservation).invocations
    }

    /// `berth --json compare`'s document: each side's answer as berthd sent it.
    struct Comparison: Decodable {
        var results: [InvokeResponse]
    }

    /// Calls `reservation` until a call works or `seconds` pass; whether one did.
    func callsWorkAgain(_ daemon: TemporaryDaemon, _ reservation: String, within seconds: TimeInterval = 20) throws -> Bool {
        try eventually(timeout: seconds, every: 0.2) {
            try daemon.cli(["invoke", reservation, "--prompt", "hello again", "--max-tokens", "4"]).status == 0
        }
    }

    @Test("fine-tune, then: the custom model is refused on demand, served through an inference reservation, and metered")
    func customModelFlow() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let submitted = try daemon.cli([
            "submit", "ft", "--reservation", "train", "--kind", "fine-tuning", "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
            "--output", daemon.directory.file("custom"), "--model-name", "nova-harbour", "--epochs", "1",
        ])
        #expect(submitted.status == 0, "\(submitted)")
        let trained = try await daemon.jobView(1, reaching: ["completed", "failed"])
        #expect(trained.status == "completed")

        let direct = try daemon.cli(["invoke", "nova-harbour", "--prompt", "what does the ledger keep"])
        #expect(direct.status == 4)
        #expect(direct.stderr.hasPrefix("berth: on-demand-not-supported: "))
        #expect(direct.stderr.contains("berth reserve"))
        #expect(direct.stderr.contains("--purpose inference"))

        // Made from root's data, the model is root's (and admins'): to anyone else it does not exist.
        let listed = try daemon.cli(["models", "--json"], as: .nobody)
        #expect(listed.status == 0 && listed.stdout.contains(Self.model) && !listed.stdout.contains("nova-harbour"), "\(listed)")
        #expect(try daemon.cli(["models", "nova-harbour"], as: .nobody).status == 3)
        let theirs = try daemon.cli(["reserve", "theirs", "--model", "nova-harbour", "--units", "1", "--purpose", "inference"], as: .nobody)
        #expect(theirs.status == 3, "\(theirs)")
        #expect(theirs.stderr.contains("no model 'nova-harbour'"), "\(theirs)")
        #expect(try daemon.cli(["invoke", "nova-harbour", "--prompt", "what does the ledger keep"], as: .nobody).status == 3)
        #expect(try daemon.view(ModelList.self, ["models"]).models.contains { $0.id == "nova-harbour" })

        #expect(try daemon.cli(["reserve", "harbour", "--model", "nova-harbour", "--units", "1", "--purpose", "inference"]).status == 0)
        let answer = try daemon.view(InvokeResponse.self, ["invoke", "harbour", "--prompt", "what does the ledger keep", "--max-tokens", "12"])
        #expect(answer.servedBy == "provisioned")
        #expect(answer.model == "nova-harbour")
        #expect(answer.outputTokens > 0)
        #expect(answer.inputTokens > 0)
        #expect(answer.latencyMs > 0)
        let metered = try invocations(daemon, "harbour")
        #expect(metered?.served == 1)
        #expect(metered?.outputTokens == answer.outputTokens)
    }

    @Test("an inference reservation is reported active only once its serve process answers")
    func activeOnceServing() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let reserved = try daemon.view(ReservationView.self, ["reserve", "ready", "--model", Self.model, "--units", "1", "--purpose", "inference"])
        #expect(reserved.status == "active")
        #expect(reserved.servePort != nil)
    }

    @Test("a serve process answers berthd only: a call to its port without its token is refused 401; /health stays open")
    func serveWantsItsToken() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let reserved = try daemon.view(ReservationView.self, ["reserve", "mine", "--model", Self.model, "--units", "1", "--purpose", "inference"])
        let direct = SocketClient(loopbackPort: try #require(reserved.servePort))
        let body = Data(#"{"model":"m","prompt":"the cat sat on the","max_tokens":4}"#.utf8)
        for headers in [[("Content-Type", "application/json")], [("Content-Type", "application/json"), ("Authorization", "Bearer 0123abcd")]] {
            let refused = try await direct.send(method: "POST", path: "/v1/completions", body: body, headers: headers)
            #expect(refused.status == 401)
            #expect(String(decoding: refused.body, as: UTF8.self).contains("authentication_error"))
        }
        #expect(try await direct.send(method: "GET", path: "/health").status == 200)
        // berthd's own calls carry it.
        let answer = try daemon.cli(["invoke", "mine", "--prompt", "the cat sat on the", "--max-tokens", "4"])
        #expect(answer.status == 0, "\(answer)")
    }

    @Test("an inference reservation whose serve process never answers is failed, with the reason")
    func serveNeverAnswers() throws {
        let scripts = try TemporaryDirectory(prefix: "berth-serve")
        defer { scripts.remove() }
        let broken = scripts.file("broken-serve.sh")
        try "#!/bin/sh\necho 'cannot load the model' >&2\nexit 1\n".write(toFile: broken, atomically: true, encoding: .utf8)
        chmod(broken, 0o755)
        let config = TemporaryDaemon.config().replacingOccurrences(
            of: #"serve = ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}", "--model-id", "{model}"]"#,
            with: #"serve = ["\#(broken)", "{port}"]"#
        )
        let daemon = try TemporaryDaemon(config: config)
        try daemon.start()
        let reserved = try daemon.view(ReservationView.self, ["reserve", "doomed", "--model", Self.model, "--units", "1", "--purpose", "inference"])
        #expect(reserved.status == "failed")
        #expect(reserved.statusReason?.contains("serve process") == true)
        #expect(try daemon.units().allSatisfy { $0.holder == nil })
    }

    @Test("an image to a model that takes images reaches its serve process as a data: URL in a chat completion")
    func imageToImageModel() throws {
        let vision = """

            [[models]]
            id = "test.vision-v1"
            provider = "Test"
            input_modalities = ["text", "image"]
            output_modalities = ["text"]
            max_tokens = 4096
            on_demand = true
            units_per_model_unit = 1
            tokens_per_minute = 6000
            [models.price]
            model_unit_hour = 1.0
            on_demand_input_per_1k = 0.001
            on_demand_output_per_1k = 0.002

            """
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: vision))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "eyes", "--model", "test.vision-v1", "--units", "1", "--purpose", "inference"]).status == 0)
        let image = daemon.directory.file("harbour.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 7, count: 92)).write(to: URL(fileURLWithPath: image))

        let answer = try daemon.view(
            InvokeResponse.self,
            ["invoke", "eyes", "--prompt", "describe the harbour", "--image", image, "--max-tokens", "8"]
        )
        #expect(answer.servedBy == "provisioned")
        #expect(answer.inputTokens == 3)
        #expect((1...8).contains(answer.outputTokens), "\(answer)")
        #expect(!answer.output.isEmpty)
        let serveLog = (try? String(contentsOfFile: daemon.directory.file("logs/serve/reservation-1.log"), encoding: .utf8)) ?? ""
        #expect(serveLog.contains("chat completion with 1 image(s) (100 bytes, image/png)"), "\(serveLog)")

        // The same reservation without an image: a text completion, as before.
        #expect(try daemon.cli(["invoke", "eyes", "--prompt", "and now in words", "--max-tokens", "4"]).status == 0)
        #expect(try invocations(daemon, "eyes")?.served == 2)

        // A file that is no image the servers take is refused before it reaches the model.
        let notImage = daemon.directory.file("notes.txt")
        try "the harbour at dawn".write(toFile: notImage, atomically: true, encoding: .utf8)
        let refused = try daemon.cli(["invoke", "eyes", "--prompt", "describe this", "--image", notImage])
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr.hasPrefix("berth: invalid-argument: "), "\(refused)")
        #expect(refused.stderr.contains("is not a PNG, JPEG, GIF or WebP image"), "\(refused)")
        #expect(try invocations(daemon, "eyes")?.served == 2)
    }

    @Test("a burst over the budget gets exit 5 with a retry-after, and the throttle count rises")
    func throttles() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        // A budget of 60 tokens a minute: a 40-word prompt with 10 more tokens fits once; the
        // prompt is charged whatever the model answers, so the second call does not fit.
        #expect(try daemon.cli(["reserve", "small", "--model", "test.tiny-v1", "--units", "1", "--purpose", "inference"]).status == 0)
        let prompt = Array(repeating: "word", count: 40).joined(separator: " ")
        let first = try daemon.cli(["invoke", "small", "--prompt", prompt, "--max-tokens", "10"])
        #expect(first.status == 0, "\(first)")
        let throttled = try daemon.cli(["invoke", "small", "--prompt", prompt, "--max-tokens", "10"])
        #expect(throttled.status == 5)
        #expect(throttled.stderr.hasPrefix("berth: throttled: "))
        #expect(throttled.stderr.contains("retry after"))
        let counts = try invocations(daemon, "small")
        #expect((counts?.throttled ?? 0) >= 1)
        #expect(counts?.served == 1)
    }

    @Test("with --spillover on a base model, the burst over budget is served on demand")
    func spillover() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "spill", "--model", "test.tiny-v1", "--units", "1", "--purpose", "inference", "--spillover"]).status == 0)
        let prompt = Array(repeating: "word", count: 40).joined(separator: " ")
        var tiers: [String] = []
        for _ in 0..<3 {
            tiers.append(try daemon.view(InvokeResponse.self, ["invoke", "spill", "--prompt", prompt, "--max-tokens", "10"]).servedBy)
        }
        #expect(tiers == ["provisioned", "on-demand", "on-demand"])
        #expect(try invocations(daemon, "spill")?.throttled == 0)
        // A custom model can never spill over: refused at reserve.
        let custom = try daemon.cli([
            "reserve", "x", "--model", "meta.llama3-8b-instruct-v1:0", "--units", "1", "--purpose", "training", "--spillover",
        ])
        #expect(custom.status == 2)
    }

    @Test("kill the serve process and the next calls work again after its restart, which is counted")
    func serveRestarts() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "sturdy", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        #expect(try daemon.cli(["invoke", "sturdy", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
        let pids = daemon.servePIDs()
        #expect(pids.count == 1)
        for pid in pids { kill(pid, SIGKILL) }
        #expect(try callsWorkAgain(daemon, "sturdy"))
        #expect((try daemon.reservation("sturdy").serveRestarts ?? 0) >= 1)

        // A second crash soon after the restart is one of a run: it backs off longer (1 s), and
        // calls work again after it.
        for pid in daemon.servePIDs() { kill(pid, SIGKILL) }
        #expect(try callsWorkAgain(daemon, "sturdy"))
        #expect((try daemon.reservation("sturdy").serveRestarts ?? 0) >= 2)
        let backoffs = daemon.log.split(separator: "\n").filter { $0.contains("restarting after a backoff") }
        #expect(backoffs.contains { $0.contains("failures=1") && $0.contains("backoff=0.5 seconds") }, "\(backoffs)")
        #expect(backoffs.contains { $0.contains("failures=2") && $0.contains("backoff=1.0 seconds") }, "\(backoffs)")
    }

    @Test("a serve process that is up but stops answering is killed after three failed health checks and started again")
    func wedgedServeRestarts() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "wedged", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        #expect(try daemon.cli(["invoke", "wedged", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
        let pids = daemon.servePIDs()
        #expect(pids.count == 1)
        // Stopped, it keeps its port and takes connections, but answers nothing.
        for pid in pids { kill(pid, SIGSTOP) }
        // Calls are tried once it is gone (one sent to it before would wait until then).
        _ = eventually(timeout: 45, every: 0.5) { !daemon.servePIDs().contains(where: pids.contains) }
        #expect(try callsWorkAgain(daemon, "wedged"), "\(daemon.log)")
        #expect((try daemon.reservation("wedged").serveRestarts ?? 0) == 1)
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.filter { $0.contains("serve process failed a health check") }.count >= 2, "\(daemon.log)")
        #expect(lines.contains { $0.contains("stopped answering its health checks") }, "\(daemon.log)")
        for pid in pids { kill(pid, SIGKILL) }
    }

    @Test("adding units to an active inference reservation gives its serve process the new units")
    func updateRestartsServe() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "grow", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        #expect(try daemon.cli(["invoke", "grow", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
        #expect(try daemon.cli(["update", "grow", "--units", "2"]).status == 0)
        func serveUnits() -> [String] {
            daemon.servePIDs().compactMap { pid in
                FileManager.default.contents(atPath: "/proc/\(pid)/environ")?.split(separator: 0)
                    .map { String(decoding: $0, as: UTF8.self) }.first { $0.hasPrefix("BERTH_UNITS=") }
            }
        }
        // One read per check: the process may be swapped between two reads of /proc.
        _ = eventually(timeout: 15) {
            let units = serveUnits()
            return units.count == 1 && units[0].contains(",")
        }
        #expect(serveUnits().count == 1)
        #expect(serveUnits().first?.split(separator: ",").count == 2)
        #expect(try daemon.cli(["invoke", "grow", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
    }

    @Test("calls answered just before a clean stop are in the ledger after it; releasing stops the serve process")
    func meteringSurvivesStop() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "brief", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        for _ in 0..<3 { #expect(try daemon.cli(["invoke", "brief", "--prompt", "hello", "--max-tokens", "4"]).status == 0) }
        #expect(daemon.stop() == 0)
        try daemon.start()
        #expect(try invocations(daemon, "brief")?.served == 3)
        // After the restart the serve process is started again; release stops it.
        #expect(try daemon.cli(["invoke", "brief", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
        #expect(try daemon.cli(["release", "brief"]).status == 0)
        #expect(eventually(timeout: 10) { daemon.servePIDs().isEmpty })
        let gone = try daemon.cli(["invoke", "brief", "--prompt", "hello"])
        #expect(gone.status == 4)
    }

    @Test("berth compare puts a reservation and an on-demand model side by side, and both calls are metered")
    func compare() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "side", "--model", "test.tiny-v1", "--units", "1", "--purpose", "inference"]).status == 0)
        let prompt = "the harbour keeps"

        let results = try daemon.view(Comparison.self, ["compare", "side", "test.tiny-v1", "--prompt", prompt, "--max-tokens", "8"]).results
        try #require(results.count == 2)
        let provisioned = results[0]
        let onDemand = results[1]
        #expect(provisioned.target == "side")
        #expect(provisioned.servedBy == "provisioned")
        #expect(provisioned.reservation == "side")
        #expect(provisioned.cost == 0)
        #expect(onDemand.target == "test.tiny-v1")
        #expect(onDemand.servedBy == "on-demand")
        for answer in results {
            #expect(answer.inputTokens == 3, "\(answer)")
            #expect((1...8).contains(answer.outputTokens), "\(answer)")
            #expect(!answer.output.isEmpty)
            #expect(answer.latencyMs > 0)
        }
        // On demand, priced per 1,000 tokens: 0.001 in and 0.002 out in the test config.
        let expected = 3.0 / 1000 * 0.001 + Double(onDemand.outputTokens) / 1000 * 0.002
        #expect(abs(onDemand.cost - expected) < 1e-12, "\(onDemand)")

        // The table: a column per target, a row per field.
        let table = try daemon.cli(["compare", "side", "test.tiny-v1", "--prompt", prompt, "--max-tokens", "8"])
        #expect(table.status == 0, "\(table)")
        let rows = table.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first?.split(separator: " ", omittingEmptySubsequences: true) == ["side", "test.tiny-v1"], "\(table.stdout)")
        func cells(_ label: String) -> [String] {
            guard let row = rows.first(where: { $0.hasPrefix(label + "  ") }) else { return [] }
            return row.dropFirst(label.count).split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        #expect(cells("served by") == ["provisioned (side)", "on-demand"], "\(table.stdout)")
        #expect(cells("model") == ["test.tiny-v1", "test.tiny-v1"], "\(table.stdout)")
        #expect(cells("input tokens") == ["3", "3"], "\(table.stdout)")
        #expect(cells("latency").count == 2 && cells("latency").allSatisfy { $0.hasSuffix(" ms") }, "\(table.stdout)")
        #expect(cells("cost").first == "0", "\(table.stdout)")
        #expect(rows.contains { $0.hasPrefix("output ") }, "\(table.stdout)")

        // Two compares, two calls each: the reservation's side is in its own counts.
        #expect(try invocations(daemon, "side")?.served == 2)

        // One side refused: its column says why, the other is still answered, and berth exits
        // with the refused call's status; with both refused, the higher of the two.
        let oneRefused = try daemon.cli(["compare", "side", "no-such-target", "--prompt", prompt, "--max-tokens", "8"])
        #expect(oneRefused.status == 3, "\(oneRefused)")
        #expect(oneRefused.stdout.contains("not-found"), "\(oneRefused)")
        #expect(oneRefused.stdout.contains("provisioned (side)"), "\(oneRefused)")
        #expect(oneRefused.stderr.hasPrefix("berth: not-found: 'no-such-target': "), "\(oneRefused)")
        #expect(try invocations(daemon, "side")?.served == 3)
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let bothRefused = try daemon.cli(["compare", "no-such-target", "train", "--prompt", prompt])
        #expect(bothRefused.status == 4, "\(bothRefused)")
        #expect(bothRefused.stderr.contains("berth: not-found: 'no-such-target': "), "\(bothRefused)")
        #expect(bothRefused.stderr.contains("berth: invalid-state: 'train': "), "\(bothRefused)")
    }

    @Test("an inference reservation that reaches its end is expired and its serve process stopped")
    func expiryStopsServe() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(
            try daemon.cli(["reserve", "short", "--model", Self.model, "--units", "1", "--purpose", "inference", "--duration", "3s"]).status == 0
        )
        #expect(try daemon.cli(["invoke", "short", "--prompt", "hello", "--max-tokens", "4"]).status == 0)
        #expect(daemon.servePIDs().count == 1)
        var status = ""
        _ = try eventually(timeout: 20, every: 0.2) {
            status = try daemon.reservation("short").status
            return status == "expired" && daemon.servePIDs().isEmpty
        }
        #expect(status == "expired")
        #expect(daemon.servePIDs().isEmpty)
        let late = try daemon.cli(["invoke", "short", "--prompt", "hello"])
        #expect(late.status == 4 && late.stderr.contains("is expired"), "\(late)")
    }

    @Test("first on-demand calls that arrive together start one serve process, and a clean stop stops it")
    func oneOnDemandServer() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let client = SocketClient(socketPath: daemon.socket)
        let body = try Wire.encoder().encode(InvokeRequest(target: Self.model, prompt: "hello", maxTokens: 4))
        let answers = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<12 {
                group.addTask { (try? await client.send(method: "POST", path: "/v1/invoke", body: body).status) ?? 0 }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(answers.allSatisfy { $0 == 200 }, "\(answers)")
        let onDemand = { () -> [Int32] in
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
                let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return variables.contains { $0.hasPrefix("BERTH_SERVE=on-demand-") } && variables.contains("BERTH_LEDGER=\(daemon.database)")
            }
        }
        #expect(onDemand().count == 1)
        #expect(daemon.stop() == 0)
        #expect(eventually(timeout: 10) { onDemand().isEmpty }, "serve processes outlived a clean stop")
    }
}
