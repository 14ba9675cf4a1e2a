/// Whether a serve process that is up still answers: berthd asks its `GET /health` every few
/// seconds, and a process that fails three checks in a row (no answer within the timeout, or
/// not 200) is killed and restarted as if it had crashed, so a wedged model server does not
/// fail every call of its reservation for ever. Time is passed in.
public struct LivenessProbe: Sendable, Equatable {
    public static let every: Duration = .seconds(5)
    public static let timeout: Duration = .seconds(2)
    public static let failuresToRestart = 3

    /// Failed checks in a row.
    public private(set) var failures = 0
    public private(set) var lastCheck: ContinuousClock.Instant
    /// A check is out and not answered yet.
    public private(set) var checking = false

    /// For a process that became ready at `now`: its first check is one period later.
    public init(readyAt now: ContinuousClock.Instant) {
        lastCheck = now
    }

    public func isDue(at now: ContinuousClock.Instant) -> Bool {
        !checking && now - lastCheck >= Self.every
    }

    public mutating func started(at now: ContinuousClock.Instant) {
        checking = true
        lastCheck = now
    }

    public enum Verdict: Sendable, Equatable {
        case healthy
        /// Failed, `failures` in a row, fewer than it takes to restart.
        case failing(failures: Int)
        case restart
    }

    public mutating func answered(healthy: Bool) -> Verdict {
        checking = false
        if healthy {
            failures = 0
            return .healthy
        }
        failures += 1
        return failures >= Self.failuresToRestart ? .restart : .failing(failures: failures)
    }
}
