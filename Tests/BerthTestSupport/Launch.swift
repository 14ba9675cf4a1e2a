public import Foundation

/// Starts test processes one at a time. Foundation's `Process.run()` on Linux was seen to crash
/// in a memcpy inside itself when many tests started processes at once; the start takes a
/// millisecond, and everything after it (the run, the wait) still happens in parallel.
public enum Launch {
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
