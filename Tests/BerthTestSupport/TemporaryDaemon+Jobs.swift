public import Foundation

extension TemporaryDaemon {
    /// A job that never showed a status the test waited for: what it showed last, and the log.
    public struct JobNeverReached: Error, CustomStringConvertible {
        public let description: String
    }

    /// Job `id` as `berth jobs ID --json` shows it (to `user`), once its status is one of
    /// `statuses`. Waits asleep, not holding a thread that other suites' tests run on; throws
    /// `JobNeverReached` after `timeout` seconds. The state is checked, never how long it took.
    @discardableResult
    public func job(_ id: Int, reaching statuses: Set<String>, as user: TestUser? = nil, timeout: TimeInterval = 60) async throws -> [String: Any] {
        var shown: [String: Any] = [:]
        let reached = try await eventuallyAwaiting(timeout: timeout) {
            shown = try json(["jobs", String(id)], as: user)
            return statuses.contains(shown["status"] as? String ?? "")
        }
        if reached { return shown }
        throw JobNeverReached(description: "job \(id) never reached \(statuses.sorted()): \(shown)\n\(log)")
    }
}
