import BerthCore
public import BerthConfig
import BerthCore
import BerthRunner
public import BerthStore
import BerthWire
public import Foundation
public import Logging
public import ServiceLifecycle
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
    /// Folders searched for a runner named without a path before `PATH`: berthd's own folder,
    /// so the shipped config finds the `berth-runner` built beside it.
    public var runnerFolders: [String]
    /// Given to every runner as `BERTH_LEDGER`, so a restarted berthd can find the ones a
    /// predecessor that died left behind.
    public var ledgerPath: String = ""

    public init(runners: DaemonConfig.Runners, limits: DaemonConfig.Limits, logDirectory: String, stopGrace: Duration, runnerFolders: [String]) {
        self.runners = runners
        self.limits = limits
        self.logDirectory = logDirectory
        self.stopGrace = stopGrace
        self.runnerFolders = runnerFolders
    }

    var jobsFolder: String { logDirectory + "/jobs" }

    /// Starts a runner (a job's or a serve process) from its expanded argv, with the
    /// environment every runner gets: its units and their devices, and the ledger it belongs to.
    func spawn(
        _ argv: [String], units: [String], catalog: [ComputeUnit], home: String, logPath: String, extra: [String: String]
    ) throws -> RunnerProcess {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let program = argv.first, let executable = RunnerProcess.resolve(program, preferring: runnerFolders, path: path) else {
            throw APIError(.internal, "runner '\(argv.first ?? "")' not found; check [runners] in the config")
        }
        let byID = Dictionary(catalog.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let devices = units.compactMap { byID[$0]?.device }.map(String.init).joined(separator: ",")
        var environment = [
            "PATH": path, "LANG": "C.UTF-8", "HOME": home,
            "BERTH_UNITS": units.joined(separator: ","), "BERTH_DEVICES": devices, "BERTH_LEDGER": ledgerPath,
        ]
        // GPU units are handed to CUDA by index; CPU slices have nothing to hide.
        if units.contains(where: { (byID[$0]?.kind ?? "cpu") != "cpu" }) { environment["CUDA_VISIBLE_DEVICES"] = devices }
        environment.merge(extra) { _, new in new }
        return try RunnerProcess(executable: executable, arguments: Array(argv.dropFirst()), environment: environment, logPath: logPath)
    }
    func logPath(jobID: Int64) -> String { "\(jobsFolder)/\(jobID).log" }
    func specPath(jobID: Int64) -> String { "\(jobsFolder)/\(jobID).spec.json" }
}

/// Starts the runner of every job the planner marked running, feeds its events into the
/// ledger, stops it when asked, and records how it ended.
public actor JobSupervisor: Service {
    private let ledger: Ledger
    private let settings: JobSettings
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let doorbell = Doorbell()
    private var processes: [Int64: RunnerProcess] = [:]
    /// Jobs already sent SIGTERM, so the signal (and the SIGKILL after the grace) is sent once.
    private var signalled: Set<Int64> = []
    private var shuttingDown = false
    /// Called when a job ends: its units are free for the next in its queue.
    private let onJobEnded: @Sendable () -> Void

    public init(ledger: Ledger, settings: JobSettings, clock: @escaping @Sendable () -> Date, logger: Logger,
                onJobEnded: @escaping @Sendable () -> Void) {
        self.ledger = ledger
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.onJobEnded = onJobEnded
    }

    public nonisolated func wake() {
        Task { await doorbell.ring() }
    }

    /// Before serving: jobs the ledger says are running belong to a berthd that is gone. Their
    /// runners, if any survived, are killed; the jobs failed with `daemon-restart`.
    public static func reconcileAfterRestart(ledger: Ledger, now: Date, logger: Logger) throws {
        // Job runners and serve processes of this ledger that outlived their berthd: each
        // carries BERTH_LEDGER, so a recycled pid is never mistaken for one.
        for pid in RunnerProcess.orphans(ledgerPath: ledger.path) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            logger.warning("killed a runner left by the previous berthd", metadata: ["pid": "\(pid)"])
        }
        let orphans = try ledger.readNow { tx in try tx.runningJobs() }
        try ledger.writeNow { tx in
            for job in orphans {
                if let id = job.id { try tx.finishJob(id, status: .failed, reason: "daemon-restart", exitStatus: nil, at: now) }
            }
        }
    }

    public func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                while !self.shuttingDown {
                    await self.reconcile()
                    await self.doorbell.wait(timeout: .seconds(2))
                }
            } onGracefulShutdown: {
                Task { await self.beginShutdown() }
            }
        } onCancel: {
            Task { await self.beginShutdown() }
        }
        await stopAll()
    }

    private func beginShutdown() async {
        shuttingDown = true
        await doorbell.ring()
    }

    /// A clean stop leaves no runner behind: each gets SIGTERM, then SIGKILL after the grace
    /// period, and its job ends `failed` with `daemon-stop` (it did not finish; resubmit it),
    /// or `stopped` if a stop was asked for. A job the ledger shows running whose runner was not
    /// started yet ends the same way: no job is left running with nothing running it. (The
    /// scheduler has stopped before this, so no queued job starts meanwhile.)
    private func stopAll() async {
        if !processes.isEmpty {
            logger.info("stopping runners", metadata: ["count": "\(processes.count)"])
            for process in processes.values { process.signalGroup(SIGTERM) }
            let deadline = ContinuousClock.now + settings.stopGrace
            while processes.values.contains(where: { !$0.hasExited }) && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            for process in processes.values where !process.hasExited { process.signalGroup(SIGKILL) }
        }
        let now = clock().wholeSeconds
        _ = try? await ledger.write { tx in
            for job in try tx.liveJobs() where job.jobStatus != .queued {
                guard let id = job.id else { continue }
                if job.jobStatus == .stopping {
                    try tx.finishJob(id, status: .stopped, reason: job.reason, exitStatus: nil, at: now)
                } else {
                    try tx.finishJob(id, status: .failed, reason: "daemon-stop", exitStatus: nil, at: now)
                }
            }
        }
    }

    /// Makes processes match the ledger: start what should run, signal what should stop.
    private func reconcile() async {
        guard !shuttingDown else { return }
        let jobs: [JobRecord]
        do {
            jobs = try await ledger.read { tx in try tx.runningJobs() }
        } catch {
            logger.error("cannot read jobs", metadata: ["error": "\(error)"])
            return
        }
        for job in jobs {
            guard let id = job.id else { continue }
            switch job.jobStatus {
            case .running where processes[id] == nil:
                // The list was read before the awaits of this loop: meanwhile this job's runner
                // may have exited and its end been recorded. Only a job still running and
                // without a runner gets one, never a second run of a finished job.
                guard let current = try? await ledger.read({ tx in try tx.job(id: id) }),
                      current.jobStatus == .running, processes[id] == nil else { continue }
                await launch(current)
            case .stopping:
                if let process = processes[id] {
                    if !signalled.contains(id) {
                        signalled.insert(id)
                        process.signalGroup(SIGTERM)
                        let grace = settings.stopGrace
                        Task {
                            try? await Task.sleep(for: grace)
                            process.signalGroup(SIGKILL)
                        }
                    }
                } else {
                    // Nothing runs it (its start failed, or it never got one): it is stopped,
                    // unless its runner ended and recorded that since the list was read.
                    _ = try? await ledger.write { [now = clock().wholeSeconds] tx in
                        guard let current = try tx.job(id: id), current.jobStatus == .stopping else { return }
                        try tx.finishJob(id, status: .stopped, reason: current.reason, exitStatus: nil, at: now)
                    }
                    onJobEnded()
                }
            default:
                break
            }
        }
    }

    private func launch(_ job: JobRecord) async {
        guard let id = job.id else { return }
        do {
            let process = try await start(job)
            processes[id] = process
            try await ledger.write { tx in try tx.setJobPID(id, pid: process.pid) }
            logger.info("runner started", metadata: ["job": "\(id)", "pid": "\(process.pid)", "units": "\(job.units.joined(separator: ","))"])
            Task { await self.follow(job, process) }
        } catch {
            logger.error("runner did not start", metadata: ["job": "\(id)", "error": "\(error)"])
            let now = clock().wholeSeconds
            _ = try? await ledger.write { tx in
                try tx.finishJob(id, status: .failed, reason: "runner did not start: \(error)", exitStatus: nil, at: now)
            }
            onJobEnded()
        }
    }

    /// Writes the spec, builds argv and environment, and spawns the runner.
    private func start(_ job: JobRecord) async throws -> RunnerProcess {
        let id = job.id!
        let kind = job.jobKind
        let (model, unitRows) = try await ledger.read { tx in (try tx.model(id: job.model), try tx.units()) }
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: settings.jobsFolder, withIntermediateDirectories: true)
        // Outputs are the submitter's to read, whatever berthd's own umask (077) is.
        try fileManager.createDirectory(atPath: job.output, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        if getuid() == 0 { chown(job.output, uid_t(job.callerUid), gid_t(job.callerGid)) }

        let spec = JobSpec(
            jobId: id, kind: kind.rawValue, model: job.model, baseModel: job.baseModel, modelName: job.modelName,
            hyperparameters: job.hyperparameters,
            dataPath: job.data, validationDataPath: job.validationData, outputDir: job.output,
            modelDir: model?.artifactDir, seed: UInt64(job.seed), units: job.units, maxTokens: model?.maxTokens ?? 4096)
        try Wire.encoder(pretty: true).encode(spec).write(to: URL(fileURLWithPath: settings.specPath(jobID: id)))
        // A fresh log: a ledger started anew reuses job ids, and its job 1 is not the old one.
        guard FileManager.default.createFile(atPath: settings.logPath(jobID: id), contents: nil) else {
            throw APIError(.internal, "cannot create the job's log \(settings.logPath(jobID: id)); check that berthd may write to its jobs folder")
        }

        let template = ArgvTemplate(kind == .batchInference ? settings.runners.batch : settings.runners.train)
        let argv = try template.expand([
            "spec": settings.specPath(jobID: id), "job_id": String(id), "output": job.output, "data": job.data,
            "model_dir": model?.artifactDir ?? "", "model": job.model,
        ])
        return try settings.spawn(
            argv, units: job.units, catalog: unitRows, home: settings.jobsFolder, logPath: settings.logPath(jobID: id),
            extra: ["BERTH_JOB_ID": String(id), "BERTH_JOB_SPEC": settings.specPath(jobID: id)])
    }

    /// Reads the runner's events into the ledger until it exits, then records the end.
    private func follow(_ job: JobRecord, _ process: RunnerProcess) async {
        let id = job.id!
        let log = FileHandle(forWritingAtPath: settings.logPath(jobID: id))
        for await lines in process.lineBatches() {
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
                let now = clock().wholeSeconds
                let events = events
                // One transaction for a batch of lines: a chatty runner costs one fsync per batch.
                _ = try? await ledger.write { tx in
                    for event in events { try tx.record(event, jobID: id, at: now) }
                }
            }
        }
        try? log?.close()
        let status = await process.exitStatus()
        await finish(job, exitStatus: Int(status))
        processes[id] = nil
        signalled.remove(id)
        onJobEnded()
    }

    private func finish(_ job: JobRecord, exitStatus: Int) async {
        let id = job.id!
        let now = clock().wholeSeconds
        if getuid() == 0 { Self.chownTree(job.output, uid: uid_t(job.callerUid), gid: gid_t(job.callerGid)) }
        let daemonStopping = shuttingDown
        do {
            try await ledger.write { tx in
                guard let current = try tx.job(id: id), !current.jobStatus.isTerminal else { return }
                if current.jobStatus == .stopping {
                    try tx.finishJob(id, status: .stopped, reason: current.reason, exitStatus: exitStatus, at: now)
                } else if daemonStopping {
                    try tx.finishJob(id, status: .failed, reason: "daemon-stop", exitStatus: exitStatus, at: now)
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
        if let customization = job.jobKind.customization, let name = job.modelName {
            guard try !tx.modelIDTaken(name) else {
                try tx.finishJob(id, status: .failed, reason: "a model named \(name) appeared meanwhile; resubmit with another --model-name", exitStatus: 0, at: now)
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
                Model.custom(id: name, base: base, owner: job.owner, customization: customization, artifactDir: job.output,
                             finalMetrics: final, jobID: id, createdAt: now),
                now: now)
            var csv = "step,epoch,training_loss,validation_loss\n"
            for point in metrics {
                csv += "\(point.step),\(point.epoch.map(String.init) ?? ""),\(point.trainingLoss.map { "\($0)" } ?? ""),\(point.validationLoss.map { "\($0)" } ?? "")\n"
            }
            let path = job.output + "/metrics.csv"
            try Data(csv.utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o644)
            if getuid() == 0 { chown(path, uid_t(job.callerUid), gid_t(job.callerGid)) }
        }
        try tx.finishJob(id, status: .completed, reason: nil, exitStatus: 0, at: now)
    }

    /// Hands a job's output folder to the user who asked for it.
    static func chownTree(_ root: String, uid: uid_t, gid: gid_t) {
        chown(root, uid, gid)
        guard let walker = FileManager.default.enumerator(atPath: root) else { return }
        for case let relative as String in walker {
            lchown(root + "/" + relative, uid, gid)
        }
    }
}
