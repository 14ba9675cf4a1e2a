import BerthExecutors
public import Foundation

/// What a run of a program printed and how it ended.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A user to run the CLI as, other than the test's own (root): the kernel reports its uid to
/// the daemon through SO_PEERCRED. Its gid is `nogroup`, the socket's group in the tests.
public struct TestUser: Sendable {
    public var uid: UInt32
    public var name: String
    public static let nobody = TestUser(uid: 65534, name: "nobody")
    /// A uid with no password entry: the daemon names it by number.
    public static let stranger = TestUser(uid: 4242, name: "4242")
}

/// The built executables, next to the test bundle in the build folder.
public enum Products {
    public static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    public static func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// Runs a program to completion; output goes through files so a chatty one never blocks.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: TimeInterval = 60
    ) throws -> CommandResult {
        let dir = try TemporaryDirectory(prefix: "berth-run")
        defer { dir.remove() }
        _ = FileManager.default.createFile(atPath: dir.file("out"), contents: nil)
        _ = FileManager.default.createFile(atPath: dir.file("err"), contents: nil)
        let process = try Launch.start(
            executable,
            arguments,
            environment: environment,
            stdout: try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("out"))),
            stderr: try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("err")))
        )
        _ = eventually(timeout: timeout, every: 0.005) { !process.isRunning }
        if process.isRunning { process.signal(SIGTERM) }
        let status = process.wait()
        return CommandResult(
            status: status,
            stdout: (try? String(contentsOfFile: dir.file("out"), encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: dir.file("err"), encoding: .utf8)) ?? ""
        )
    }
}

/// A real `berthd` on a temporary socket and database, started from the built executable.
public final class TemporaryDaemon: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public var socket: String { directory.file("berthd.sock") }
    /// `berth.db` in `directory`, unless the test put it elsewhere (on a file system of its own).
    public let database: String
    public var configPath: String { directory.file("berthd.toml") }
    public var logPath: String { directory.file("berthd.log") }
    private var process: ChildProcess?
    /// The user berthd runs as; `nil` is the test's own (root). The daemon's folder is theirs.
    public let user: TestUser?
    let environment: [String: String]

    /// A laptop-sized pool: `dedicated` CPU units, two shared, and two models.
    /// `runner`, when given, is the train and batch argv instead of the reference runner.
    public static func config(dedicated: Int = 8, runner: [String]? = nil, serve: [String]? = nil, extra: String = "") -> String {
        var toml = """
            [daemon]
            socket_group = "nogroup"
            admins = []
            log_level = "debug"
            log_directory = "logs"
            stop_grace_seconds = 2

            """
        for i in 0..<dedicated {
            toml += "\n[[units]]\nid = \"cpu-\(i)\"\nkind = \"cpu\"\ndevice = \(i)\npool = \"dedicated\"\n"
        }
        toml += """

            [[units]]
            id = "cpu-shared-0"
            kind = "cpu"
            pool = "shared"

            [[units]]
            id = "cpu-shared-1"
            kind = "cpu"
            pool = "shared"

            [[models]]
            id = "amazon.nova-micro-v1:0"
            provider = "Amazon"
            input_modalities = ["text"]
            output_modalities = ["text"]
            max_tokens = 128000
            on_demand = true
            customizations = ["fine-tuning", "distillation"]
            units_per_model_unit = 1
            tokens_per_minute = 20000
            [models.price]
            model_unit_hour = 20.0
            model_unit_hour_1m = 16.0
            model_unit_hour_6m = 12.0
            on_demand_input_per_1k = 0.000035
            on_demand_output_per_1k = 0.00014

            [[models]]
            id = "meta.llama3-8b-instruct-v1:0"
            provider = "Meta"
            input_modalities = ["text"]
            output_modalities = ["text"]
            max_tokens = 8192
            on_demand = true
            customizations = ["fine-tuning", "continued-pretraining"]
            units_per_model_unit = 2
            tokens_per_minute = 12000
            [models.price]
            model_unit_hour = 24.0
            model_unit_hour_1m = 20.0
            model_unit_hour_6m = 15.0
            on_demand_input_per_1k = 0.0003
            on_demand_output_per_1k = 0.0006

            # A model with a tiny budget (one token a second), for throttling tests.
            [[models]]
            id = "test.tiny-v1"
            provider = "Test"
            input_modalities = ["text"]
            output_modalities = ["text"]
            max_tokens = 4096
            on_demand = true
            units_per_model_unit = 1
            tokens_per_minute = 60
            [models.price]
            model_unit_hour = 1.0
            on_demand_input_per_1k = 0.001
            on_demand_output_per_1k = 0.002

            [runners]
            train = \(tomlArray(runner ?? ["berth-runner", "train", "--spec", "{spec}"]))
            batch = \(tomlArray(runner ?? ["berth-runner", "batch", "--spec", "{spec}"]))
            serve = \(tomlArray(serve ?? ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}", "--model-id", "{model}"]))
            service_user = "nobody"

            """
        return toml + extra
    }

    static func tomlArray(_ argv: [String]) -> String {
        "[" + argv.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }

    /// The repository's `examples/` folder (sample datasets).
    public static var examples: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path + "/examples") { return url.path + "/examples" }
        }
        return "examples"
    }

    /// `environment` is added to what berthd inherits: a test sets a variable for its own daemon
    /// this way, never with `setenv`, which races every other thread reading the environment.
    public init(
        config: String = TemporaryDaemon.config(),
        database: String? = nil,
        as user: TestUser? = nil,
        environment: [String: String] = [:]
    ) throws {
        directory = try TemporaryDirectory(prefix: "berthd")
        self.environment = environment
        self.database = database ?? directory.file("berth.db")
        self.user = user
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        if let user {
            chown(directory.path, user.uid, 65534)
            chmod(configPath, 0o644)
        }
    }

    /// Starts berthd and waits until its socket answers.
    public func start() throws {
        try launch()
        guard let process else { return }
        var answered = false
        _ = eventually(timeout: 30) {
            answered = (try? cli(["status"]))?.status == 0
            return answered || !process.isRunning
        }
        if answered { return }
        if !process.isRunning { throw StartFailure(log: self.log) }
        throw StartFailure(log: "berthd did not answer within 30 s\n" + self.log)
    }

    /// Starts berthd and returns at once, before it answers: for a test that kills it while it
    /// starts up.
    public func launch() throws {
        let arguments = ["--config", configPath, "--socket", socket, "--database", database]
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? log.close() }
        log.seekToEndOfFile()
        if let user {
            // setpriv execs berthd in its own place, so the pid is berthd's.
            process = try Launch.start(
                "/usr/bin/setpriv",
                ["--reuid=\(user.uid)", "--regid=65534", "--clear-groups", Products.path("berthd")] + arguments,
                environment: environment,
                stdout: log,
                stderr: log
            )
        } else {
            process = try Launch.start(Products.path("berthd"), arguments, environment: environment, stdout: log, stderr: log)
        }
    }

    public struct StartFailure: Error, CustomStringConvertible {
        public var log: String
        public var description: String { "berthd failed to start:\n\(log)" }
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var pid: Int32? { process?.pid }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// SIGTERM, then waits for the exit; returns the exit status.
    @discardableResult
    public func stop() -> Int32? {
        guard let process, process.isRunning else { return self.process?.terminationStatus }
        process.signal(SIGTERM)
        return process.wait()
    }

    /// `kill -9`: no chance to clean up.
    public func kill9() {
        guard let process, process.isRunning else { return }
        process.signal(SIGKILL)
        process.wait()
    }

    /// Runs the real `berth` CLI against this daemon, as root or as `user`.
    public func cli(_ arguments: [String], as user: TestUser? = nil) throws -> CommandResult {
        let berth = Products.path("berth")
        guard let user else {
            return try Products.run(berth, arguments, environment: ["BERTH_SOCKET": socket])
        }
        return try Products.run(
            "/usr/bin/setpriv",
            ["--reuid=\(user.uid)", "--regid=65534", "--clear-groups", berth] + arguments,
            environment: ["BERTH_SOCKET": socket]
        )
    }

    /// Pids of the serve processes this daemon started whose `BERTH_SERVE` starts with `prefix`
    /// (`reservation-` for reservations' ones, `on-demand-` for base models called on demand).
    public func servePIDs(_ prefix: String = "reservation-") -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return variables.contains { $0.hasPrefix("BERTH_SERVE=\(prefix)") } && variables.contains("BERTH_LEDGER=\(database)")
        }
    }

    /// `berth --json ...`, decoded.
    public func json(_ arguments: [String], as user: TestUser? = nil) throws -> [String: Any] {
        // `--json` after the subcommand's name, where the subcommand's options go.
        let result = try cli(Array(arguments.prefix(1)) + ["--json"] + arguments.dropFirst(), as: user)
        guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw StartFailure(log: "berth \(arguments) failed: \(result)")
        }
        return object
    }

    deinit {
        // A clean stop, so its runners and serve processes stop with it; SIGKILL if it hangs.
        if let process, process.isRunning {
            process.signal(SIGTERM)
            _ = eventually(timeout: 10, every: 0.01) { !process.isRunning }
            if process.isRunning { process.signal(SIGKILL) }
            process.wait()
        }
        directory.remove()
    }
}
