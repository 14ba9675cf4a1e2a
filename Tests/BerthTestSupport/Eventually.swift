public import Foundation

/// Asks `condition` again until it holds or `timeout` seconds have passed; returns whether it
/// held. For a test that waits for a daemon to reach a state on its own (a start time, an end,
/// a restarted process): the state is checked, never how long it took.
public func eventually(timeout: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(50_000)
    }
}
