import BerthCore
import Testing

@Suite("Serve restart backoff")
struct RestartBackoffTests {
    static let t0 = ContinuousClock.now

    @Test(
        "each crash in a row waits twice as long as the one before, up to 30 s",
        arguments: [
            (1, Duration.milliseconds(500)), (2, .seconds(1)), (3, .seconds(2)), (4, .seconds(4)), (5, .seconds(8)),
            (6, .seconds(16)), (7, .seconds(30)), (8, .seconds(30)), (1_000, .seconds(30)),
        ]
    )
    func delays(failures: Int, wait: Duration) {
        #expect(RestartBackoff.delay(afterFailures: failures) == wait)
    }

    @Test("a process that keeps crashing soon after it starts backs off further each time")
    func crashesInARow() {
        var backoff: RestartBackoff?
        var now = Self.t0
        var waits: [Duration] = []
        for _ in 0..<4 {
            // Ready for a few seconds, then dead again.
            let next = RestartBackoff.afterCrash(backoff, readySince: now, now: now + .seconds(5))
            now += .seconds(5)
            waits.append(next.notBefore - now)
            #expect(!next.allowsStart(at: now))
            #expect(!next.allowsStart(at: next.notBefore - .milliseconds(1)))
            #expect(next.allowsStart(at: next.notBefore))
            backoff = next
            now = next.notBefore
        }
        #expect(waits == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])
        #expect(backoff?.failures == 4)
    }

    @Test("a process that never answered counts as a crash in the run")
    func neverReady() {
        let first = RestartBackoff.afterCrash(nil, readySince: nil, now: Self.t0)
        let second = RestartBackoff.afterCrash(first, readySince: nil, now: first.notBefore + .seconds(1))
        #expect(second.failures == 2)
    }

    @Test("a process that served for over a minute before it died starts the count afresh")
    func healthyThenCrashed() {
        var backoff = RestartBackoff(failures: 6, notBefore: Self.t0)
        backoff = RestartBackoff.afterCrash(backoff, readySince: Self.t0, now: Self.t0 + .seconds(61))
        #expect(backoff.failures == 1)
        #expect(backoff.notBefore == Self.t0 + .seconds(61) + .milliseconds(500))
        // Up for exactly a minute is not yet healthy.
        let edge = RestartBackoff.afterCrash(RestartBackoff(failures: 6, notBefore: Self.t0), readySince: Self.t0, now: Self.t0 + .seconds(60))
        #expect(edge.failures == 7)
    }
}
