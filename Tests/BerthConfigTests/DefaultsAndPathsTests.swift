import BerthCore
import Foundation
import Testing

@testable import BerthConfig

@Test("Defaults apply when the daemon and limits sections are left out")
func sectionDefaults() throws {
    let config = try DaemonConfig.parse(ConfigFixture.valid)
    #expect(config.daemon.socket == "/run/berth/berthd.sock")
    #expect(config.daemon.database == "/var/lib/berth/berth.db")
    #expect(config.daemon.socketGroup == nil)
    #expect(config.daemon.admins.isEmpty)
    #expect(config.daemon.adminGroups.isEmpty)
    #expect(config.daemon.stopGraceSeconds == 10)
    #expect(config.daemon.idleThresholdSeconds == 86_400)
    #expect(config.daemon.logDirectory == "/var/log/berth")
    #expect(config.daemon.logLevel == "info")
    #expect(config.limits.maxDataFileBytes == 100 * 1024 * 1024)
    #expect(config.limits.maxDataRecords == 1_000_000)
    #expect(config.limits.maxQueuedJobsPerUser == 1_000)
    #expect(config.limits.maxConnections == 256)
    #expect(config.limits.requestTimeoutSeconds == 30)
    #expect(config.limits.idleTimeoutSeconds == 60)
    #expect(config.metrics.listen == nil)
    #expect(config.sourcePath == nil)
}

@Test(
    "metrics.listen takes an IPv4 address or a bracketed IPv6 address with a port",
    arguments: [
        ("127.0.0.1:9464", "127.0.0.1", 9464), ("0.0.0.0:1", "0.0.0.0", 1), ("[::1]:9464", "::1", 9464), ("[::]:65535", "::", 65535),
    ]
)
func metricsListen(_ text: String, host: String, port: Int) throws {
    let config = try DaemonConfig.parse(ConfigFixture.config(metrics: "[metrics]\nlisten = \"\(text)\"\n"))
    #expect(config.metrics.listen == DaemonConfig.ListenAddress(host: host, port: port))
    #expect(config.metrics.listen?.description == text)
}

@Test("A set key overrides its default, and an integer is taken where a number is expected")
func setKeysOverrideDefaults() throws {
    let config = try DaemonConfig.parse(
        ConfigFixture.config(
            daemon: "[daemon]\nstop_grace_seconds = 2.5\nidle_threshold_seconds = 3600\nlog_level = \"debug\"\n",
            limits:
                "[limits]\nmax_data_records = 10\nmax_queued_jobs_per_user = 3\nmax_connections = 8\nrequest_timeout_seconds = 2.5\nidle_timeout_seconds = 5\n"
        )
    )
    #expect(config.daemon.stopGraceSeconds == 2.5)
    #expect(config.daemon.idleThresholdSeconds == 3600)
    #expect(config.daemon.logLevel == "debug")
    #expect(config.limits.maxDataRecords == 10)
    #expect(config.limits.maxQueuedJobsPerUser == 3)
    #expect(config.limits.maxConnections == 8)
    #expect(config.limits.requestTimeoutSeconds == 2.5)
    #expect(config.limits.idleTimeoutSeconds == 5)
    #expect(config.limits.maxDataFileBytes == 100 * 1024 * 1024)
}

@Test("A model's optional keys and hyperparameter ranges take their defaults")
func modelDefaults() throws {
    let bare = """
        [[models]]
        id = "amazon.nova-micro-v1:0"
        provider = "Amazon"
        input_modalities = ["text"]
        output_modalities = ["text"]
        max_tokens = 128000
        units_per_model_unit = 1
        tokens_per_minute = 60000

        [models.price]
        model_unit_hour = 12

        """
    let partial = """
        [[models]]
        id = "meta.llama3-8b-instruct-v1:0"
        provider = "Meta"
        input_modalities = ["text"]
        output_modalities = ["text"]
        max_tokens = 8192
        units_per_model_unit = 2
        tokens_per_minute = 30000

        [models.hyperparameters]
        epochs = [2, 3]

        [models.price]
        model_unit_hour = 24.5

        """
    let config = try DaemonConfig.parse(ConfigFixture.config(models: bare + partial))
    let micro = config.models[0]
    #expect(micro.onDemand == false)
    #expect(micro.customizations.isEmpty)
    #expect(micro.hyperparameters == .defaults)
    #expect(micro.price == ModelPrice(modelUnitHour: [.none: 12]))
    let llama = config.models[1]
    #expect(llama.hyperparameters.epochs == 2...3)
    #expect(llama.hyperparameters.batchSize == HyperparameterRanges.defaults.batchSize)
    #expect(llama.hyperparameters.learningRate == HyperparameterRanges.defaults.learningRate)
    #expect(llama.hyperparameters.warmupSteps == HyperparameterRanges.defaults.warmupSteps)
}

@Test("A unit's device is optional")
func unitWithoutDevice() throws {
    let config = try DaemonConfig.parse(ConfigFixture.valid)
    #expect(config.units[2] == ComputeUnit(id: "cpu-shared-0", kind: "cpu", device: nil, pool: .shared))
}

struct PathCase: Sendable, CustomTestStringConvertible {
    var sentence: String
    var sourcePath: String?
    var written: String
    var resolved: String
    var testDescription: String { sentence }
}

@Test(
    "Relative paths resolve against the config file's folder",
    arguments: [
        PathCase(
            sentence: "A relative path is taken from the file's folder",
            sourcePath: "/etc/berth/berthd.toml",
            written: "state/berth",
            resolved: "/etc/berth/state/berth"
        ),
        PathCase(
            sentence: "A path climbing out of the folder is normalised",
            sourcePath: "/etc/berth/berthd.toml",
            written: "../lib/berth",
            resolved: "/etc/lib/berth"
        ),
        PathCase(
            sentence: "An absolute path is kept as written",
            sourcePath: "/etc/berth/berthd.toml",
            written: "/srv/berth",
            resolved: "/srv/berth"
        ),
        PathCase(
            sentence: "Without a source file a relative path is kept as written",
            sourcePath: nil,
            written: "state/berth",
            resolved: "state/berth"
        ),
    ]
)
func relativePathsResolve(_ pathCase: PathCase) throws {
    let daemon = """
        [daemon]
        socket = "\(pathCase.written).sock"
        database = "\(pathCase.written).db"
        log_directory = "\(pathCase.written)-logs"

        """
    let config = try DaemonConfig.parse(ConfigFixture.config(daemon: daemon), sourcePath: pathCase.sourcePath)
    #expect(config.daemon.socket == pathCase.resolved + ".sock")
    #expect(config.daemon.database == pathCase.resolved + ".db")
    #expect(config.daemon.logDirectory == pathCase.resolved + "-logs")
}

@Test("A relative source path is first made absolute from the working directory")
func relativeSourcePath() throws {
    let config = try DaemonConfig.parse(
        ConfigFixture.config(daemon: "[daemon]\ndatabase = \"berth.db\"\n"),
        sourcePath: "conf/berthd.toml"
    )
    let cwd = FileManager.default.currentDirectoryPath
    #expect(config.sourcePath == URL(fileURLWithPath: cwd).appendingPathComponent("conf/berthd.toml").standardizedFileURL.path)
    #expect(config.daemon.database == URL(fileURLWithPath: cwd).appendingPathComponent("conf/berth.db").standardizedFileURL.path)
}

@Test("load resolves relative paths against the folder of the file it read")
func loadResolvesAgainstFile() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("berth-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let file = folder.appendingPathComponent("berthd.toml")
    try ConfigFixture.config(daemon: "[daemon]\nsocket = \"b.sock\"\n").write(to: file, atomically: true, encoding: .utf8)

    let config = try DaemonConfig.load(path: file.path)
    #expect(config.daemon.socket == folder.appendingPathComponent("b.sock").standardizedFileURL.path)
    #expect(config.sourcePath == file.standardizedFileURL.path)
}

@Test("An unreadable file is one problem with an empty key path that names the file")
func unreadableFile() {
    let path = "/nonexistent/berth-\(UUID().uuidString)/berthd.toml"
    do {
        _ = try DaemonConfig.load(path: path)
        Issue.record("load accepted a file that does not exist")
    } catch {
        #expect(error.problems.count == 1)
        #expect(error.problems.first?.keyPath == "")
        #expect(error.problems.first?.message.contains(path) == true, "\(error)")
    }
}

@Test("A folder given as the config file is one problem that says to pass the file")
func folderAsConfig() {
    let folder = FileManager.default.temporaryDirectory.path
    do {
        _ = try DaemonConfig.load(path: folder)
        Issue.record("load accepted a folder")
    } catch {
        #expect(error.problems.map(\.keyPath) == [""])
        #expect(error.problems.first?.message.contains("it is a folder") == true, "\(error)")
    }
}
