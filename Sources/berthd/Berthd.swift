import ArgumentParser
import BerthConfig
import BerthServer
import BerthWire
import Foundation
import Logging
import Metrics
import Prometheus

@main
struct Berthd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berthd",
        abstract: "The berth daemon: provisioned-throughput capacity on a pool of dedicated units.",
        version: BerthVersion.current,
        subcommands: [Run.self, CheckConfig.self, Backup.self, DiscoverUnits.self],
        defaultSubcommand: Run.self
    )
}

/// `berthd [--config FILE] [--socket PATH] [--database FILE]`: the daemon itself. A default
/// subcommand rather than the root's own options, so `check-config --config` is its own.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon in the foreground until SIGTERM or SIGINT; logs go to stderr."
    )

    @Option(name: .long, help: "The config file.")
    var config: String = DaemonConfig.defaultPath

    @Option(name: .long, help: "The control socket (overrides daemon.socket).")
    var socket: String?

    @Option(name: .long, help: "The SQLite ledger (overrides daemon.database).")
    var database: String?

    func run() async throws {
        let loaded: DaemonConfig
        do {
            loaded = try DaemonConfig.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("berthd: invalid config \(config):\n\(error)\n".utf8))
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: loaded.daemon.logLevel) ?? .info
        // Under systemd stderr goes to the journal, which stamps each line itself.
        let journal = StderrLogHandler.stderrIsJournal(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { label in
            var handler = StderrLogHandler(label: label, journal: journal)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "berthd")
        // One registry for GET /metrics: berthd's own series, and any a library makes through
        // swift-metrics.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let daemon = Daemon(
            config: loaded,
            socketPath: socket.map(Self.absolute),
            databasePath: database.map(Self.absolute),
            logger: logger,
            metricsRegistry: registry
        )
        do {
            try await daemon.run()
        } catch let error as Daemon.StartupError {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file, report every problem with its key path, and exit."
    )

    @Option(name: .long, help: "The config file.")
    var config: String = DaemonConfig.defaultPath

    func run() throws {
        do {
            let loaded = try DaemonConfig.load(path: config)
            print(
                "\(config): ok (\(loaded.dedicatedUnits.count) dedicated and \(loaded.sharedUnits.count) shared units, \(loaded.models.count) models)"
            )
        } catch {
            FileHandle.standardError.write(Data("\(config): \(error.problems.count) problem(s)\n".utf8))
            for problem in error.problems {
                FileHandle.standardError.write(Data("  \(problem)\n".utf8))
            }
            throw ExitCode(2)
        }
    }
}
