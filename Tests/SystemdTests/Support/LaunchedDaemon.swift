import BerthTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real berthd started the way systemd would start it: with an environment of our choosing
/// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `JOURNAL_STREAM`), or under `systemd-socket-activate`.
/// The temporary folder, config and the `berth` CLI come from `TemporaryDaemon`, which this
/// does not start.
///
/// Started with `posix_spawn`, not Foundation's `Process`, for two reasons. Like systemd, it
/// gives the daemon an empty signal mask and default signal actions (a `Process` child inherits
/// the mask of whichever test thread started it, which blocks nearly every signal). And
/// `systemd-socket-activate` closes every descriptor it inherits, which Foundation on Linux
/// takes as the child's exit: it then blocks in `waitpid` on the live process and stops
/// reaping every other child of the test run.
final class LaunchedDaemon: @unchecked Sendable {
    let files: TemporaryDaemon
    private var child: pid_t = 0
    private var exitStatus: Int32?
    private let lock = NSLock()

    /// Variables systemd may have given the test run itself; berthd must only see ours.
    static let systemdVariables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "JOURNAL_STREAM"]

    init(config: String = TemporaryDaemon.config()) throws {
        files = try TemporaryDaemon(config: config)
    }

    var socket: String { files.socket }
    var log: String { files.log }
    var pid: Int32 { child }

    /// Starts `berthd --config … --socket … --database …` with `environment` added.
    func start(environment: [String: String] = [:]) throws {
        try spawn(
            Products.path("berthd"),
            ["--config", files.configPath, "--socket", socket, "--database", files.database],
            environment: environment
        )
    }

    /// Starts berthd under `systemd-socket-activate -l SOCKET`, which listens on the socket and
    /// execs berthd (same pid) at the first connection. No `--socket`: the daemon must serve
    /// the socket it is given. The activator passes on only the variables named with `-E`.
    func startSocketActivated(environment: [String: String] = [:]) throws {
        var arguments = ["--listen=\(socket)"]
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { arguments.append("--setenv=\(key)=\(value)") }
        arguments += [Products.path("berthd"), "--config", files.configPath, "--database", files.database]
        try spawn("/usr/bin/systemd-socket-activate", arguments, environment: [:])
    }

    private func spawn(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
        if !FileManager.default.fileExists(atPath: files.logPath) { _ = FileManager.default.createFile(atPath: files.logPath, contents: nil) }
        var inherited = ProcessInfo.processInfo.environment
        for key in Self.systemdVariables { inherited[key] = nil }
        let variables = inherited.merging(environment) { _, new in new }.map { "\($0.key)=\($0.value)" }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, files.logPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        lock.withLock {
            child = pid
            exitStatus = nil
        }
    }

    /// Reaps the child if it has exited.
    var isRunning: Bool {
        lock.withLock {
            guard child > 0 else { return false }
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let reaped = waitpid(child, &status, WNOHANG)
            guard reaped == child else { return reaped == 0 }
            // The shell's convention: 128 + the signal for a child a signal ended.
            let signal = status & 0x7f
            exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            return false
        }
    }

    /// Waits until `berth status` succeeds (which, under socket activation, is what starts it).
    func waitUntilAnswering(timeout: TimeInterval = 30) throws {
        var answered = false
        _ = eventually(timeout: timeout) {
            answered = (try? files.cli(["status"]))?.status == 0
            return answered || !isRunning
        }
        if answered { return }
        if !isRunning { throw LaunchFailure(log: log) }
        throw LaunchFailure(log: "berthd did not answer within \(Int(timeout)) s\n" + log)
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(child, signal) }
    }

    /// SIGTERM, then the exit status (nil if it did not exit within `timeout`).
    @discardableResult
    func stop(timeout: TimeInterval = 30) -> Int32? {
        guard child > 0 else { return nil }
        if isRunning { kill(child, SIGTERM) }
        _ = eventually(timeout: timeout, every: 0.01) { !isRunning }
        return lock.withLock { exitStatus }
    }

    /// Waits until the log contains `text`.
    func waitForLog(_ text: String, timeout: TimeInterval = 15) -> Bool {
        eventually(timeout: timeout, every: 0.02) { log.contains(text) }
    }

    deinit {
        if isRunning {
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
        }
    }
}

struct LaunchFailure: Error, CustomStringConvertible {
    var log: String
    var description: String { "berthd failed to start:\n\(log)" }
}

/// The repository's root folder, where the Makefile is.
enum Repository {
    static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }
}
