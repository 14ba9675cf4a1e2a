import BerthCore
import BerthTestSupport
import Foundation
import Testing

/// How a report's series places tokens in time: a minute's (or an hour's) tokens drawn over that
/// span at their rate, at every bucket size, never before the reservation held units.
@Suite("Usage series")
struct UsageSeriesTests {
    static let start = Fixtures.epoch
    static func at(_ seconds: Double) -> Date { start.addingTimeInterval(seconds) }

    /// An inference reservation of one model unit (10,000 tokens a minute) leased from `from`.
    static func reservation(from: Double, to: Double? = nil) -> ReservationFacts {
        ReservationFacts(
            id: 1,
            name: "serve",
            owner: "alice",
            model: "m",
            purpose: .inference,
            commitment: .none,
            unitsPerModelUnit: 1,
            tokensPerMinute: 10_000,
            pricePerModelUnitHour: 20,
            modelUnits: 1,
            leases: [Span(start: at(from), end: to.map(at))],
            jobs: [],
            activity: []
        )
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var testDescription: String
        /// Window `[from, to)` in seconds from the start, and its buckets.
        var window: (from: Double, to: Double, buckets: Int)
        var leased: (from: Double, to: Double?)
        /// Samples: start in seconds, tokens, span in seconds.
        var samples: [(at: Double, tokens: Int, seconds: Double)]
        /// Tokens per minute expected in each bucket.
        var expected: [Double]
    }

    static let cases: [Case] = [
        Case(
            testDescription: "a minute's tokens are drawn across that minute, at their rate, over a five-minute window of 10 buckets",
            window: (0, 300, 10),
            leased: (0, nil),
            samples: [(60, 1200, 60)],
            expected: [0, 0, 1200, 1200, 0, 0, 0, 0, 0, 0]
        ),
        Case(
            testDescription: "nothing is drawn before the reservation's start: its first minute's tokens fall after it",
            window: (0, 300, 10),
            leased: (90, nil),
            samples: [(60, 600, 60)],
            // Served in the 30 s from 90 to 120: 1,200 a minute over that half minute.
            expected: [0, 0, 0, 1200, 0, 0, 0, 0, 0, 0]
        ),
        Case(
            testDescription: "nothing is drawn after the reservation's end either",
            window: (0, 300, 10),
            leased: (0, 150),
            samples: [(120, 300, 60)],
            expected: [0, 0, 0, 0, 600, 0, 0, 0, 0, 0]
        ),
        Case(
            testDescription: "a minute that began before the window draws only its part inside the window",
            window: (30, 330, 10),
            leased: (0, nil),
            samples: [(0, 600, 60)],
            expected: [600, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ),
        Case(
            testDescription: "buckets longer than a minute show the average per minute over the bucket",
            window: (0, 600, 2),
            leased: (0, nil),
            samples: [(0, 1000, 60), (60, 2000, 60), (360, 500, 60)],
            expected: [600, 100]
        ),
        Case(
            testDescription: "an hour's tokens over a day's buckets are spread across the hour",
            window: (0, 86_400, 48),
            leased: (0, nil),
            samples: [(3600, 60_000, 3600)],
            expected: [0, 0, 1000, 1000] + Array(repeating: 0, count: 44)
        ),
    ]

    @Test(arguments: cases)
    func bucketing(_ c: Case) {
        let facts = UsageFacts(
            reservations: [Self.reservation(from: c.leased.from, to: c.leased.to)],
            invocations: [],
            tokenSamples: c.samples.map { TokenSample(reservationID: 1, at: Self.at($0.at), tokens: $0.tokens, seconds: $0.seconds) }
        )
        let query = UsageQuery(
            from: Self.at(c.window.from),
            to: Self.at(c.window.to),
            now: Self.at(100_000),
            grouping: .reservation,
            idleThreshold: 86_400,
            buckets: c.window.buckets
        )
        let report = UsageReport.compute(facts, query)
        let series = report.rows.first { $0.key == "serve" }?.series.tokensPerMinute ?? []
        #expect(series.count == c.expected.count)
        for (got, want) in zip(series, c.expected) { #expect(abs(got - want) < 1e-6, "\(series)") }
    }

    @Test("the series keeps every token: its area over a minute-aligned window equals the tokens served")
    func conservesTokens() {
        let samples = [(60.0, 700), (120.0, 50), (240.0, 9000)]
        let facts = UsageFacts(
            reservations: [Self.reservation(from: 75)],
            invocations: [],
            tokenSamples: samples.map { TokenSample(reservationID: 1, at: Self.at($0.0), tokens: $0.1) }
        )
        for buckets in [1, 7, 96, 300] {
            let query = UsageQuery(
                from: Self.at(0),
                to: Self.at(300),
                now: Self.at(1000),
                grouping: .reservation,
                idleThreshold: 86_400,
                buckets: buckets
            )
            let series = UsageReport.compute(facts, query).rows[0].series.tokensPerMinute
            let area = series.reduce(0) { $0 + $1 * 300 / Double(buckets) / 60 }
            #expect(abs(area - 9750) < 0.01, "\(buckets) buckets: \(area)")
        }
    }
}
