public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A runner started by berthd: its own process group (so stopping it reaches its children),
/// stdout read line by line, stderr appended to the job's log, no shell.
public final class RunnerProcess: Sendable {
    public let pid: pid_t
    /// Spawns one at a time: the umask is process-wide while it is changed around a spawn.
    private static let spawnLock = Mutex<Void>(())
    /// Shared with the reader and waiter threads (a class: mutexes cannot be captured).
    private final class Shared: Sendable {
        let pending = Mutex<(lines: [String], finished: Bool)>(([], false))
        let exit = Mutex<(status: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))
    }
    private let shared = Shared()
    private let signal: AsyncStream<Void>.Continuation
    private let signals: AsyncStream<Void>

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `executable` with `arguments` (argv[1...]) and exactly `environment`.
    public init(executable: String, arguments: [String], environment: [String: String], logPath: String) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end may leak into other children; the runner gets the write end as its stdout.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o640)
        // Nothing else of the daemon's may reach the runner: not every library marks its
        // descriptors close-on-exec, and a runner that outlived berthd holding its listening
        // socket would keep the socket answering for a daemon that is gone.
        Self.closeFrom(3, in: &actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group; default handlers and an empty mask, whatever the daemon set
        // up for itself (an ignored SIGTERM would otherwise be inherited across exec).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, sig) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        // berthd keeps its own files private (umask 077); what a runner writes (models, outputs)
        // is for the user who asked for it, so runners start with the usual 022.
        let result = Self.spawnLock.withLock { _ in
            let saved = umask(0o022)
            defer { umask(saved) }
            return posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        }
        close(writeEnd)
        guard result == 0 else {
            close(readEnd)
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        pid = child
        let spawned = child
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
            let waiting = shared.exit.withLock { state -> CheckedContinuation<Int32, Never>? in
                state.status = code
                defer { state.waiter = nil }
                return state.waiter
            }
            waiting?.resume(returning: code)
        }
        waiter.start()
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), looked up at run time since
    /// Swift's Glibc module leaves GNU extensions out; else one close per open descriptor.
    private static func closeFrom(_ lowest: Int32, in actions: inout posix_spawn_file_actions_t) {
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let addCloseFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            if addCloseFrom(&actions, lowest) == 0 { return }
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for fd in open where fd >= lowest && fcntl(fd, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, fd)
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

    /// The exit status: the exit code, or 128 + the signal that ended it.
    public func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done = shared.exit.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    public var hasExited: Bool { shared.exit.withLock { $0.status != nil } }

    /// Signals the whole process group.
    public func signalGroup(_ sig: Int32) {
        guard !hasExited else { return }
        kill(-pid, sig)
    }

    /// Processes started for the ledger at `ledgerPath` (their `BERTH_LEDGER` says so) that
    /// are still alive: what a berthd that died left behind.
    public static func orphans(ledgerPath: String) -> [pid_t] {
        let mark = "BERTH_LEDGER=\(ledgerPath)"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            pid != getpid() && (FileManager.default.contents(atPath: "/proc/\(pid)/environ")?
                .split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == mark } ?? false)
        }
    }

    /// The program `name` names: a path, or a file in `preferred` folders, then on `PATH`.
    public static func resolve(_ name: String, preferring preferred: [String], path: String?) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let folders = preferred + (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        return folders.lazy.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
