public import BerthConfig
public import BerthCore
public import BerthExecutors
public import BerthStore
import BerthWire
import CBerthSpawn
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What berthd needs to run jobs, from the config.
public struct JobSettings: Sendable {
    public var runners: DaemonConfig.Runners
    public var limits: DaemonConfig.Limits
    /// Job logs and specs go under `<logDirectory>/jobs/`.
    public var logDirectory: String
    public var stopGrace: Duration
    public var confinement = DaemonConfig.Confinement()
    /// The units as the config describes them (their cores), kept current across reloads.
    public let hardware = UnitDirectory()
    /// What the kernel lets berthd confine runners with, for `berth status`.
    public var confinementSupport: ConfinementSupport = .none("not enabled")
    /// How berthd names its jobs and reservations on Slurm, when the config has a cluster.
    public var slurmNaming: SlurmNaming?
    /// Makes the cluster's reservations match the ledger before a runner is submitted into one:
    /// a reservation the scheduler has just started may not have its Slurm reservation yet.
    public var prepareCluster: (@Sendable () async -> Void)?

    public init(runners: DaemonConfig.Runners, limits: DaemonConfig.Limits, logDirectory: String, stopGrace: Duration) {
        self.runners = runners
        self.limits = limits
        self.logDirectory = logDirectory
        self.stopGrace = stopGrace
    }

    var jobsFolder: String { logDirectory + "/jobs" }

    /// Whether runners run as the users they act for: berthd can change identity only as root.
    /// Otherwise they run as berthd's own user, and the paths a job names are resolved again,
    /// with the caller's rights, when it starts (`PathResolver`).
    var runnersActAsCallers: Bool { geteuid() == 0 }

    /// The user on-demand and base-model serve processes run as when berthd is root: the
    /// config's service user, else `nobody` (with a warning at start-up) so a first try on a
    /// machine without the `berth` user still serves.
    var serviceIdentity: RunnerIdentity? {
        RunnerIdentity.named(runners.serviceUser) ?? RunnerIdentity.named("nobody")
    }

    func logPath(jobID: Int64) -> String { "\(jobsFolder)/\(jobID).log" }
    func specPath(jobID: Int64) -> String { "\(jobsFolder)/\(jobID).spec.json" }

    /// The catalog's entries for `ids`, in that order, with what the config says of each. A
    /// unit the catalog no longer lists (it stays while leased, so this is a race with a
    /// reload) is passed on as a plain slice.
    func units(_ ids: [String], in catalog: [ComputeUnit]) -> [ComputeUnit] {
        let byID = Dictionary(catalog.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let configured = hardware.described
        return ids.map { id in
            var unit = byID[id] ?? ComputeUnit(id: id, kind: "cpu", pool: .dedicated)
            unit.cpus = configured[id]?.cpus
            unit.uuid = configured[id]?.uuid
            unit.memoryMiB = configured[id]?.memoryMiB
            unit.cpuShare = configured[id]?.cpuShare
            unit.node = configured[id]?.node
            return unit
        }
    }

    /// What a runner on `units` may use: their cores when every one names them, memory for
    /// each when the config caps it, a bound on tasks, and none of the GPUs it does not hold:
    /// not only the other units' GPUs but every GPU node, so a GPU left out of the config, or a
    /// node a root runner makes with mknod, is refused too.
    func confinement(_ name: String, units: [ComputeUnit]) -> (name: String, bounds: RunnerBounds)? {
        guard confinement.enabled else { return nil }
        let cores = units.compactMap(\.cpus)
        let held = Set(units.compactMap { $0.kind == "cpu" ? nil : $0.device })
        let denied = DeviceNumber.nvidiaGPUMinors.filter { !held.contains($0) }
        let bounds = RunnerBounds(
            cpus: !cores.isEmpty && cores.count == units.count ? cores.joined(separator: ",") : nil,
            memoryBytes: confinement.memoryPerUnitMiB.map { Int64($0) * 1_048_576 * Int64(max(units.count, 1)) },
            maxTasks: confinement.maxTasks,
            deniedDevices: denied.map(DeviceNumber.nvidiaGPU),
            cpuQuota: !units.isEmpty && units.allSatisfy { $0.cpuShare != nil } ? units.compactMap(\.cpuShare).reduce(0, +) : nil
        )
        return (name, bounds)
    }
}

/// The units as the config describes them (with those discovered), replaced whole on a reload.
public final class UnitDirectory: Sendable {
    private struct State {
        var current: [String: ComputeUnit] = [:]
        /// Units an earlier config or discovery described and the current one does not: a
        /// leased GPU that vanished keeps its UUID and cores for the runners still on it.
        var former: [String: ComputeUnit] = [:]
        /// False until the first `replace`: before it nothing is known, so nothing is lost.
        var isKnown = false
    }

    private let state = Mutex(State())

    public init() {}

    public func replace(with units: [ComputeUnit]) {
        let map = Dictionary(units.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        state.withLock { state in
            state.former.merge(state.current) { _, newer in newer }
            state.current = map
            for id in map.keys { state.former[id] = nil }
            state.isKnown = true
        }
    }

    /// The units the current config and discovery describe.
    public var units: [String: ComputeUnit] { state.withLock { $0.current } }

    /// The current units, and the last description of each that left.
    var described: [String: ComputeUnit] {
        state.withLock { $0.former.merging($0.current) { _, current in current } }
    }

    /// Whether a unit the ledger lists is gone from the current config and discovery: a GPU
    /// that left while leased stays in the catalog until its lease ends.
    public func isLost(_ id: String) -> Bool {
        state.withLock { $0.isKnown && $0.current[id] == nil }
    }
}

/// Starts the runner of every job the planner marked running, feeds its events into the
/// ledger, stops it when asked, and records how it ended.
public actor JobSupervisor: Service {
    private let ledger: Ledger
    private let settings: JobSettings
    private let executor: any RunnerExecutor
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let supervision: Supervision
    private var processes: [Int64: any Runner] = [:]
    /// When berthd is not root: each running job's output folder as it was opened and checked
    /// at its start, so what berthd writes there at its end goes to that folder and no other.
    private var outputFolders: [Int64: Int32] = [:]
    /// Jobs already sent SIGTERM, so the signal (and the SIGKILL after the grace) is sent once.
    private var signalled: Set<Int64> = []
    /// Called when a job ends: its units are free for the next in its queue.
    private let onJobEnded: @Sendable () -> Void

    public init(
        ledger: Ledger,
        settings: JobSettings,
        executor: any RunnerExecutor,
        clock: @escaping @Sendable () -> Date,
        timer: any Clock<Duration> = ContinuousClock(),
        logger: Logger,
        onJobEnded: @escaping @Sendable () -> Void
    ) {
        self.ledger = ledger
        self.settings = settings
        self.executor = executor
        self.clock = clock
        self.logger = logger
        self.onJobEnded = onJobEnded
        supervision = Supervision(interval: .seconds(2), clock: timer)
    }

    public nonisolated func wake() {
        supervision.wake()
    }

    /// Before serving: jobs the ledger says are running belong to a berthd that is gone. Their
    /// runners, if any survived, are killed; the jobs failed with `daemon-restart`. Jobs that
    /// `survives` (a Slurm job: it does not die with berthd) stay running, to be followed again.
    public static func reconcileAfterRestart(
        ledger: Ledger,
        now: Date,
        logger: Logger,
        survives: (JobRecord) -> Bool = { _ in false }
    ) throws {
        // Job runners and serve processes of this ledger that outlived their berthd: each
        // carries BERTH_LEDGER, so a recycled pid is never mistaken for one.
        for pid in RunnerProcess.orphans(ledgerPath: ledger.path) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            logger.warning("killed a runner left by the previous berthd", metadata: ["pid": "\(pid)"])
        }
        let orphans = try ledger.readNow { tx in try tx.runningJobs() }.filter { !survives($0) }
        try ledger.writeNow { tx in
            for job in orphans {
                if let id = job.id { try tx.finishJob(id, status: .failed, reason: JobEndReason.daemonRestart.rawValue, exitStatus: nil, at: now) }
            }
        }
    }

    public func run() async throws {
        await supervision.run(reconcile: { await self.reconcile() }, stop: { await self.stopAll() })
    }

    /// A clean stop leaves no runner behind: each gets SIGTERM, then SIGKILL after the grace
    /// period, and its job ends `failed` with `daemon-stop` (it did not finish; resubmit it),
    /// or `stopped` if a stop was asked for. A job the ledger shows running whose runner was not
    /// started yet ends the same way: no job is left running with nothing running it. (The
    /// scheduler has stopped before this, so no queued job starts meanwhile.)
    /// Slurm jobs are the exception: they run on without berthd, which follows them again
    /// after its restart; one that was asked to stop is cancelled now and recorded then.
    private func stopAll() async {
        let local = processes.filter { $0.value.reference == nil }
        let onCluster = Set(processes.keys).subtracting(local.keys)
        if !local.isEmpty {
            logger.info("stopping runners", metadata: ["count": "\(local.count)"])
            await supervision.stopAll(Array(local.values), grace: settings.stopGrace)
        }
        for id in onCluster {
            if signalled.contains(id) { processes[id]?.signalGroup(SIGKILL) }
            processes[id]?.stopFollowing()
        }
        if !onCluster.isEmpty {
            logger.info("leaving Slurm jobs running; the next berthd follows them", metadata: ["count": "\(onCluster.count)"])
        }
        let now = clock()
        _ = try? await ledger.write { tx in
            for job in try tx.liveJobs() where job.status != .queued {
                guard let id = job.id, !onCluster.contains(id), job.slurmJobID == nil else { continue }
                if job.status == .stopping {
                    try tx.finishJob(id, status: .stopped, reason: job.reason, exitStatus: nil, at: now)
                } else {
                    try tx.finishJob(id, status: .failed, reason: JobEndReason.daemonStop.rawValue, exitStatus: nil, at: now)
                }
            }
        }
    }

    /// Makes processes match the ledger: start what should run, signal what should stop.
    private func reconcile() async {
        guard !supervision.isStopping else { return }
        let jobs: [JobRecord]
        do {
            jobs = try await ledger.read { tx in try tx.runningJobs() }
        } catch {
            logger.error("cannot read jobs", metadata: ["error": "\(error)"])
            return
        }
        for job in jobs {
            guard let id = job.id else { continue }
            switch job.status {
            case .running where processes[id] == nil:
                // The list was read before the awaits of this loop: meanwhile this job's runner
                // may have exited and its end been recorded. Only a job still running and
                // without a runner gets one, never a second run of a finished job.
                guard let current = try? await ledger.read({ tx in try tx.job(id: id) }),
                    current.status == .running, processes[id] == nil
                else { continue }
                if current.slurmJobID != nil {
                    await reattach(current)
                } else {
                    await launch(current)
                }
            case .stopping:
                if processes[id] == nil, job.slurmJobID != nil {
                    await reattach(job)
                }
                if let process = processes[id] {
                    if signalled.insert(id).inserted {
                        supervision.stopLater(process, grace: settings.stopGrace)
                    }
                } else {
                    // Nothing runs it (its start failed, or it never got one): it is stopped,
                    // unless its runner ended and recorded that since the list was read.
                    _ = try? await ledger.write { [now = clock()] tx in
                        guard let current = try tx.job(id: id), current.status == .stopping else { return }
                        try tx.finishJob(id, status: .stopped, reason: current.reason, exitStatus: nil, at: now)
                    }
                    onJobEnded()
                }
            default:
                break
            }
        }
    }

    /// Follows again the Slurm job a previous berthd started for `job`: the events it wrote
    /// meanwhile are read from the start of its file, and its end recorded when it comes.
    private func reattach(_ job: JobRecord) async {
        guard let id = job.id, let reference = job.slurmJobID else { return }
        do {
            let catalog = try await ledger.read { tx in try tx.units() }
            var launch = RunnerLaunch(argv: [], units: settings.units(job.units, in: catalog), identity: nil, logPath: settings.logPath(jobID: id))
            launch.name = "job-\(id)"
            let process = try await executor.reattach(launch, reference: reference)
            processes[id] = process
            logger.info("following a Slurm job again", metadata: ["job": "\(id)", "slurm_job": "\(reference)"])
            supervision.detach { await self.follow(job, process) }
        } catch {
            logger.error("cannot follow a Slurm job again", metadata: ["job": "\(id)", "slurm_job": "\(reference)", "error": "\(error)"])
            let now = clock()
            _ = try? await ledger.write { tx in
                try tx.finishJob(id, status: .failed, reason: "cannot follow slurm job \(reference) again: \(error)", exitStatus: nil, at: now)
            }
            onJobEnded()
        }
    }

    private func launch(_ job: JobRecord) async {
        guard let id = job.id else { return }
        do {
            let process = try await start(job)
            processes[id] = process
            try await ledger.write { tx in
                try tx.setJobPID(id, pid: process.reference == nil ? process.pid : nil)
                if let reference = process.reference { try tx.setJobSlurmID(id, slurmJobID: reference) }
            }
            logger.info(
                "runner started",
                metadata: [
                    "job": "\(id)", "pid": "\(process.pid)", "units": "\(job.units.joined(separator: ","))",
                    "slurm_job": "\(process.reference ?? "-")",
                ]
            )
            supervision.detach { await self.follow(job, process) }
        } catch {
            logger.error("runner did not start", metadata: ["job": "\(id)", "error": "\(error)"])
            if processes[id] == nil, let folder = outputFolders.removeValue(forKey: id) { close(folder) }
            let now = clock()
            _ = try? await ledger.write { tx in
                try tx.finishJob(id, status: .failed, reason: "runner did not start: \(error)", exitStatus: nil, at: now)
            }
            onJobEnded()
        }
    }

    /// Writes the spec, builds argv and environment, and spawns the runner: as the submitter
    /// when berthd is root, so the kernel checks each file the runner opens with the
    /// submitter's rights, at the moment it opens it; else as berthd, given descriptors of
    /// the job's paths opened again now, with the submitter's rights checked on what was opened.
    private func start(_ job: JobRecord) async throws -> any Runner {
        let id = job.id!
        let kind = job.kind
        let (model, unitRows) = try await ledger.read { tx in (try tx.model(id: job.model), try tx.units()) }
        try FileManager.default.createDirectory(atPath: settings.jobsFolder, withIntermediateDirectories: true)
        var elsewhere = RunnerLaunch(argv: [], units: settings.units(job.units, in: unitRows), identity: nil, logPath: settings.logPath(jobID: id))
        elsewhere.name = "job-\(id)"
        if let folder = try executor.handOverFolder(for: elsewhere) {
            return try await start(job, model: model, launch: elsewhere, handOver: folder)
        }

        let submitter = job.submitter
        var paths = (data: job.data, validation: job.validationData, output: job.output, modelDir: model?.artifactDir)
        // The runner's descriptors from 3 on: the spec first, then what the resolver opened.
        var passed: [Int32] = []
        defer { passed.forEach { close($0) } }
        func pass(_ fd: Int32) -> String {
            passed.append(fd)
            return "/proc/self/fd/\(2 + passed.count)"
        }
        let specFD = try openSpec(id)
        passed.append(specFD)
        let specPath = "/proc/self/fd/3"
        if !settings.runnersActAsCallers {
            let resolver = PathResolver(access: FileAccess(uid: submitter.uid, groups: Set(submitter.groups)), user: submitter.user)
            do throws(PathResolver.Refusal) {
                paths.data = pass(try resolver.openFile(job.data, field: "data"))
                if let validation = job.validationData {
                    paths.validation = pass(try resolver.openFile(validation, field: "validation_data"))
                }
                if let dir = model?.artifactDir {
                    paths.modelDir = pass(try resolver.openFolder(dir, field: "model_dir", bits: 5, create: false))
                }
                let output = try resolver.openFolder(job.output, field: "output", bits: 3, create: true)
                outputFolders[id] = dup(output)
                paths.output = pass(output)
            } catch {
                throw RunnerProcess.SpawnError(description: error.description)
            }
        }

        let spec = JobSpec(
            jobId: id,
            kind: kind.rawValue,
            model: job.model,
            baseModel: job.baseModel,
            modelName: job.modelName,
            hyperparameters: job.hyperparameters,
            dataPath: paths.data,
            validationDataPath: paths.validation,
            outputDir: paths.output,
            modelDir: paths.modelDir,
            seed: UInt64(job.seed),
            units: job.units,
            maxTokens: model?.maxTokens ?? 4096
        )
        try writeSpec(spec, id: id)
        // A fresh log: a ledger started anew reuses job ids, and its job 1 is not the old one.
        unlink(settings.logPath(jobID: id))

        let template = ArgvTemplate(kind == .batchInference ? settings.runners.batch : settings.runners.train)
        let argv = try template.expand([
            "spec": specPath, "job_id": String(id), "output": paths.output, "data": paths.data,
            "model_dir": paths.modelDir ?? "", "model": job.model,
        ])
        let identity = settings.runnersActAsCallers ? submitter : nil
        let units = settings.units(job.units, in: unitRows)
        var launch = RunnerLaunch(
            argv: argv,
            units: units,
            identity: identity,
            logPath: settings.logPath(jobID: id),
            environment: ["BERTH_JOB_ID": String(id), "BERTH_JOB_SPEC": specPath]
        )
        launch.passedDescriptors = passed
        launch.confinement = settings.confinement("job-\(id)", units: units)
        if identity != nil {
            // Made and opened by the runner's own process, as its user, before it starts:
            // a path it may not use fails the job with the path and the reason.
            launch.folders = [("output", job.output)]
            launch.readableFiles = [("data", job.data)] + (job.validationData.map { [("validation_data", $0)] } ?? [])
        }
        return try await executor.start(launch)
    }

    /// A job whose runner runs elsewhere (on Slurm) reads its spec and data by path, from the
    /// folder the executor shares with it, inside the cluster reservation of its berth
    /// reservation; as the submitter when berthd is root (the nodes check its files with their
    /// rights), else as berthd's user.
    private func start(_ job: JobRecord, model: Model?, launch draft: RunnerLaunch, handOver folder: String) async throws -> any Runner {
        let id = job.id!
        let specPath = "\(folder)/spec.json"
        let spec = JobSpec(
            jobId: id,
            kind: job.kind.rawValue,
            model: job.model,
            baseModel: job.baseModel,
            modelName: job.modelName,
            hyperparameters: job.hyperparameters,
            dataPath: job.data,
            validationDataPath: job.validationData,
            outputDir: job.output,
            modelDir: model?.artifactDir,
            seed: UInt64(job.seed),
            units: job.units,
            maxTokens: model?.maxTokens ?? 4096
        )
        try Wire.encoder(pretty: true).encode(spec).write(to: URL(fileURLWithPath: specPath), options: .atomic)
        unlink(settings.logPath(jobID: id))
        let template = ArgvTemplate(job.kind == .batchInference ? settings.runners.batch : settings.runners.train)
        var launch = draft
        launch.argv = try template.expand([
            "spec": specPath, "job_id": String(id), "output": job.output, "data": job.data,
            "model_dir": model?.artifactDir ?? "", "model": job.model,
        ])
        launch.environment = ["BERTH_JOB_ID": String(id), "BERTH_JOB_SPEC": specPath]
        launch.identity = settings.runnersActAsCallers ? job.submitter : nil
        launch.clusterReservation = settings.slurmNaming?.reservation(job.reservationId)
        await settings.prepareCluster?()
        return try await executor.start(launch)
    }

    /// The spec berthd keeps for a job, written anew (never through a link in its place), and
    /// a read-only descriptor of it for the runner: the jobs folder is berthd's own, so the
    /// runner reads the spec as `/proc/self/fd/3` rather than by name.
    private func openSpec(_ id: Int64) throws -> Int32 {
        let path = settings.specPath(jobID: id)
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw APIError(
                .internal,
                "cannot create the job's spec \(path): \(String(cString: strerror(errno))); check that berthd may write to its jobs folder"
            )
        }
        // berthd's umask is 077; the spec it just made is for the runner to read.
        fchmod(fd, 0o644)
        close(fd)
        let reader = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard reader >= 0 else { throw APIError(.internal, "cannot open the job's spec \(path): \(String(cString: strerror(errno)))") }
        return reader
    }

    private func writeSpec(_ spec: JobSpec, id: Int64) throws {
        let fd = open(settings.specPath(jobID: id), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw APIError(.internal, "cannot write the job's spec: \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        try handle.write(contentsOf: try Wire.encoder(pretty: true).encode(spec))
    }

    /// Reads the runner's events into the ledger until it exits, then records the end.
    private func follow(_ job: JobRecord, _ process: any Runner) async {
        let id = job.id!
        let log = FileHandle(forWritingAtPath: settings.logPath(jobID: id))
        var clusterState = job.slurmState
        for await lines in process.lineBatches() {
            if let state = process.clusterState, state != clusterState {
                clusterState = state
                _ = try? await ledger.write { tx in try tx.setJobSlurmState(id, state: state) }
            }
            var events: [RunnerEventValue] = []
            var other: [String] = []
            for line in lines {
                switch RunnerEvent(line: line) {
                case .progress(let fraction): events.append(.progress(fraction))
                case .metric(let name, let step, let epoch, let value): events.append(.metric(name: name, step: step, epoch: epoch, value: value))
                case .usage(let input, let output): events.append(.usage(input: input, output: output))
                case nil: other.append(line)
                }
            }
            // Lines that are not events are the runner's business: they go to its log.
            if !other.isEmpty, let log {
                log.seekToEndOfFile()
                log.write(Data((other.joined(separator: "\n") + "\n").utf8))
            }
            if !events.isEmpty {
                let now = clock()
                let events = events
                // One transaction for a batch of lines: a chatty runner costs one fsync per batch.
                _ = try? await ledger.write { tx in
                    for event in events { try tx.record(event, jobID: id, at: now) }
                }
            }
        }
        try? log?.close()
        // Cancelled (the service is going away): the stop records how the job ended.
        guard let status = await process.exitStatus() else { return }
        if let state = process.clusterState, state != clusterState {
            _ = try? await ledger.write { tx in try tx.setJobSlurmState(id, state: state) }
        }
        await finish(
            job,
            exitStatus: Int(status),
            killedForMemory: process.killedForMemory,
            usage: process.usage,
            verdict: process.verdict,
            outlivesDaemon: process.reference != nil
        )
        processes[id] = nil
        if let folder = outputFolders.removeValue(forKey: id) { close(folder) }
        signalled.remove(id)
        onJobEnded()
    }

    private func finish(
        _ job: JobRecord,
        exitStatus: Int,
        killedForMemory: Bool,
        usage: (cpuSeconds: Double?, peakMemoryBytes: Int64?),
        verdict: RunnerVerdict? = nil,
        outlivesDaemon: Bool = false
    ) async {
        let id = job.id!
        let now = clock()
        // A Slurm job's end is its own even while berthd stops: nothing stopped it.
        let daemonStopping = supervision.isStopping && !outlivesDaemon
        if exitStatus == 0, !daemonStopping, job.kind.customization != nil {
            await writeMetricsFile(job)
        }
        do {
            try await ledger.write { tx in
                guard let current = try tx.job(id: id), !current.status.isTerminal else { return }
                if usage.cpuSeconds != nil || usage.peakMemoryBytes != nil {
                    try tx.setJobResources(id, cpuSeconds: usage.cpuSeconds, peakMemoryBytes: usage.peakMemoryBytes)
                }
                if current.status == .stopping {
                    try tx.finishJob(id, status: .stopped, reason: current.reason, exitStatus: exitStatus, at: now)
                } else if daemonStopping {
                    try tx.finishJob(id, status: .failed, reason: JobEndReason.daemonStop.rawValue, exitStatus: exitStatus, at: now)
                } else if exitStatus != 0 && killedForMemory {
                    try tx.finishJob(id, status: .failed, reason: JobEndReason.outOfMemory.rawValue, exitStatus: exitStatus, at: now)
                } else if case .cancelled(let reason) = verdict {
                    try tx.finishJob(id, status: .stopped, reason: reason, exitStatus: exitStatus, at: now)
                } else if case .failed(let reason) = verdict {
                    try tx.finishJob(id, status: .failed, reason: reason, exitStatus: exitStatus, at: now)
                } else if exitStatus != 0 {
                    try tx.finishJob(id, status: .failed, reason: "exit status \(exitStatus); see berth logs \(id)", exitStatus: exitStatus, at: now)
                } else {
                    try Self.complete(current, tx: tx, now: now)
                }
            }
        } catch {
            logger.error("cannot record the end of a job", metadata: ["job": "\(id)", "error": "\(error)"])
        }
        logger.info("runner exited", metadata: ["job": "\(id)", "status": "\(exitStatus)"])
    }

    /// A completed training job registers its custom model and leaves `metrics.csv` beside it.
    static func complete(_ job: JobRecord, tx: LedgerTransaction, now: Date) throws {
        let id = job.id!
        let metrics = try tx.metrics(jobID: id)
        if let customization = job.kind.customization, let name = job.modelName {
            guard try !tx.modelIDTaken(name) else {
                try tx.finishJob(
                    id,
                    status: .failed,
                    reason: "a model named \(name) appeared meanwhile; resubmit with another --model-name",
                    exitStatus: 0,
                    at: now
                )
                return
            }
            guard let base = try tx.model(id: job.baseModel) else {
                try tx.finishJob(id, status: .failed, reason: "base model \(job.baseModel) is no longer in the catalog", exitStatus: 0, at: now)
                return
            }
            var final: [String: Double] = [:]
            final["training_loss"] = metrics.last(where: { $0.trainingLoss != nil })?.trainingLoss
            final["validation_loss"] = metrics.last(where: { $0.validationLoss != nil })?.validationLoss
            try tx.registerCustomModel(
                Model.custom(
                    id: name,
                    base: base,
                    owner: job.owner,
                    customization: customization,
                    artifactDir: job.output,
                    finalMetrics: final,
                    jobID: id,
                    createdAt: now
                ),
                now: now
            )
        }
        try tx.finishJob(id, status: .completed, reason: nil, exitStatus: 0, at: now)
    }

    /// `metrics.csv` in a training job's output folder, written with the submitter's rights:
    /// as them (their file-system identity, on this thread only) when berthd is root, else
    /// through the output folder opened again as `PathResolver` does. A folder the submitter
    /// can no longer write gets no file, and the log says why; the job still completes.
    private func writeMetricsFile(_ job: JobRecord) async {
        guard let id = job.id, let metrics = try? await ledger.read({ tx in try tx.metrics(jobID: id) }) else { return }
        var csv = "step,epoch,training_loss,validation_loss\n"
        for point in metrics {
            csv +=
                "\(point.step),\(point.epoch.map(String.init) ?? ""),\(point.trainingLoss.map { "\($0)" } ?? ""),\(point.validationLoss.map { "\($0)" } ?? "")\n"
        }
        let bytes = Array(csv.utf8)
        let submitter = job.submitter
        let failure: String?
        if settings.runnersActAsCallers {
            let groups = submitter.groups.map { gid_t($0) }
            let code = berth_write_file_as(
                uid_t(submitter.uid),
                gid_t(submitter.gid),
                groups,
                Int32(groups.count),
                job.output + "/metrics.csv",
                bytes,
                bytes.count,
                0o644
            )
            failure = code == 0 ? nil : String(cString: strerror(code))
        } else if let folder = outputFolders[id] {
            failure = Self.writeFile(bytes, name: "metrics.csv", in: folder)
        } else if job.slurmJobID != nil {
            // Its runner ran as berthd's own user on the cluster and made the folder as that user.
            let folder = open(job.output, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            failure = folder < 0 ? String(cString: strerror(errno)) : Self.writeFile(bytes, name: "metrics.csv", in: folder)
            if folder >= 0 { close(folder) }
        } else {
            failure = "the output folder was not opened when the job started"
        }
        if let failure {
            logger.warning(
                "cannot write metrics.csv in the job's output folder",
                metadata: ["job": "\(id)", "output": "\(job.output)", "error": "\(failure)"]
            )
        }
    }

    /// Writes a new file `name` into the folder open as `dir`, following no link at `name`.
    static func writeFile(_ bytes: [UInt8], name: String, in dir: Int32) -> String? {
        if unlinkat(dir, name, 0) != 0 && errno != ENOENT { return String(cString: strerror(errno)) }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        fchmod(fd, 0o644)
        var offset = 0
        while offset < bytes.count {
            let wrote = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if wrote < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            offset += wrote
        }
        return nil
    }
}

extension JobRecord {
    /// Who submitted the job, as the kernel reported the connection, with their groups now.
    var submitter: RunnerIdentity { RunnerIdentity.of(uid: UInt32(callerUid), gid: UInt32(callerGid)) }
}
