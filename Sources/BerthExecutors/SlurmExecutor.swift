import BerthCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runners as Slurm jobs: each is a generated batch script submitted with `sbatch` inside the
/// reservation berthd made for its units, writing its JSON Lines events to a file in the folder
/// the nodes share with berthd, which berthd reads as it grows. Unlike a local runner it
/// outlives berthd: the ledger keeps its Slurm job id, and a restarted berthd follows it again.
public struct SlurmExecutor: RunnerExecutor {
    public var commands: SlurmCommands
    public var partition: String
    public var account: String?
    /// Seen at the same path by berthd and every node.
    public var sharedFolder: String
    public var naming: SlurmNaming
    /// Where a runner named without a path is looked for, as `LocalExecutor` does: nodes are
    /// expected to have it at the same path (installed there, or on the shared folder).
    public var runnerFolders: [String]
    public var ledgerPath: String
    public let queue: SlurmQueue

    public init(
        commands: SlurmCommands,
        partition: String,
        account: String?,
        sharedFolder: String,
        naming: SlurmNaming,
        runnerFolders: [String],
        ledgerPath: String,
        pollInterval: Duration
    ) {
        self.commands = commands
        self.partition = partition
        self.account = account
        self.sharedFolder = sharedFolder
        self.naming = naming
        self.runnerFolders = runnerFolders
        self.ledgerPath = ledgerPath
        queue = SlurmQueue(commands: commands, interval: pollInterval)
    }

    /// berthd's folder on the shared file system: its own, readable by all so that jobs run as
    /// their users reach their own folders in it.
    var berthFolder: String { "\(sharedFolder)/\(naming.prefix.dropLast())" }

    /// A runner's own folder on the shared file system.
    func folder(_ name: String) -> String { "\(berthFolder)/\(name)" }

    public func handOverFolder(for launch: RunnerLaunch) throws -> String? {
        guard let name = launch.name else { throw RunnerProcess.SpawnError(description: "a Slurm runner needs a name") }
        let folder = folder(name)
        do {
            try FileManager.default.createDirectory(atPath: berthFolder, withIntermediateDirectories: true)
            // berthd's umask (077) would leave it closed to the users its jobs run as.
            chmod(berthFolder, 0o755)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            // Its own folder is for its user alone, whatever berthd's umask: the batch script
            // in it holds a serve job's token.
            chmod(folder, 0o700)
        } catch {
            throw RunnerProcess.SpawnError(
                description: "cannot make \(folder) in [executors.slurm] shared_folder: \(error); check that berthd may write there"
            )
        }
        return folder
    }

    public func start(_ launch: RunnerLaunch) async throws -> any Runner {
        guard let name = launch.name, let folder = try handOverFolder(for: launch) else {
            throw RunnerProcess.SpawnError(description: "a Slurm runner needs a name")
        }
        let jobName = naming.job(name)
        let files = SlurmRunner.Files(folder: folder, log: launch.logPath, serves: launch.servePort != nil)
        // A berthd killed between sbatch and its ledger write must not submit the job again:
        // one that runs under this name already is followed instead.
        let owner = launch.identity?.uid ?? geteuid()
        if let found = try await queue.liveJob(named: jobName, uid: owner) {
            return SlurmRunner(id: found, files: files, queue: queue, commands: commands, resumed: true)
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let program = launch.argv.first, let executable = RunnerProcess.resolve(program, preferring: runnerFolders, path: path) else {
            throw RunnerProcess.SpawnError(description: "runner '\(launch.argv.first ?? "")' not found; check [runners] in the config")
        }
        let (nodes, gpus, cpus) = SlurmText.placement(launch.units)
        guard !nodes.isEmpty else { throw RunnerProcess.SpawnError(description: "none of the units \(launch.units.map(\.id)) is on a Slurm node") }
        var environment = [
            "PATH": path, "LANG": "C.UTF-8", "BERTH_UNITS": launch.units.map(\.id).joined(separator: ","), "BERTH_LEDGER": ledgerPath,
            // Slurm's, not berthd's: a restarted berthd on the same host leaves it to Slurm.
            "BERTH_EXECUTOR": "slurm",
        ]
        if let identity = launch.identity { environment.merge(identity.environment) { _, new in new } }
        environment.merge(launch.environment) { _, new in new }
        let script = SlurmText.batchScript(
            argv: [executable] + launch.argv.dropFirst(),
            environment: environment,
            gpus: gpus > 0,
            addressFile: launch.servePort != nil ? files.address : nil,
            port: launch.servePort
        )
        for stale in [files.events, files.errors, files.address] { unlink(stale) }
        let scriptPath = "\(folder)/run.sh"
        do {
            try Data(script.utf8).write(to: URL(fileURLWithPath: scriptPath), options: .atomic)
            // sbatch reads it as berthd and Slurm runs its own copy: nobody else need read it.
            chmod(scriptPath, 0o700)
            // Made now, so berthd can follow them from the first byte the job writes; made
            // anew (never through a link a job of this folder's user left in their place).
            for path in [files.events, files.errors] {
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                close(fd)
            }
        } catch {
            throw RunnerProcess.SpawnError(description: "cannot write the batch script \(scriptPath): \(error)")
        }
        if let identity = launch.identity { try Self.handOver(folder, to: identity) }
        var arguments = [
            "--parsable", "--no-requeue", "--job-name=\(jobName)", "--partition=\(partition)",
            "--nodes=\(nodes.count)", "--ntasks-per-node=1", "--nodelist=\(nodes.joined(separator: ","))",
            "--output=\(files.events)", "--error=\(files.errors)", "--chdir=\(folder)", "--export=NONE", "--open-mode=append",
        ]
        // As root, the job runs as the user it is for (sbatch drops to them once the job has
        // its nodes), so the nodes check every file it opens with that user's rights.
        if let identity = launch.identity { arguments += ["--uid=\(identity.uid)", "--gid=\(identity.gid)"] }
        if let account { arguments.append("--account=\(account)") }
        if let reservation = launch.clusterReservation { arguments.append("--reservation=\(reservation)") }
        if gpus > 0 { arguments.append("--gres=gpu:\(gpus)") }
        if let cpus { arguments.append("--cpus-per-task=\(cpus)") }
        arguments.append(scriptPath)
        let output: String
        do {
            output = try await commands.call(commands.sbatch, arguments)
        } catch {
            throw RunnerProcess.SpawnError(description: "sbatch refused the job: \(error.message)")
        }
        guard let id = SlurmText.submittedID(output) else {
            throw RunnerProcess.SpawnError(description: "sbatch printed no job id: \(output.prefix(200))")
        }
        return SlurmRunner(id: id, files: files, queue: queue, commands: commands, resumed: false)
    }

    /// Gives the runner's folder and what berthd wrote in it to `identity`, without following
    /// a link: the folder may be theirs from an earlier run.
    static func handOver(_ folder: String, to identity: RunnerIdentity) throws {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for entry in entries {
            guard fchownat(AT_FDCWD, "\(folder)/\(entry)", identity.uid, identity.gid, AT_SYMLINK_NOFOLLOW) == 0 || errno == ENOENT else {
                throw RunnerProcess.SpawnError(description: "cannot give \(folder)/\(entry) to \(identity.user): \(String(cString: strerror(errno)))")
            }
        }
        guard lchown(folder, identity.uid, identity.gid) == 0 else {
            throw RunnerProcess.SpawnError(
                description:
                    "cannot give \(folder) to \(identity.user): \(String(cString: strerror(errno))); the shared folder must let root change owners (no root_squash)"
            )
        }
    }

    public func reattach(_ launch: RunnerLaunch, reference: String) async throws -> any Runner {
        guard let name = launch.name else { throw RunnerProcess.SpawnError(description: "a Slurm runner needs a name") }
        let files = SlurmRunner.Files(folder: folder(name), log: launch.logPath, serves: launch.servePort != nil)
        return SlurmRunner(id: reference, files: files, queue: queue, commands: commands, resumed: true)
    }

    /// Cancels the jobs of this berthd whose names start with `prefix + namePrefix` but for
    /// those named in `keeping`: serve jobs a previous berthd left for reservations that are
    /// no longer live (the others are followed again), never job runners.
    public func cancelLeftovers(namedFrom namePrefix: String, keeping: Set<String>) async -> [String] {
        let kept = Set(keeping.map { naming.job($0) })
        let jobs = ((try? await queue.liveJobs(namedFrom: naming.prefix + namePrefix)) ?? []).filter { !kept.contains($0.name) }.map(\.id)
        if !jobs.isEmpty { _ = try? await commands.call(commands.scancel, jobs) }
        return jobs
    }
}

/// The state of every Slurm job berthd follows, from one `squeue` for all of them at most
/// every `interval`: callers that ask meanwhile share the last answer or the one on its way.
public actor SlurmQueue {
    private let commands: SlurmCommands
    private let interval: Duration
    private var last: (at: ContinuousClock.Instant, jobs: [String: SlurmText.QueuedJob])?
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var polling = false
    /// Ends read from `sacct` for jobs gone from `squeue`: final, so asked once.
    private var settled: [String: SlurmJobState] = [:]

    init(commands: SlurmCommands, interval: Duration) {
        self.commands = commands
        self.interval = interval
    }

    /// The state of job `id`, followed since `since`; `nil` while it is not known yet (a
    /// controller that does not answer, or a listing older than the job) — never an end.
    public func state(of id: String, since: ContinuousClock.Instant) async -> SlurmJobState? {
        if let final = settled[id] { return final }
        guard let jobs = await jobs() else { return nil }
        if let job = jobs[id] { return job.state }
        // A listing begun before berthd submitted or found the job says nothing of it.
        guard let listed = last?.at, listed > since else { return nil }
        // Gone from squeue: MinJobAge after its end, or never known. sacct has the final word;
        // without it the end is unknown, never success.
        let final: SlurmJobState
        do {
            let output = try await commands.call(commands.sacct, ["-n", "-P", "-X", "-j", id, "-o", "JobID,State,ExitCode"])
            if let line = output.split(whereSeparator: \.isNewline).compactMap({ SlurmText.accountingLine($0) }).first(where: { $0.id == id }) {
                final = line.state
            } else {
                final = .unknown("gone from squeue, and sacct has no record of it")
            }
        } catch {
            final = .unknown("gone from squeue, and sacct cannot say how it ended (\(error.message))")
        }
        settled[id] = final
        return final
    }

    /// A job named `name` that runs as `uid` and has not ended, if any: the user matters, as
    /// anyone may name a job like one of berthd's.
    func liveJob(named name: String, uid: UInt32) async throws(SlurmCommands.Failure) -> String? {
        let jobs = try await fetch()
        return jobs.first { $0.value.name == name && $0.value.uid == uid && !$0.value.state.hasEnded }?.key
    }

    /// Jobs named from `prefix` that have not ended, whoever runs them: serve jobs run as the
    /// service user or a custom model's owner (one that only looks like ours is cancelled
    /// with them, and was its owner's to lose).
    func liveJobs(namedFrom prefix: String) async throws(SlurmCommands.Failure) -> [(id: String, name: String)] {
        try await fetch().filter { $0.value.name.hasPrefix(prefix) && !$0.value.state.hasEnded }.map { ($0.key, $0.value.name) }
            .sorted { $0.id < $1.id }
    }

    /// The last answer if it is fresh, else a new one (shared with whoever asks meanwhile).
    private func jobs() async -> [String: SlurmText.QueuedJob]? {
        if let last, ContinuousClock.now - last.at < interval { return last.jobs }
        if polling {
            await withCheckedContinuation { waiting.append($0) }
            return last?.jobs
        }
        polling = true
        defer {
            polling = false
            let woken = waiting
            waiting = []
            for continuation in woken { continuation.resume() }
        }
        return try? await fetch()
    }

    /// Every job `squeue` still lists, ended ones included, of every user: berthd's jobs run as
    /// the users they are for.
    private func fetch() async throws(SlurmCommands.Failure) -> [String: SlurmText.QueuedJob] {
        let began = ContinuousClock.now
        let output = try await commands.call(
            commands.squeue,
            ["-h", "-t", "all", "-O", "JobID:|,State:|,Reason:|,exit_code:|,Name:|,UserID:|"]
        )
        var jobs: [String: SlurmText.QueuedJob] = [:]
        for line in output.split(whereSeparator: \.isNewline) {
            if let job = SlurmText.queueLine(line) { jobs[job.id] = job }
        }
        last = (began, jobs)
        return jobs
    }
}

/// A runner submitted to Slurm, followed through its files on the shared folder and `squeue`.
public final class SlurmRunner: Runner {
    struct Files: Sendable {
        var events: String
        var errors: String
        var address: String
        /// berthd's own log of the job: the runner's stderr is copied there as it comes.
        var log: String

        init(folder: String, log: String, serves: Bool) {
            events = "\(folder)/events.jsonl"
            errors = "\(folder)/stderr.log"
            address = "\(folder)/address"
            self.log = log
        }
    }

    private struct Progress {
        var state: SlurmJobState?
        var eventsOffset: UInt64 = 0
        var errorsOffset: UInt64 = 0
        var partial = Data()
        var shownState: String?
        var drained = false
        /// berthd is stopping and leaves the job to the next berthd.
        var abandoned = false
    }

    public let id: String
    let files: Files
    private let queue: SlurmQueue
    private let commands: SlurmCommands
    private let progress = Mutex(Progress())
    /// When berthd submitted or found it: only a listing begun after this may say it is gone.
    private let followedSince = ContinuousClock.now
    /// How often its files are read for new lines while it runs.
    private let tail: Duration = .milliseconds(200)

    init(id: String, files: Files, queue: SlurmQueue, commands: SlurmCommands, resumed: Bool) {
        self.id = id
        self.files = files
        self.queue = queue
        self.commands = commands
        if !resumed {
            // A fresh job's stderr starts a fresh copy; a resumed one's continues where the log is.
            progress.withLock { $0.errorsOffset = 0 }
        } else {
            let copied = (try? FileManager.default.attributesOfItem(atPath: files.log)[.size] as? UInt64) ?? 0
            progress.withLock { $0.errorsOffset = copied }
        }
    }

    public var pid: Int32 { 0 }
    public var reference: String? { id }

    /// What `squeue` showed last (`PENDING: Resources`), for `berth jobs ID`.
    public var clusterState: String? { progress.withLock { $0.state?.shown } }

    /// The state last seen, asking `squeue` (through the shared queue) for a newer one.
    private func refresh() async -> SlurmJobState? {
        if let state = await queue.state(of: id, since: followedSince) {
            progress.withLock { $0.state = state }
        }
        return progress.withLock { $0.state }
    }

    /// Its stdout lines as the job writes them to the shared folder; an empty batch when the
    /// state Slurm shows changes (so the follower can record it). Ends once the job has ended
    /// and every line it wrote has been read.
    public func lineBatches() -> AsyncStream<[String]> {
        AsyncStream(unfolding: { [self] in
            while !Task.isCancelled && !progress.withLock({ $0.abandoned }) {
                let lines = readLines()
                if !lines.isEmpty { return lines }
                let (ended, drained) = progress.withLock { ($0.state?.hasEnded ?? false, $0.drained) }
                if ended {
                    // One last read after the end was seen: the job wrote nothing after it.
                    if drained { return nil }
                    progress.withLock { $0.drained = true }
                    let last = readLines(final: true)
                    return last.isEmpty ? nil : last
                }
                let before = progress.withLock { $0.shownState }
                let state = await refresh()
                if let state, state.shown != before {
                    progress.withLock { $0.shownState = state.shown }
                    if !state.hasEnded { return [] }
                    continue
                }
                if (try? await Task.sleep(for: tail)) == nil { return nil }
            }
            return nil
        })
    }

    /// New complete lines of its events file, and its new stderr appended to berthd's log.
    private func readLines(final: Bool = false) -> [String] {
        copyErrors()
        let (offset, partial) = progress.withLock { ($0.eventsOffset, $0.partial) }
        guard let handle = Self.openJobFile(files.events) else { return [] }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.readToEnd()) ?? Data()
        var buffer = partial + data
        var lines: [String] = []
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
            buffer = Data(buffer[buffer.index(after: newline)...])
        }
        if final, !buffer.isEmpty {
            lines.append(String(decoding: buffer, as: UTF8.self))
            buffer = Data()
        }
        progress.withLock {
            $0.eventsOffset = offset + UInt64(data.count)
            $0.partial = buffer
        }
        return lines
    }

    private func copyErrors() {
        let offset = progress.withLock { $0.errorsOffset }
        guard let source = Self.openJobFile(files.errors) else { return }
        defer { try? source.close() }
        try? source.seek(toOffset: offset)
        guard let data = try? source.readToEnd(), !data.isEmpty else { return }
        if !FileManager.default.fileExists(atPath: files.log) { _ = FileManager.default.createFile(atPath: files.log, contents: nil) }
        if let log = FileHandle(forWritingAtPath: files.log) {
            log.seekToEndOfFile()
            log.write(data)
            try? log.close()
        }
        progress.withLock { $0.errorsOffset = offset + UInt64(data.count) }
    }

    /// A file the job writes, for reading. The job's folder is its user's, who may put a link
    /// or a hard link to a file only root may read in a file's place; berthd (often root)
    /// would then copy it into a log that user reads. So: a regular file, one name, no link.
    static func openJobFile(_ path: String) -> FileHandle? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1 else {
            close(fd)
            return nil
        }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// SIGTERM (and any signal but SIGKILL) goes to the job's processes with `scancel
    /// --signal --full`, the batch script's included; SIGKILL cancels the job.
    public func signalGroup(_ signal: Int32) {
        let arguments = signal == SIGKILL ? [id] : ["--signal=\(Self.signalName(signal))", "--full", id]
        _ = try? commands.run(commands.scancel, arguments)
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "TERM"
        case SIGINT: "INT"
        case SIGSTOP: "STOP"
        case SIGCONT: "CONT"
        case SIGHUP: "HUP"
        default: String(signal)
        }
    }

    public func stopFollowing() {
        progress.withLock { $0.abandoned = true }
    }

    public func exitStatus() async -> Int32? {
        while !Task.isCancelled && !progress.withLock({ $0.abandoned }) {
            if let state = await refresh(), state.hasEnded { return state.exitStatus }
            if (try? await Task.sleep(for: tail)) == nil { return nil }
        }
        return nil
    }

    public var hasExited: Bool { progress.withLock { $0.state?.hasEnded ?? false } }

    public var killedForMemory: Bool {
        progress.withLock {
            if case .failed(let state, _, _) = $0.state { return state == "OUT_OF_MEMORY" }
            return false
        }
    }

    public var usage: (cpuSeconds: Double?, peakMemoryBytes: Int64?) { (nil, nil) }

    public var verdict: RunnerVerdict? { progress.withLock { $0.state }?.verdict(jobID: id) }

    /// The host and port a serve job said it listens on, once it has said so.
    public var address: (host: String, port: Int)? {
        guard let data = try? Self.openJobFile(files.address)?.readToEnd(), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let port = Int(parts[1]) else { return nil }
        return (String(parts[0]), port)
    }
}
