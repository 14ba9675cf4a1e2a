public import Foundation

/// Starts Foundation `Process`es one at a time, across the whole program. Foundation's
/// `Process.run()` on Linux was seen to crash in a memcpy inside itself when several threads
/// started processes at once (berthd's Slurm commands and GPU discovery; tests starting
/// daemons). The start takes a millisecond; the run and the wait still happen in parallel.
public enum ProcessStarts {
    private static let lock = NSLock()

    public static func run(_ process: Process) throws {
        lock.lock()
        defer { lock.unlock() }
        try process.run()
    }

    /// Runs `body` while no `Process` starts: a child started another way (posix_spawn) then
    /// inherits no descriptor a `Process` start has open for a moment.
    public static func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
