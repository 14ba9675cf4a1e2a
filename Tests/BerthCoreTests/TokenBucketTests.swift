import BerthCore
import BerthTestSupport
import Foundation
import Testing

@Suite("Token bucket")
struct TokenBucketTests {
    let start = Fixtures.epoch

    @Test("a full bucket grants up to its minute's worth, then throttles with the wait until enough refills")
    func throttles() {
        var bucket = TokenBucket(tokensPerMinute: 600, now: start)  // 10 tokens a second
        #expect(bucket.take(400, now: start) == .granted)
        #expect(bucket.take(200, now: start) == .granted)
        #expect(bucket.take(50, now: start) == .throttled(retryAfter: 5))
        #expect(bucket.take(50, now: start.addingTimeInterval(5)) == .granted)
    }

    @Test("it never holds more than a minute's worth, however long it idles")
    func capped() {
        var bucket = TokenBucket(tokensPerMinute: 600, now: start)
        #expect(bucket.take(600, now: start) == .granted)
        #expect(bucket.take(601, now: start.addingTimeInterval(3600)) == .tooLarge)
        #expect(bucket.tokens == 600)
    }

    @Test("reconciling returns what an estimate over-charged, and charges what it under-charged")
    func reconcile() {
        var bucket = TokenBucket(tokensPerMinute: 600, now: start)
        #expect(bucket.take(500, now: start) == .granted)
        bucket.reconcile(charged: 500, used: 120, now: start)
        #expect(bucket.tokens == 480)
        bucket.reconcile(charged: 10, used: 90, now: start)
        #expect(bucket.tokens == 400)
    }

    @Test("continuous enforcement: over any minute, no more than the budget plus one bucket is granted", arguments: 0..<10)
    func neverOverBudget(seed: Int) {
        var rng = PlannerPropertyTests.SplitMix(state: UInt64(seed) + 99)
        var bucket = TokenBucket(tokensPerMinute: 6000, now: start)
        var granted = 0
        var now = start
        for _ in 0..<2000 {
            now = now.addingTimeInterval(Double(Int.random(in: 0...100, using: &rng)) / 1000)
            let amount = Int.random(in: 1...300, using: &rng)
            if bucket.take(amount, now: now) == .granted { granted += amount }
        }
        let minutes = now.timeIntervalSince(start) / 60
        #expect(Double(granted) <= 6000 * (1 + minutes) + 1)
    }
}
