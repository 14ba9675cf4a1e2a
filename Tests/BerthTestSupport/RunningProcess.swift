public import BerthExecutors
import BerthServer
public import Foundation

/// A runner started in the background, its stdout and stderr going to files.
public final class RunningProcess: @unchecked Sendable {
    public let process: ChildProcess
    public let outPath: String
    public let errPath: String

    public init(_ executable: String, _ arguments: [String], in folder: TemporaryDirectory) throws {
        outPath = folder.file("process-\(UUID().uuidString).out")
        errPath = outPath + ".err"
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
            FileManager.default.createFile(atPath: errPath, contents: nil)
        else { throw Failure("cannot create \(outPath)") }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process = try ChildProcess(executable, arguments, stdout: out.fileDescriptor, stderr: err.fileDescriptor)
    }

    public var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    public func signal(_ signal: Int32) {
        process.signal(signal)
    }

    public func waitForOutput(timeout: TimeInterval, until condition: (String) -> Bool) throws {
        var seen = false
        _ = eventually(timeout: timeout, every: 0.02) {
            seen = condition(stdout)
            return seen || !process.isRunning
        }
        if seen { return }
        throw Failure("no expected output within \(timeout) s; stdout: \(stdout.suffix(500)) stderr: \(stderr)")
    }

    /// The exit status; a death by signal is reported as 128 + the signal.
    public func waitForExit(timeout: TimeInterval) throws -> Int32 {
        _ = eventually(timeout: timeout, every: 0.01) { !process.isRunning }
        guard !process.isRunning else { throw Failure("still running after \(timeout) s") }
        return process.wait()
    }

    public func kill() {
        if process.isRunning {
            process.signal(SIGKILL)
            process.wait()
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}

/// A loopback port nothing listens on right now (as berthd picks its serve processes' ports).
public func freePort() throws -> Int {
    try ServeSupervisor.freeLoopbackPort()
}
