import CBerthSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A runner started by berthd: its own process group (so stopping it reaches its children),
/// stdout read line by line, stderr appended to the job's log, no shell; as the user it acts
/// for when berthd is root, so the kernel checks every file it opens.
public final class RunnerProcess: Sendable {
    public let pid: Int32
    let cgroup: RunnerCgroup?
    /// Shared with the reader and waiter threads (a class: mutexes cannot be captured).
    private final class Shared: Sendable {
        let pending = Mutex<(lines: [String], finished: Bool)>(([], false))
        /// The exit status once known, and who waits for it (by a number, so a waiter that
        /// is cancelled can take itself off).
        let exit = Mutex<(status: Int32?, waiters: [Int: CheckedContinuation<Int32?, Never>], next: Int)>((nil, [:], 0))
        /// From its cgroup, read as it ended.
        let ending = Mutex<(killedForMemory: Bool, cpuSeconds: Double?, peakMemoryBytes: Int64?)>((false, nil, nil))
    }
    private let shared = Shared()
    private let signal: AsyncStream<Void>.Continuation
    private let signals: AsyncStream<Void>

    /// A runner that did not start, and why: the step, the path it was at, the system's reason.
    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// What to start and how.
    public struct Launch: Sendable {
        public var executable: String
        /// argv[1...].
        public var arguments: [String]
        /// Exactly the runner's environment.
        public var environment: [String: String]
        /// Whom it runs as; `nil` is berthd's own user.
        public var identity: RunnerIdentity?
        /// Its stderr is appended here; berthd opens it, so it stays berthd's file.
        public var logPath: String
        /// Descriptors the runner gets as 3, 4, ...; they stay the caller's to close.
        public var passedDescriptors: [Int32] = []
        /// Folders made with the runner's rights before it starts, each with what it is for
        /// (a field name), and files it must be able to read; a failure names the field.
        public var folders: [(field: String, path: String)] = []
        public var readableFiles: [(field: String, path: String)] = []
        public var workingDirectory = "/"
        /// The cgroup it runs in (it joins through `cgroupDescriptors` before exec): when it
        /// ends, whatever it left running there is killed.
        public var cgroup: RunnerCgroup?
        public var cgroupDescriptors: [Int32] = []

        public init(executable: String, arguments: [String], environment: [String: String], identity: RunnerIdentity?, logPath: String) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.identity = identity
            self.logPath = logPath
        }
    }

    /// Starts `launch`: its own process group, default signal handling, no descriptor of
    /// berthd's but those it is given, and umask 022 (what a runner writes is for the user who
    /// asked for it, whatever berthd's own umask is).
    public init(_ launch: Launch) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end may leak into other children; the runner gets the write end as its stdout.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(writeEnd) }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        // The log is opened here, by berthd, and never through a link planted in its place.
        let log = open(launch.logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
        defer { if log >= 0 { close(log) } }
        guard devNull >= 0, log >= 0 else {
            close(readEnd)
            throw SpawnError(description: "cannot open \(log < 0 ? launch.logPath : "/dev/null"): \(String(cString: strerror(errno)))")
        }
        let descriptors = [devNull, writeEnd, log] + launch.passedDescriptors
        let cgroupDescriptors = launch.cgroupDescriptors
        let groups = (launch.identity?.groups ?? []).map { gid_t($0) }
        let argv = ([launch.executable] + launch.arguments).map { strdup($0) } + [nil]
        let envp = launch.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let folders = launch.folders.map { strdup($0.path) }
        let files = launch.readableFiles.map { strdup($0.path) }
        let cwd = strdup(launch.workingDirectory)
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
            folders.forEach { free($0) }
            files.forEach { free($0) }
            free(cwd)
        }
        var child: pid_t = 0
        var failure = berth_spawn_failure()
        let result = cgroupDescriptors.withUnsafeBufferPointer { cgroupBuffer in
            descriptors.withUnsafeBufferPointer { fdBuffer in
                groups.withUnsafeBufferPointer { groupBuffer in
                    folders.map { UnsafePointer($0) }.withUnsafeBufferPointer { folderBuffer in
                        files.map { UnsafePointer($0) }.withUnsafeBufferPointer { fileBuffer in
                            argv.withUnsafeBufferPointer { argvBuffer in
                                envp.withUnsafeBufferPointer { envpBuffer in
                                    var request = berth_spawn_request()
                                    request.path = UnsafePointer(argv[0])
                                    request.argv = argvBuffer.baseAddress
                                    request.envp = envpBuffer.baseAddress
                                    if let identity = launch.identity {
                                        request.set_ids = 1
                                        request.uid = uid_t(identity.uid)
                                        request.gid = gid_t(identity.gid)
                                        request.groups = groupBuffer.baseAddress
                                        request.group_count = Int32(groupBuffer.count)
                                    }
                                    request.fds = fdBuffer.baseAddress
                                    request.fd_count = Int32(fdBuffer.count)
                                    request.cwd = UnsafePointer(cwd)
                                    request.umask = 0o022
                                    request.make_folders = folderBuffer.baseAddress
                                    request.make_folder_count = Int32(folderBuffer.count)
                                    request.read_files = fileBuffer.baseAddress
                                    request.read_file_count = Int32(fileBuffer.count)
                                    request.cgroup_fds = cgroupBuffer.baseAddress
                                    request.cgroup_fd_count = Int32(cgroupBuffer.count)
                                    return berth_spawn(&request, &child, &failure)
                                }
                            }
                        }
                    }
                }
            }
        }
        guard result == 0 else {
            close(readEnd)
            throw SpawnError(description: Self.describe(failure, launch))
        }
        pid = child
        cgroup = launch.cgroup
        let spawned = child
        let group = launch.cgroup
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

        // Blocking reads and waits run on threads of their own, never on the cooperative pool.
        let reader = Thread { [shared, signal] in
            let pending = shared
            var buffer = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(readEnd, &chunk, chunk.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                buffer.append(contentsOf: chunk[0..<count])
                var lines: [String] = []
                while let newline = buffer.firstIndex(of: 0x0A) {
                    lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                    buffer.removeSubrange(...newline)
                }
                if !lines.isEmpty {
                    pending.pending.withLock { $0.lines.append(contentsOf: lines) }
                    signal.yield()
                }
            }
            close(readEnd)
            pending.pending.withLock {
                if !buffer.isEmpty { $0.lines.append(String(decoding: buffer, as: UTF8.self)) }
                $0.finished = true
            }
            signal.yield()
            signal.finish()
        }
        reader.start()
        let waiter = Thread { [shared] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            // Exit code, or 128 + signal as shells report it.
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            if let group {
                // Nothing it started outlives it, however it left its process group.
                group.killAll()
                let usage = group.usage
                shared.ending.withLock { $0 = (group.killedForMemory, usage.cpuSeconds, usage.peakMemoryBytes) }
                group.remove()
            }
            let waiting = shared.exit.withLock { state -> [CheckedContinuation<Int32?, Never>] in
                state.status = code
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
            }
            for waiter in waiting { waiter.resume(returning: code) }
        }
        waiter.start()
    }

    /// What a failed start reports: which of the runner's paths, and the system's reason.
    static func describe(_ failure: berth_spawn_failure, _ launch: Launch) -> String {
        let reason = String(cString: strerror(failure.error))
        let who = launch.identity.map { " as \($0.user)" } ?? ""
        let index = Int(failure.index)
        func entry(_ list: [(field: String, path: String)]) -> (field: String, path: String) {
            list.indices.contains(index) ? list[index] : ("path", "?")
        }
        switch Int(failure.step) {
        case BERTH_STEP_MKDIR:
            let (field, path) = entry(launch.folders)
            return "\(field): cannot create \(path)\(who): \(reason)"
        case BERTH_STEP_WRITABLE:
            let (field, path) = entry(launch.folders)
            return "\(field): cannot write to \(path)\(who): \(reason)"
        case BERTH_STEP_READ:
            let (field, path) = entry(launch.readableFiles)
            return "\(field): cannot read \(path)\(who): \(reason)"
        case BERTH_STEP_IDS:
            return "cannot take the identity\(who): \(reason)"
        case BERTH_STEP_EXEC:
            return "cannot start \(launch.executable)\(who): \(reason)"
        case BERTH_STEP_CWD:
            return "cannot enter \(launch.workingDirectory)\(who): \(reason)"
        case BERTH_STEP_CGROUP:
            return "cannot join the runner's cgroup: \(reason)"
        default:
            return "cannot start \(launch.executable): \(reason)"
        }
    }

    /// Batches of stdout lines as they arrive; ends when stdout closes.
    public func lineBatches() -> AsyncStream<[String]> {
        AsyncStream { continuation in
            Task { [shared, signals] in
                for await _ in signals {
                    let (lines, finished) = shared.pending.withLock { state -> ([String], Bool) in
                        defer { state.lines.removeAll() }
                        return (state.lines, state.finished)
                    }
                    if !lines.isEmpty { continuation.yield(lines) }
                    if finished { break }
                }
                let rest = shared.pending.withLock { state -> [String] in
                    defer { state.lines.removeAll() }
                    return state.lines
                }
                if !rest.isEmpty { continuation.yield(rest) }
                continuation.finish()
            }
        }
    }

    /// The exit status: the exit code, or 128 + the signal that ended it; `nil` if the waiting
    /// task is cancelled first.
    public func exitStatus() async -> Int32? {
        let ticket = shared.exit.withLock { state -> Int in
            defer { state.next += 1 }
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
                let done = shared.exit.withLock { state -> Int32?? in
                    if let status = state.status { return .some(status) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[ticket] = continuation
                    return .none
                }
                if let done { continuation.resume(returning: done) }
            }
        } onCancel: {
            shared.exit.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(returning: nil)
        }
    }

    public var hasExited: Bool { shared.exit.withLock { $0.status != nil } }

    public var killedForMemory: Bool { shared.ending.withLock { $0.killedForMemory } }

    public var usage: (cpuSeconds: Double?, peakMemoryBytes: Int64?) {
        shared.ending.withLock { ($0.cpuSeconds, $0.peakMemoryBytes) }
    }

    /// Signals the whole process group, and every process of its cgroup (one that started its
    /// own session is no longer in the group).
    public func signalGroup(_ sig: Int32) {
        guard !hasExited else { return }
        kill(-pid, sig)
        guard let cgroup else { return }
        if sig == SIGKILL {
            cgroup.killAll()
        } else {
            for member in cgroup.members { kill(member, sig) }
        }
    }

    /// Processes berthd started on this host for the ledger at `ledgerPath` (their
    /// `BERTH_LEDGER` says so) that are still alive: what a berthd that died left behind. A
    /// Slurm job that happens to run on this host (`BERTH_EXECUTOR=slurm`) is not one: Slurm
    /// runs it, and the next berthd follows it again.
    public static func orphans(ledgerPath: String) -> [Int32] {
        let mark = "BERTH_LEDGER=\(ledgerPath)"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard pid != getpid(), let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return variables.contains(mark) && !variables.contains("BERTH_EXECUTOR=slurm")
        }
    }

    /// The program `name` names: a path, or a file in `preferred` folders, then on `PATH`.
    public static func resolve(_ name: String, preferring preferred: [String], path: String?) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let folders = preferred + (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        return folders.lazy.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

extension RunnerProcess: Runner {}
