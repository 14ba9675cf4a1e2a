import BerthExecutors
public import Foundation

/// Starts test processes through the same lock as berthd's own (`ProcessStarts`), so a test's
/// start never overlaps one made by server code running in the test process.
public enum Launch {
    public static func run(_ process: Process) throws {
        try ProcessStarts.run(process)
    }

    /// Runs `body` while no `Process` starts: a child started another way (posix_spawn) then
    /// inherits no descriptor a `Process` start has open for a moment.
    public static func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        try ProcessStarts.exclusively(body)
    }
}
