import CBerthSpawn
public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program berthd (or a test) runs and waits for: started with `berth_spawn`, never with
/// Foundation's `Process`. On Linux, `Process.run()` of Swift 6.3 reads past the end of each
/// `/proc/self/fd` entry it scans (swift-corelibs-foundation#5472) and crashes the whole
/// program now and then, the more often the more processes it starts; no lock avoids it.
public final class ChildProcess: Sendable {
    public let pid: Int32
    /// The exit status once it has been reaped: the exit code, or 128 + the signal.
    private let ended = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`. `environment` is the whole environment (`nil`:
    /// this process's own); `stdin`, `stdout` and `stderr` are descriptors of this process the
    /// child gets as 0, 1 and 2 (`nil`: /dev/null for stdin, this process's own for the others).
    /// It runs in its own process group, with no other descriptor of this process.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        stdin: Int32? = nil,
        stdout: Int32? = nil,
        stderr: Int32? = nil,
        umask mask: UInt32 = 0o022
    ) throws {
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        guard devNull >= 0 else { throw Failure(description: "cannot open /dev/null: \(String(cString: strerror(errno)))") }
        let descriptors = [stdin ?? devNull, stdout ?? STDOUT_FILENO, stderr ?? STDERR_FILENO]
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let variables = environment ?? ProcessInfo.processInfo.environment
        let envp = variables.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        var failure = berth_spawn_failure()
        var result: Int32 = 0
        // ETXTBSY: a program written a moment ago can still be open for writing in a child
        // forked meanwhile, until that child closes what it inherited. It passes; try again.
        for attempt in 0..<20 {
            if attempt > 0 { usleep(25_000) }
            result = descriptors.withUnsafeBufferPointer { fdBuffer in
                argv.withUnsafeBufferPointer { argvBuffer in
                    envp.withUnsafeBufferPointer { envpBuffer in
                        var request = berth_spawn_request()
                        request.path = UnsafePointer(argv[0])
                        request.argv = argvBuffer.baseAddress
                        request.envp = envpBuffer.baseAddress
                        request.fds = fdBuffer.baseAddress
                        request.fd_count = Int32(fdBuffer.count)
                        request.umask = mode_t(mask)
                        return berth_spawn(&request, &child, &failure)
                    }
                }
            }
            guard result != 0, Int(failure.step) == BERTH_STEP_EXEC, failure.error == ETXTBSY else { break }
        }
        guard result == 0 else {
            throw Failure(description: "cannot run \(executable): \(String(cString: strerror(failure.error)))")
        }
        pid = child
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Whether it has not exited yet; reaps it if it has.
    public var isRunning: Bool {
        ended.withLock { status in
            if status != nil { return false }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid { status = Self.code(raw) }
            // ECHILD: a `wait()` on another thread has it, or is about to record it.
            return reaped == 0
        }
    }

    /// Waits for it to exit (blocking: call it off the cooperative pool) and returns the exit
    /// code, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        if let known = ended.withLock({ $0 }) { return known }
        var raw: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &raw, 0) } while reaped < 0 && errno == EINTR
        if reaped == pid {
            let code = Self.code(raw)
            ended.withLock { $0 = $0 ?? code }
        }
        // Reaped meanwhile by `isRunning` on another thread: its record is the one.
        while ended.withLock({ $0 }) == nil { usleep(1_000) }
        return ended.withLock { $0 ?? -1 }
    }

    /// The exit status, once it has exited and been reaped.
    public var terminationStatus: Int32? { ended.withLock { $0 } }

    public func signal(_ signal: Int32) {
        guard ended.withLock({ $0 }) == nil else { return }
        kill(pid, signal)
    }

    static func code(_ raw: Int32) -> Int32 {
        (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Runs `executable` to its end, or kills it after `timeout`, and returns what it printed
    /// on stdout and stderr (read at once, so a chatty stderr cannot block it) and its status
    /// (`nil` when it was killed for taking too long).
    public static func output(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        timeout: TimeInterval
    ) throws -> (status: Int32?, out: Data, err: Data) {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0])
            close(outPipe[1])
            throw Failure(description: "pipe: \(String(cString: strerror(errno)))")
        }
        // No other child may inherit them (berth_spawn closes what it does not pass anyway).
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let child: ChildProcess
        do {
            defer {
                close(outPipe[1])
                close(errPipe[1])
            }
            child = try ChildProcess(executable, arguments, environment: environment, stdout: outPipe[1], stderr: errPipe[1])
        } catch {
            close(outPipe[0])
            close(errPipe[0])
            throw error
        }
        let collected = Mutex<(out: Data, err: Data)>((Data(), Data()))
        let drained = DispatchGroup()
        for (descriptor, isOutput) in [(outPipe[0], true), (errPipe[0], false)] {
            drained.enter()
            DispatchQueue.global().async {
                let data = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true).readDataToEndOfFile()
                collected.withLock { if isOutput { $0.out = data } else { $0.err = data } }
                drained.leave()
            }
        }
        if drained.wait(timeout: .now() + timeout) == .timedOut {
            // Its whole group: what it started holds the pipes open too.
            kill(-child.pid, SIGKILL)
            child.wait()
            drained.wait()
            let (out, err) = collected.withLock { $0 }
            return (nil, out, err)
        }
        let status = child.wait()
        let (out, err) = collected.withLock { $0 }
        return (status, out, err)
    }
}
