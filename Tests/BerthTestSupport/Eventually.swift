public import Foundation

/// Asks `condition` again until it holds or `timeout` seconds have passed; returns whether it
/// held. For a test that waits for a daemon to reach a state on its own (a start time, an end,
/// a restarted process): the state is checked, never how long it took. `interval` is the pause
/// between two asks.
public func eventually(timeout: TimeInterval, every interval: TimeInterval = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(useconds_t(interval * 1_000_000))
    }
}

/// `eventually` for a condition that awaits (a request through the socket): it waits asleep,
/// not holding a thread that other suites' tests run on. A name of its own, because in an
/// async test Swift would pick an async overload of `eventually` for every synchronous condition.
public func eventuallyAwaiting(
    timeout: TimeInterval,
    every interval: TimeInterval = 0.05,
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try await condition() { return true }
        // A cancelled test stops asking (its sleeps would no longer wait).
        if Date() >= deadline || Task.isCancelled { return false }
        try? await Task.sleep(for: .seconds(interval))
    }
}
