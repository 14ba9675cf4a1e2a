public import BerthCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where berthd's runners run. A supervisor asks an executor to start an argv on some units and
/// gets back a `Runner` to follow; this host's processes are the first kind, and a confined
/// process or a job on a cluster are others behind the same two calls.
public protocol RunnerExecutor: Sendable {
    /// Starts `launch`, or throws a `RunnerProcess.SpawnError` that names what stopped it.
    func start(_ launch: RunnerLaunch) async throws -> any Runner
    /// A folder the runner of `launch` reads by path, where the caller writes the files it is
    /// handed (a job's spec); `nil` where they are handed over as open descriptors instead.
    func handOverFolder(for launch: RunnerLaunch) throws -> String?
    /// Follows again a runner a previous berthd started, by the `reference` the ledger kept;
    /// throws where runners die with berthd, or the reference names nothing it can follow.
    func reattach(_ launch: RunnerLaunch, reference: String) async throws -> any Runner
}

extension RunnerExecutor {
    public func handOverFolder(for launch: RunnerLaunch) throws -> String? { nil }

    public func reattach(_ launch: RunnerLaunch, reference: String) async throws -> any Runner {
        throw RunnerProcess.SpawnError(description: "a runner of this host does not outlive berthd; it cannot be followed again")
    }
}

/// A started runner: its output as it comes, signals, and how it ended.
public protocol Runner: AnyObject, Sendable {
    /// How the ledger and the logs know it (a process id here).
    var pid: Int32 { get }
    /// Batches of its stdout lines as they arrive; ends when its stdout closes.
    func lineBatches() -> AsyncStream<[String]>
    /// Signals the runner and everything it started.
    func signalGroup(_ signal: Int32)
    /// The exit code, or 128 + the signal that ended it, once it has ended; `nil` if the
    /// waiting task is cancelled first.
    func exitStatus() async -> Int32?
    var hasExited: Bool { get }
    /// Whether the kernel killed it for going over its memory cap.
    var killedForMemory: Bool { get }
    /// CPU seconds it used and the most memory it held, where the kernel counted them; known
    /// once it has ended.
    var usage: (cpuSeconds: Double?, peakMemoryBytes: Int64?) { get }
    /// What the ledger keeps to follow it again after berthd restarts (a Slurm job id);
    /// `nil` for a runner that does not outlive berthd.
    var reference: String? { get }
    /// How it ended where the exit status does not say it all (a cluster's verdict), once
    /// it has ended; `nil` lets the exit status speak.
    var verdict: RunnerVerdict? { get }
    /// The state the place it runs shows for it (`PENDING: Resources` on Slurm); `nil` here.
    var clusterState: String? { get }
    /// berthd stops following a runner that outlives it, and leaves it running: its line
    /// batches end and `exitStatus` answers `nil`, so a shutdown does not wait for its end.
    func stopFollowing()
}

extension Runner {
    public var reference: String? { nil }
    public var verdict: RunnerVerdict? { nil }
    public var clusterState: String? { nil }
    public func stopFollowing() {}
}

/// How a runner ended, as the place it ran says, beyond its exit status.
public enum RunnerVerdict: Sendable, Equatable {
    /// It failed for a reason of that place (a time limit, a lost node), named for the job's reason.
    case failed(String)
    /// Someone there cancelled it: the job is stopped, with this reason.
    case cancelled(String)
}

/// What to start: the argv as the config's template expanded it, the units it runs on, whom it
/// runs as, and what it is handed.
public struct RunnerLaunch: Sendable {
    /// argv[0] names the program: a path, or a name looked up by the executor.
    public var argv: [String]
    /// The units it runs on, from the catalog: they decide the devices it is shown.
    public var units: [ComputeUnit]
    /// Whom it runs as; `nil` is berthd's own user.
    public var identity: RunnerIdentity?
    /// Its stderr is appended here (berthd's file).
    public var logPath: String
    /// Variables beyond the ones every runner gets (`BERTH_JOB_ID`, `BERTH_SERVE`, ...).
    public var environment: [String: String]
    /// Descriptors the runner gets as 3, 4, ...; they stay the caller's to close.
    public var passedDescriptors: [Int32] = []
    /// Folders made with the runner's rights before it starts, each with the field it came
    /// from, and files it must be able to read; a failure names the field.
    public var folders: [(field: String, path: String)] = []
    public var readableFiles: [(field: String, path: String)] = []
    /// Its cgroup's name (`job-12`) and what it may use, when the executor confines runners.
    public var confinement: (name: String, bounds: RunnerBounds)?
    /// How an executor that runs it elsewhere names it and its files (`job-12`,
    /// `serve-reservation-3`); unique among the runners of one ledger.
    public var name: String?
    /// The reservation a cluster holds for its units (a Slurm reservation's name), where there is one.
    public var clusterReservation: String?
    /// For a serve process: the port it is told to listen on. An executor that runs it
    /// elsewhere learns the host it listens on from the runner (`SlurmRunner.address`).
    public var servePort: Int?

    public init(argv: [String], units: [ComputeUnit], identity: RunnerIdentity?, logPath: String, environment: [String: String] = [:]) {
        self.argv = argv
        self.units = units
        self.identity = identity
        self.logPath = logPath
        self.environment = environment
    }
}

/// Runners as processes of this host, each in its own process group (`RunnerProcess`).
public struct LocalExecutor: RunnerExecutor {
    /// Folders searched for a runner named without a path before `PATH`: berthd's own folder,
    /// so the shipped config finds the `berth-runner` built beside it.
    public var runnerFolders: [String]
    /// Given to every runner as `BERTH_LEDGER`, so a restarted berthd can find the ones a
    /// predecessor that died left behind (`RunnerProcess.orphans`).
    public var ledgerPath: String
    /// Where runners' cgroups are made; `nil` when the kernel offers none to berthd.
    public var cgroups: CgroupTree?
    /// Runners started by this berthd, for their groups' names.
    private static let started = Atomic<Int>(0)

    public init(runnerFolders: [String], ledgerPath: String, cgroups: CgroupTree? = nil) {
        self.runnerFolders = runnerFolders
        self.ledgerPath = ledgerPath
        self.cgroups = cgroups
    }

    public func start(_ launch: RunnerLaunch) async throws -> any Runner {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let program = launch.argv.first, let executable = RunnerProcess.resolve(program, preferring: runnerFolders, path: path) else {
            throw RunnerProcess.SpawnError(description: "runner '\(launch.argv.first ?? "")' not found; check [runners] in the config")
        }
        var process = RunnerProcess.Launch(
            executable: executable,
            arguments: Array(launch.argv.dropFirst()),
            environment: environment(for: launch, path: path),
            identity: launch.identity,
            logPath: launch.logPath
        )
        process.passedDescriptors = launch.passedDescriptors
        process.folders = launch.folders
        process.readableFiles = launch.readableFiles
        guard let cgroups, let (name, bounds) = launch.confinement else { return try RunnerProcess(process) }
        // Numbered: a runner replacing another of the same name (a serve process given more
        // units) may start while the one it replaces is still stopping, in a group of its own.
        let group = try cgroups.makeGroup("\(name).\(Self.started.add(1, ordering: .relaxed).newValue)", bounds: bounds)
        do {
            process.cgroup = group
            process.cgroupDescriptors = try group.joinDescriptors()
            defer { process.cgroupDescriptors.forEach { close($0) } }
            return try RunnerProcess(process)
        } catch {
            group.remove()
            throw error
        }
    }

    /// Exactly the runner's environment: its units and their devices, the ledger it belongs to,
    /// who it runs as, then the launch's own variables.
    func environment(for launch: RunnerLaunch, path: String) -> [String: String] {
        let devices = launch.units.compactMap(\.device).map(String.init).joined(separator: ",")
        var environment = [
            "PATH": path, "LANG": "C.UTF-8",
            "BERTH_UNITS": launch.units.map(\.id).joined(separator: ","), "BERTH_DEVICES": devices, "BERTH_LEDGER": ledgerPath,
        ]
        environment.merge((launch.identity ?? .daemon).environment) { _, new in new }
        environment.merge(Self.gpuEnvironment(launch.units)) { _, new in new }
        environment.merge(launch.environment) { _, new in new }
        return environment
    }

    /// The GPUs a runner may see, named the same way to CUDA and to the NVIDIA container
    /// runtime: by UUID where the config gives one (an index names another GPU after a reboot
    /// or a MIG change), in the order of its units. A runner holding no GPU is shown
    /// none, rather than every GPU of the host: a framework that counts the GPUs it sees
    /// (vLLM's tensor parallelism) must count only the ones it holds.
    static func gpuEnvironment(_ units: [ComputeUnit]) -> [String: String] {
        let visible = units.filter(\.isGPU).compactMap(\.visibleDeviceName)
        guard !visible.isEmpty else { return ["CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"] }
        let list = visible.joined(separator: ",")
        return ["CUDA_VISIBLE_DEVICES": list, "NVIDIA_VISIBLE_DEVICES": list, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"]
    }
}
