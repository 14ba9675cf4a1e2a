public import BerthCore
import Foundation
import TOMLKit

/// The daemon's config file (SPEC.md, "Config"), checked and mapped to core values.
///
/// `parse` and `load` report every problem they find, each with its key path, so
/// `berthd check-config` can list them all at once.
public struct DaemonConfig: Sendable {
    /// Where the config lives unless `--config` says otherwise.
    public static let defaultPath = "/etc/berth/berthd.toml"

    public struct Daemon: Sendable {
        public var socket: String
        public var database: String
        /// Group given to the socket file (mode 0660), so its members can talk to the daemon.
        public var socketGroup: String?
        /// User names with full access.
        public var admins: [String]
        /// Members of these groups are admins.
        public var adminGroups: [String]
        /// How long a runner has between SIGTERM and SIGKILL.
        public var stopGraceSeconds: Double
        /// Reservations idle longer than this are flagged in the usage report.
        public var idleThresholdSeconds: Double
        /// Job logs.
        public var logDirectory: String
        /// trace, debug, info, notice, warning, error or critical (swift-log's levels).
        public var logLevel: String

        public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

        public init(
            socket: String = "/run/berth/berthd.sock",
            database: String = "/var/lib/berth/berth.db",
            socketGroup: String? = nil,
            admins: [String] = [],
            adminGroups: [String] = [],
            stopGraceSeconds: Double = 10,
            idleThresholdSeconds: Double = 86_400,
            logDirectory: String = "/var/log/berth",
            logLevel: String = "info"
        ) {
            self.socket = socket
            self.database = database
            self.socketGroup = socketGroup
            self.admins = admins
            self.adminGroups = adminGroups
            self.stopGraceSeconds = stopGraceSeconds
            self.idleThresholdSeconds = idleThresholdSeconds
            self.logDirectory = logDirectory
            self.logLevel = logLevel
        }
    }

    /// Bounds on what one submission, one user and one client can take of the daemon.
    public struct Limits: Sendable {
        /// A job's data files, checked at submission.
        public var maxDataFileBytes: Int
        public var maxDataRecords: Int
        /// Jobs one user may have queued at once; the next submission is refused with
        /// `too-many-queued-jobs`.
        public var maxQueuedJobsPerUser: Int
        /// Connections the control socket serves at once; each one over it is answered 503
        /// `too-many-connections` and closed.
        public var maxConnections: Int
        /// A request must arrive whole (head and body) within this long of its first byte, or
        /// its connection is answered 408 and closed: a stalled or trickling client cannot hold
        /// a connection.
        public var requestTimeoutSeconds: Double
        /// A kept-alive connection that sends no request for this long is closed.
        public var idleTimeoutSeconds: Double

        /// Bounds above which a value is a mistake rather than a choice.
        public static let maxConnectionsCeiling = 65_536
        public static let requestTimeoutCeiling: Double = 3_600
        public static let idleTimeoutCeiling: Double = 86_400

        public init(
            maxDataFileBytes: Int = 100 * 1024 * 1024,
            maxDataRecords: Int = 1_000_000,
            maxQueuedJobsPerUser: Int = 1_000,
            maxConnections: Int = 256,
            requestTimeoutSeconds: Double = 30,
            idleTimeoutSeconds: Double = 60
        ) {
            self.maxDataFileBytes = maxDataFileBytes
            self.maxDataRecords = maxDataRecords
            self.maxQueuedJobsPerUser = maxQueuedJobsPerUser
            self.maxConnections = maxConnections
            self.requestTimeoutSeconds = requestTimeoutSeconds
            self.idleTimeoutSeconds = idleTimeoutSeconds
        }
    }

    /// The programs berthd starts, as argv lists whose placeholders (`{spec}`, `{port}`,
    /// `{model_dir}`) are replaced as whole arguments; there is no shell.
    /// How runners are confined by the kernel's cgroups, where berthd can make them.
    public struct Confinement: Sendable {
        /// Off: runners get their units' devices by environment only.
        public var enabled = true
        /// Each unit a runner holds lets it use this much memory; none: no cap.
        public var memoryPerUnitMiB: Int?
        /// Processes and threads one runner may have at once.
        public var maxTasks = 4096

        public init() {}
    }

    /// `[discovery]`: hardware berthd finds for itself at start-up and on SIGHUP, beside the
    /// `[[units]]` the file lists, and how it watches the GPUs.
    public struct Discovery: Sendable {
        /// Which GPUs to look for; `nil` (the default) looks for none.
        public var gpus: GPUVendor?
        /// The `nvidia-smi` to run: a path, or a name looked up in `PATH`.
        public var nvidiaSMI = "nvidia-smi"
        /// The pool discovered GPUs join.
        public var pool: UnitPool = .dedicated
        /// How often each GPU unit's utilization and memory are sampled.
        public var sampleSeconds: Double = 5
        /// A reservation whose GPUs all stay under this utilization (percent) is idle, even
        /// with a job or a serve process up.
        public var idleGPUPercent: Double = 5

        public enum GPUVendor: String, Sendable, CaseIterable {
            case nvidia
        }

        public init() {}
    }

    public struct Runners: Sendable {
        public var train: [String]
        public var batch: [String]
        public var serve: [String]
        /// The user serve processes of base models run as when berthd is root (a custom
        /// model's runs as its owner, a job's runner as its submitter).
        public var serviceUser: String

        public init(train: [String], batch: [String], serve: [String], serviceUser: String = "berth") {
            self.train = train
            self.batch = batch
            self.serve = serve
            self.serviceUser = serviceUser
        }
    }

    /// `[executors.slurm]`: how berthd reaches a Slurm cluster. Through Slurm's own commands
    /// (each a path, or a name looked up in `PATH`), as an admin would, so what berthd does
    /// there is what `squeue` and `scontrol show reservation` show.
    public struct Slurm: Sendable, Equatable {
        public var sbatch = "sbatch"
        public var scancel = "scancel"
        public var squeue = "squeue"
        public var sacct = "sacct"
        public var scontrol = "scontrol"
        public var sinfo = "sinfo"
        /// The partition jobs are submitted to.
        public var partition: String
        /// The account jobs are charged to; `nil`: the submitting user's default.
        public var account: String?
        /// A folder berthd's host and every node see at the same path: job specs, events,
        /// logs and serve addresses go there.
        public var sharedFolder: String
        /// How often the state of the jobs berthd follows is asked for (one `squeue` for all).
        public var pollSeconds: Double = 1

        public init(partition: String, sharedFolder: String, account: String? = nil) {
            self.partition = partition
            self.sharedFolder = sharedFolder
            self.account = account
        }
    }

    /// `[metrics]`: where else than the control socket `GET /metrics` is served.
    public struct Metrics: Sendable {
        /// A TCP address that serves only `GET /metrics`, all series, to whoever reaches it:
        /// Prometheus cannot read a UNIX socket. `nil` (the default) opens no port.
        public var listen: ListenAddress?

        public init(listen: ListenAddress? = nil) {
            self.listen = listen
        }
    }

    /// `[openai]`: the TCP address of the OpenAI-compatible routes, for clients that cannot
    /// use a UNIX socket. Requests there carry an API key (`berth api-key create`) and act as
    /// its owner. `nil` (the default) opens no port: the routes are on the socket only.
    public struct OpenAI: Sendable {
        public var listen: ListenAddress?

        public init(listen: ListenAddress? = nil) {
            self.listen = listen
        }
    }

    /// An IP address and a TCP port, as `metrics.listen` writes them: `127.0.0.1:9464`,
    /// `[::1]:9464`.
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        /// The address without brackets: `127.0.0.1`, `::1`.
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Reads `HOST:PORT` with an IPv4 address or a bracketed IPv6 address; a host name is
        /// refused, since it may name several addresses or change between restarts.
        public init?(parsing text: String) {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            var host = String(text[..<colon])
            let port = text[text.index(after: colon)...]
            if host.hasPrefix("["), host.hasSuffix("]") {
                host = String(host.dropFirst().dropLast())
                guard Self.isAddress(host, family: AF_INET6) else { return nil }
            } else {
                guard Self.isAddress(host, family: AF_INET) else { return nil }
            }
            guard port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber), let number = Int(port), (1...65_535).contains(number) else {
                return nil
            }
            self.init(host: host, port: number)
        }

        private static func isAddress(_ text: String, family: Int32) -> Bool {
            var buffer = [UInt8](repeating: 0, count: 16)
            return inet_pton(family, text, &buffer) == 1
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var daemon: Daemon
    public var limits: Limits
    public var metrics: Metrics
    public var units: [ComputeUnit]
    public var models: [Model]
    public var runners: Runners
    public var confinement = Confinement()
    public var discovery = Discovery()
    public var openAI = OpenAI()
    /// `[executors.slurm]`: the cluster units with `executor = "slurm"` run on; `nil` when the
    /// config has none.
    public var slurm: Slurm?
    /// Where the file was read from; relative paths in it are resolved against its folder.
    public var sourcePath: String?

    public init(
        daemon: Daemon = Daemon(),
        limits: Limits = Limits(),
        metrics: Metrics = Metrics(),
        units: [ComputeUnit],
        models: [Model],
        runners: Runners,
        sourcePath: String? = nil
    ) {
        self.daemon = daemon
        self.limits = limits
        self.metrics = metrics
        self.units = units
        self.models = models
        self.runners = runners
        self.sourcePath = sourcePath
    }

    /// Parses and checks a config. `sourcePath` is the file it came from: relative `socket`,
    /// `database` and `log_directory` paths are resolved against that file's folder.
    public static func parse(_ toml: String, sourcePath: String? = nil) throws(ConfigError) -> DaemonConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw ConfigError(problems: [
                ConfigProblem(
                    keyPath: "",
                    message: "line \(position.line), column \(position.column): \(error.description); fix the TOML syntax there"
                )
            ])
        } catch {
            throw ConfigError(problems: [ConfigProblem(keyPath: "", message: "not valid TOML: \(error)")])
        }
        let absoluteSource = sourcePath.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let log = ProblemLog()
        let config = ConfigDecoder(log: log, sourcePath: absoluteSource).decode(TableReader(root, path: "", log: log))
        guard log.problems.isEmpty else {
            throw ConfigError(problems: log.problems)
        }
        return config
    }

    /// Reads and checks the config file at `path`.
    public static func load(path: String) throws(ConfigError) -> DaemonConfig {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ConfigError(problems: [
                ConfigProblem(
                    keyPath: "",
                    message: "cannot read config file \(path): it is a folder; pass the TOML file itself, e.g. --config \(path)/berthd.toml"
                )
            ])
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [
                ConfigProblem(
                    keyPath: "",
                    message: "cannot read config file \(path): \(Self.readFailure(error)); check the path and its permissions, or pass --config FILE"
                )
            ])
        }
        return try parse(text, sourcePath: path)
    }

    public var dedicatedUnits: [ComputeUnit] { units.filter { $0.pool == .dedicated } }
    public var sharedUnits: [ComputeUnit] { units.filter { $0.pool == .shared } }

    private static func readFailure(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain, let code = POSIXErrorCode(rawValue: Int32(underlying.code))
        {
            return String(cString: strerror(code.rawValue))
        }
        switch nsError.code {
        case NSFileReadNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError: return "permission denied"
        case NSFileReadInapplicableStringEncodingError: return "not UTF-8 text"
        default: return nsError.localizedDescription
        }
    }
}
