public import BerthExecutors
public import Foundation

/// Starts test processes with `ChildProcess`, never Foundation's `Process`, whose `run()`
/// crashes the test process now and then on Linux (see `ChildProcess`).
public enum Launch {
    /// `executable` with `arguments`, its stdout and stderr appended to `log` (`nil`: this
    /// process's own), with `environment` added to this process's.
    public static func start(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        stdout: FileHandle? = nil,
        stderr: FileHandle? = nil
    ) throws -> ChildProcess {
        try ChildProcess(
            executable,
            arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            stdout: stdout?.fileDescriptor,
            stderr: stderr?.fileDescriptor
        )
    }
}
