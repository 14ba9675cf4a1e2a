import BerthCore
import Testing

@Suite("Serve liveness probe")
struct LivenessProbeTests {
    static let t0 = ContinuousClock.now

    @Test("the first check is due one period after the process became ready, and one at a time")
    func due() {
        var probe = LivenessProbe(readyAt: Self.t0)
        #expect(!probe.isDue(at: Self.t0 + .seconds(4)))
        #expect(probe.isDue(at: Self.t0 + LivenessProbe.every))
        probe.started(at: Self.t0 + .seconds(5))
        // Not while a check is out, however long it takes.
        #expect(!probe.isDue(at: Self.t0 + .seconds(60)))
        #expect(probe.answered(healthy: true) == .healthy)
        #expect(!probe.isDue(at: Self.t0 + .seconds(9)))
        #expect(probe.isDue(at: Self.t0 + .seconds(10)))
    }

    @Test("three failed checks in a row restart the process; a good answer in between starts the count again")
    func restarts() {
        var probe = LivenessProbe(readyAt: Self.t0)
        var now = Self.t0
        func check(_ healthy: Bool) -> LivenessProbe.Verdict {
            now += LivenessProbe.every
            #expect(probe.isDue(at: now))
            probe.started(at: now)
            return probe.answered(healthy: healthy)
        }
        #expect(check(false) == .failing(failures: 1))
        #expect(check(false) == .failing(failures: 2))
        #expect(check(true) == .healthy)
        #expect(probe.failures == 0)
        #expect(check(false) == .failing(failures: 1))
        #expect(check(false) == .failing(failures: 2))
        #expect(check(false) == .restart)
    }
}
