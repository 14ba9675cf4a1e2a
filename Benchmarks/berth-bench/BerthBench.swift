import ArgumentParser
import BerthClient
import BerthCore
import BerthWire
import Foundation
import NIOCore
import NIOPosix

/// `berth-bench`: berth's benchmarks, one subcommand each. `invoke` is the default, so
/// `berth-bench --reservation R` still runs the invocation benchmark.
@main
struct BerthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-bench",
        abstract: "berth's benchmarks: invocations, usage reports, control-plane throughput, scheduling, start-up.",
        subcommands: [InvokeBench.self, UsageBench.self, ControlBench.self, SchedulerBench.self, BigLedgerBench.self],
        defaultSubcommand: InvokeBench.self
    )
}

/// Invocation throughput and latency through berthd, next to the same calls sent straight to
/// the reservation's serve process, so the figures say what berthd adds.
struct InvokeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Measure invocation calls/s and latency through berthd and straight to the serve process.",
        discussion: """
            Sends the same prompt from many clients at once, each on its own keep-alive \
            connection and one call at a time: first straight to the serve process \
            (POST /v1/completions on 127.0.0.1:PORT, if --direct-port is given or berthd shows \
            the reservation's serve_port), then through berthd (POST /v1/invoke on the control \
            socket). Each run is preceded by an unmeasured warm-up. Reports calls/s and \
            p50/p90/p99 latency for each, and what berthd adds.

            Every call through berthd is metered and charged to the reservation's token \
            bucket: give the model a tokens_per_minute high enough that nothing is throttled \
            (Benchmarks/run-invoke-bench.sh does), or the throttled calls are counted as failures.
            """
    )

    @Option(help: ArgumentHelp("berthd's control socket (default: $BERTH_SOCKET, else /run/berth/berthd.sock).", valueName: "path"))
    var socket: String?

    @Option(help: "The inference reservation to call through.")
    var reservation: String

    @Option(
        help: ArgumentHelp(
            "The serve process's loopback port, for the direct calls (default: the reservation's serve_port, if berthd shows it).",
            valueName: "port"
        )
    )
    var directPort: Int?

    @Option(help: ArgumentHelp("The model named in direct calls (default: the reservation's model).", valueName: "id"))
    var model: String?

    @Option(
        help: ArgumentHelp(
            "The serve process's BERTH_SERVE_TOKEN, which direct calls carry as berthd's do (berth-runner serve answers none without it).",
            valueName: "token"
        )
    )
    var directToken: String?

    @Option(help: "Clients calling at once, each on its own connection.")
    var clients = 32

    @Option(help: ArgumentHelp("How long each measured run lasts.", valueName: "seconds"))
    var duration = 10.0

    @Option(help: ArgumentHelp("How long each unmeasured warm-up lasts.", valueName: "seconds"))
    var warmup = 1.0

    @Option(parsing: .unconditional, help: ArgumentHelp("The prompt every call sends.", valueName: "text"))
    var prompt = "the quick brown fox jumps over the lazy dog"

    @Option(help: "max_tokens of every call.")
    var maxTokens = 16

    @Option(help: ArgumentHelp("Event-loop threads for the clients (default: half the cores, at least 1).", valueName: "n"))
    var threads: Int?

    @Flag(help: "Print the figures as one JSON document.")
    var json = false

    @Flag(help: "Skip the direct calls even if a port is known.")
    var noDirect = false

    @Flag(help: "Call through berthd's OpenAI route (POST /openai/v1/completions) instead of POST /v1/invoke.")
    var openai = false

    func validate() throws {
        guard clients >= 1 else { throw ValidationError("--clients: must be at least 1") }
        guard duration > 0, duration.isFinite else { throw ValidationError("--duration: must be a positive number of seconds") }
        guard warmup >= 0, warmup.isFinite else { throw ValidationError("--warmup: must be 0 or more seconds") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens: must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads: must be at least 1") }
        if let directPort, !(1...65535).contains(directPort) { throw ValidationError("--direct-port: must be from 1 to 65535") }
    }

    var socketPath: String {
        if let socket, !socket.isEmpty { return socket }
        if let path = ProcessInfo.processInfo.environment["BERTH_SOCKET"], !path.isEmpty { return path }
        return "/run/berth/berthd.sock"
    }

    func run() async throws {
        do {
            try await bench()
        } catch let stop as BenchFailure {
            note(stop.description)
            throw ExitCode.failure
        }
    }

    private func bench() async throws {
        // 1. The reservation: the model the serve process is asked for, and its port if shown.
        let target = try await lookUpReservation()
        let port = noDirect ? nil : (directPort ?? target.servePort)
        let model = self.model ?? target.model

        // 2. The two calls, built once.
        let throughBerthd =
            openai
            ? CallTemplate.post(
                "/openai/v1/completions",
                json: try JSONEncoder().encode(CompletionBody(model: reservation, prompt: prompt, maxTokens: maxTokens)),
                to: .unixSocket(socketPath)
            )
            : CallTemplate.post(
                "/v1/invoke",
                json: try Wire.encoder().encode(InvokeRequest(target: reservation, prompt: prompt, maxTokens: maxTokens)),
                to: .unixSocket(socketPath)
            )
        let direct = try port.map {
            var template = CallTemplate.post(
                "/v1/completions",
                json: try JSONEncoder().encode(CompletionBody(model: model, prompt: prompt, maxTokens: maxTokens)),
                to: .loopback(port: $0)
            )
            if let directToken { template.head.headers.add(name: "Authorization", value: "Bearer \(directToken)") }
            return template
        }

        // 3. One call each first: a refusal stops here with what the server said.
        try await probe(throughBerthd, direct: direct)

        // 4. Warm up and measure, direct first: the baseline.
        let threadCount = threads ?? max(1, System.coreCount / 2)
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: threadCount)
        note(
            "\(clients) clients on \(threadCount) thread\(threadCount == 1 ? "" : "s"), \(Self.seconds(duration)) per run "
                + "after a \(Self.seconds(warmup)) warm-up; prompt '\(prompt)', max_tokens \(maxTokens)"
        )
        var runs: [RunFigures] = []
        if let direct {
            runs.append(await measure("direct", direct, on: eventLoops))
        } else if !noDirect {
            note("no direct figures: give --direct-port PORT (the serve process's port)")
        }
        runs.append(await measure("through berthd", throughBerthd, on: eventLoops))
        try await eventLoops.shutdownGracefully()

        // 5. The figures.
        let comparison = runs.count == 2 ? Overhead(direct: runs[0], berthd: runs[1]) : nil
        if json {
            let document = BenchDocument(
                reservation: reservation,
                model: model,
                clients: clients,
                threads: threadCount,
                seconds: duration,
                prompt: prompt,
                maxTokens: maxTokens,
                runs: runs,
                overhead: comparison
            )
            print(String(decoding: try Wire.encoder(pretty: true).encode(document), as: UTF8.self))
        } else {
            print(Self.report(runs, overhead: comparison))
        }
        if runs.contains(where: { $0.failures > 0 }) {
            for run in runs where run.failures > 0 {
                note("\(run.name): \(run.failures) failed calls; the first: \(run.firstFailure ?? "?")")
            }
            throw ExitCode.failure
        }
    }

    // MARK: - Steps

    /// What the bench needs to know of the reservation; `serve_port` only if berthd shows it.
    struct ReservationTarget: Decodable {
        var model: String
        var status: String
        var servePort: Int?
    }

    private func lookUpReservation() async throws -> ReservationTarget {
        let client = SocketClient(socketPath: socketPath)
        do {
            let found = try await client.request(
                ReservationTarget.self,
                method: "GET",
                path: "/v1/reservations/" + PercentEncoding.pathSegment(reservation)
            )
            guard found.status == "active" else {
                throw BenchFailure("reservation '\(reservation)' is \(found.status), not active: wait until 'berth invoke \(reservation)' works")
            }
            return found
        } catch let error as ClientError {
            throw BenchFailure("cannot look up reservation '\(reservation)': \(error)")
        }
    }

    private func probe(_ throughBerthd: CallTemplate, direct: CallTemplate?) async throws {
        do throws(ClientError) {
            let response = try await SocketClient(socketPath: socketPath).send(
                method: "POST",
                path: throughBerthd.head.uri,
                body: Data(throughBerthd.body.readableBytesView)
            )
            guard !openai else {
                guard response.status == 200 else { throw ClientError.transport(String(decoding: response.body, as: UTF8.self)) }
                note("through berthd's OpenAI route: served by \(response.header("Berth-Served-By") ?? "?")")
                return
            }
            let answer = try response.decoded(as: InvokeResponse.self)
            note(
                "through berthd: served by \(answer.servedBy)\(answer.reservation.map { " ('\($0)')" } ?? "") with \(answer.model), "
                    + "\(answer.inputTokens) in, \(answer.outputTokens) out tokens, \(String(format: "%.2f", answer.latencyMs)) ms"
            )
            if answer.servedBy != ServiceTier.provisioned.rawValue {
                note("warning: the call was not served on the reservation's units: the figures are not provisioned throughput")
            }
        } catch {
            throw BenchFailure("a call through berthd failed: \(error)")
        }
        guard let direct, case .loopback(let port) = direct.endpoint else { return }
        do throws(ClientError) {
            let response = try await SocketClient(loopbackPort: port).send(
                method: "POST",
                path: direct.head.uri,
                body: Data(direct.body.readableBytesView),
                headers: direct.head.headers.filter { $0.name == "Authorization" }.map { ($0.name, $0.value) }
            )
            guard (200..<300).contains(response.status) else {
                throw .transport("status \(response.status): \(String(decoding: response.body, as: UTF8.self))")
            }
        } catch {
            throw BenchFailure("a direct call to 127.0.0.1:\(port) failed: \(error)")
        }
    }

    private func measure(_ name: String, _ template: CallTemplate, on eventLoops: any EventLoopGroup) async -> RunFigures {
        if warmup > 0 {
            _ = await LoadRun.run(template, clients: clients, seconds: warmup, on: eventLoops)
        }
        let (tally, elapsed) = await LoadRun.run(template, clients: clients, seconds: duration, on: eventLoops)
        return RunFigures(name: name, endpoint: template.endpoint, tally: tally, seconds: elapsed)
    }

    // MARK: - Output

    static func report(_ runs: [RunFigures], overhead: Overhead?) -> String {
        var rows = [["", "calls", "calls/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "failed"]]
        for run in runs {
            rows.append([
                run.name, String(run.calls), String(format: "%.0f", run.callsPerSecond), ms(run.p50), ms(run.p90), ms(run.p99),
                ms(run.max), String(run.failures),
            ])
        }
        var lines = [align(rows)]
        if let overhead {
            lines.append(
                "berthd adds \(signed(overhead.p50Ms)) ms at p50 and \(signed(overhead.p99Ms)) ms at p99, and keeps "
                    + "\(String(format: "%.0f", overhead.throughputRatio * 100))% of the direct calls/s"
            )
            lines.append(
                "target (issue 5): under 1 ms added at p99: \(overhead.p99Ms < 1 ? "yes" : "no"); "
                    + "at least half the direct calls/s: \(overhead.throughputRatio >= 0.5 ? "yes" : "no")"
            )
        }
        return lines.joined(separator: "\n")
    }

    private static func ms(_ value: Double?) -> String {
        value.map { String(format: "%.3f", $0) } ?? "-"
    }

    private static func signed(_ value: Double) -> String {
        String(format: "%+.3f", value)
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    private static func align(_ rows: [[String]]) -> String {
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { cells in
            cells.enumerated().map { column, cell in
                // Names left, figures right.
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + pad : pad + cell
            }
            .joined(separator: "  ")
        }
        .joined(separator: "\n")
    }

    /// Progress and warnings on stderr, so `--json` output stays one document.
    private func note(_ text: String) {
        FileHandle.standardError.write(Data("berth-bench: \(text)\n".utf8))
    }
}

/// The body of a direct call, OpenAI's text-completion request, as berthd sends it.
struct CompletionBody: Encodable {
    var model: String
    var prompt: String
    var maxTokens: Int

    enum CodingKeys: String, CodingKey {
        case model, prompt
        case maxTokens = "max_tokens"
    }
}

/// What berthd adds to the direct calls.
struct Overhead: Encodable {
    var p50Ms: Double
    var p99Ms: Double
    /// Calls/s through berthd ÷ direct calls/s.
    var throughputRatio: Double

    init?(direct: RunFigures, berthd: RunFigures) {
        guard let directP50 = direct.p50, let directP99 = direct.p99, let p50 = berthd.p50, let p99 = berthd.p99,
            direct.callsPerSecond > 0
        else { return nil }
        p50Ms = p50 - directP50
        p99Ms = p99 - directP99
        throughputRatio = berthd.callsPerSecond / direct.callsPerSecond
    }
}

/// `--json`: snake_case as the API is.
struct BenchDocument: Encodable {
    var reservation: String
    var model: String
    var clients: Int
    var threads: Int
    var seconds: Double
    var prompt: String
    var maxTokens: Int
    var runs: [RunFigures]
    var overhead: Overhead?
}

/// A reason the bench cannot go on, printed as `berth-bench: <reason>` with exit status 1.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
