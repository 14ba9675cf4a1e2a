/// When a serve process that died may be started again. The first crash waits half a second,
/// each further crash in a row twice as long, up to 30 s, so a process that cannot stay up is
/// not started in a tight loop, while one that crashed once comes back at once. A process that
/// had served for a minute before it died starts the count afresh. Time is passed in.
public struct RestartBackoff: Sendable, Equatable {
    public static let first: Duration = .milliseconds(500)
    public static let longest: Duration = .seconds(30)
    /// Served this long before it died: the crash is not one of a run.
    public static let healthyAfter: Duration = .seconds(60)

    /// Crashes in a row, this one included.
    public let failures: Int
    public let notBefore: ContinuousClock.Instant

    public init(failures: Int, notBefore: ContinuousClock.Instant) {
        self.failures = failures
        self.notBefore = notBefore
    }

    /// The wait after the `failures`-th crash in a row.
    public static func delay(afterFailures failures: Int) -> Duration {
        let doublings = min(max(failures, 1) - 1, 6)
        return min(longest, first * (1 << doublings))
    }

    /// After a crash at `now` of a process that answered from `readySince` on (`nil`: it never
    /// did), given the backoff its key had before (`nil`: none).
    public static func afterCrash(_ previous: RestartBackoff?, readySince: ContinuousClock.Instant?, now: ContinuousClock.Instant) -> RestartBackoff {
        let healthy = readySince.map { now - $0 > healthyAfter } ?? false
        let failures = (healthy ? 0 : previous?.failures ?? 0) + 1
        return RestartBackoff(failures: failures, notBefore: now + delay(afterFailures: failures))
    }

    public func allowsStart(at now: ContinuousClock.Instant) -> Bool {
        now >= notBefore
    }
}
