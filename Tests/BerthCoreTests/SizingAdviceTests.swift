import BerthCore
import BerthTestSupport
import Foundation
import Testing

/// Right-sizing advice worked out by hand: a model of 10,000 tokens a minute per model unit at
/// 20 a model-unit-hour, so one model unit for a month (730 hours) is 14,600.
@Suite("Right-sizing advice")
struct SizingAdviceTests {
    static let start = Fixtures.epoch
    static func minute(_ n: Int) -> Date { start.addingTimeInterval(Double(n) * 60) }
    static let window = (start: start, end: start.addingTimeInterval(3600))

    static func reservation(_ purpose: Purpose, modelUnits: Int, unitsPerModelUnit: Int = 1, jobs: [JobFacts] = []) -> ReservationFacts {
        ReservationFacts(
            id: 7,
            name: "demo",
            owner: "alice",
            model: "m",
            purpose: purpose,
            commitment: .none,
            unitsPerModelUnit: unitsPerModelUnit,
            tokensPerMinute: 10_000,
            pricePerModelUnitHour: 20,
            modelUnits: modelUnits,
            leases: [Span(start: start, end: nil)],
            jobs: jobs,
            activity: []
        )
    }

    struct InferenceCase: CustomTestStringConvertible, Sendable {
        var testDescription: String
        var modelUnits: Int
        /// Minute number, tokens served, calls, throttled calls.
        var minutes: [(Int, Int, Int, Int)]
        var share: Double
        var throttled: Int
        var needed: Int
        var verdict: SizingAdvice.Verdict
        var monthly: Double
    }

    static let inference: [InferenceCase] = [
        InferenceCase(
            testDescription:
                "four units whose busiest minute used 19 % of the budget would have served every call with one, saving three units' month",
            modelUnits: 4,
            minutes: [(3, 7_600, 40, 0), (10, 2_000, 5, 0)],
            share: 0.19,
            throttled: 0,
            needed: 1,
            verdict: .oversized,
            monthly: -43_800
        ),
        InferenceCase(
            testDescription: "a busiest minute that needed just over two units' budget needs three",
            modelUnits: 4,
            minutes: [(0, 20_001, 3, 0)],
            share: 0.500025,
            throttled: 0,
            needed: 3,
            verdict: .oversized,
            monthly: -14_600
        ),
        InferenceCase(
            testDescription: "one unit that throttled half its calls in a minute needed two: it costs one more unit's month",
            modelUnits: 1,
            minutes: [(5, 10_000, 20, 10)],
            share: 1,
            throttled: 10,
            needed: 2,
            verdict: .undersized,
            monthly: 14_600
        ),
        InferenceCase(
            testDescription: "throttled calls in a minute with nothing served count at the window's average call",
            modelUnits: 1,
            minutes: [(1, 9_000, 3, 0), (2, 0, 10, 10)],
            // 10 calls of 3,000 tokens on top of nothing: 30,000, three units' budget.
            share: 0.9,
            throttled: 10,
            needed: 3,
            verdict: .undersized,
            monthly: 29_200
        ),
        InferenceCase(
            testDescription: "a throttle means more units were needed even when the throttled calls look small",
            // The bucket charges a call its prompt plus max_tokens, more than it may use: three
            // calls of 5,000 served and one throttled is 20,000, within two units' budget.
            modelUnits: 2,
            minutes: [(1, 15_000, 4, 1)],
            share: 0.75,
            throttled: 1,
            needed: 3,
            verdict: .undersized,
            monthly: 14_600
        ),
        InferenceCase(
            testDescription: "a minute a little over budget with no throttle was served by the units it had",
            modelUnits: 1,
            minutes: [(1, 12_000, 4, 0)],
            share: 1.2,
            throttled: 0,
            needed: 1,
            verdict: .rightSized,
            monthly: 0
        ),
        InferenceCase(
            testDescription: "no call in the window: releasing it saves every unit's month",
            modelUnits: 2,
            minutes: [],
            share: 0,
            throttled: 0,
            needed: 0,
            verdict: .oversized,
            monthly: -29_200
        ),
        InferenceCase(
            testDescription: "minutes outside the window do not count",
            modelUnits: 2,
            minutes: [(-1, 20_000, 4, 0), (61, 20_000, 4, 2), (30, 5_000, 1, 0)],
            share: 0.25,
            throttled: 0,
            needed: 1,
            verdict: .oversized,
            monthly: -14_600
        ),
    ]

    @Test(arguments: inference)
    func inferenceAdvice(_ c: InferenceCase) throws {
        let r = Self.reservation(.inference, modelUnits: c.modelUnits)
        let minutes = c.minutes.map { n, tokens, calls, throttled in
            ReservationMinute(
                reservationID: 7,
                minute: Self.minute(n),
                tokens: tokens,
                calls: calls,
                throttled: throttled,
                budget: c.modelUnits * 10_000
            )
        }
        let advice = try #require(SizingAdvice.advise(r, name: "demo", minutes: minutes, window: Self.window, now: Self.minute(60)))
        #expect(advice.busiestMinuteShare == c.share)
        #expect(advice.throttled == c.throttled)
        #expect(advice.neededModelUnits == c.needed)
        #expect(advice.verdict == c.verdict)
        #expect(advice.monthlyCostChange == c.monthly)
        #expect(advice.runningShare == nil)
    }

    struct TrainingCase: CustomTestStringConvertible, Sendable {
        var testDescription: String
        var modelUnits: Int
        var unitsPerModelUnit: Int
        /// Jobs: started and ended in minutes from the start (nil: still running), compute units.
        var jobs: [(Int, Int?, Int)]
        var share: Double
        var needed: Int
        var verdict: SizingAdvice.Verdict
        var monthly: Double
    }

    static let training: [TrainingCase] = [
        TrainingCase(
            testDescription: "a job running 15 of 60 minutes on one of two units: one unit held only while jobs run saves most of the month",
            modelUnits: 2,
            unitsPerModelUnit: 1,
            jobs: [(0, 15, 1)],
            share: 0.25,
            needed: 1,
            verdict: .oversized,
            monthly: -25_550
        ),
        TrainingCase(
            testDescription: "jobs running side by side on both units for the whole window: the right size",
            modelUnits: 2,
            unitsPerModelUnit: 1,
            jobs: [(0, nil, 1), (0, 60, 1)],
            share: 1,
            needed: 2,
            verdict: .rightSized,
            monthly: 0
        ),
        TrainingCase(
            testDescription: "one job after another is not two at once",
            modelUnits: 2,
            unitsPerModelUnit: 1,
            jobs: [(0, 30, 1), (30, 60, 1)],
            share: 1,
            needed: 1,
            verdict: .oversized,
            monthly: -14_600
        ),
        TrainingCase(
            testDescription: "overlapping jobs count their compute units together, in model units rounded up",
            modelUnits: 2,
            unitsPerModelUnit: 2,
            jobs: [(0, 40, 2), (20, 60, 1)],
            share: 1,
            needed: 2,
            verdict: .rightSized,
            monthly: 0
        ),
        TrainingCase(
            testDescription: "no job ran: releasing it saves every unit's month",
            modelUnits: 1,
            unitsPerModelUnit: 1,
            jobs: [],
            share: 0,
            needed: 0,
            verdict: .oversized,
            monthly: -14_600
        ),
    ]

    @Test(arguments: training)
    func trainingAdvice(_ c: TrainingCase) throws {
        let jobs = c.jobs.map { started, ended, units in
            JobFacts(
                status: ended == nil ? .running : .completed,
                submittedAt: Self.minute(started),
                startedAt: Self.minute(started),
                endedAt: ended.map(Self.minute),
                units: units
            )
        }
        let r = Self.reservation(.training, modelUnits: c.modelUnits, unitsPerModelUnit: c.unitsPerModelUnit, jobs: jobs)
        let advice = try #require(SizingAdvice.advise(r, name: "demo", minutes: [], window: Self.window, now: Self.minute(60)))
        #expect(advice.runningShare == c.share)
        #expect(advice.neededModelUnits == c.needed)
        #expect(advice.verdict == c.verdict)
        #expect(advice.monthlyCostChange == c.monthly)
        #expect(advice.busiestMinuteShare == nil && advice.throttled == nil)
    }

    @Test("a reservation that held nothing in the window gets no advice; the report lists the rest by name")
    func onlyReservationsHeldInTheWindow() {
        var later = Self.reservation(.inference, modelUnits: 1)
        later.id = 8
        later.name = "later"
        later.leases = [Span(start: Self.minute(90), end: nil)]
        let facts = UsageFacts(
            reservations: [Self.reservation(.inference, modelUnits: 3), later],
            invocations: [],
            tokenSamples: [],
            minutes: [
                ReservationMinute(reservationID: 7, minute: Self.minute(2), tokens: 15_000, calls: 10, throttled: 0, budget: 30_000)
            ]
        )
        let query = UsageQuery(from: Self.start, to: Self.minute(60), now: Self.minute(120), grouping: .model, idleThreshold: 86_400, buckets: 4)
        let report = UsageReport.compute(facts, query)
        #expect(report.advice.map(\.reservation) == ["demo"])
        #expect(report.advice.first?.neededModelUnits == 2)
        #expect(report.advice.first?.monthlyCostChange == -14_600)
    }
}
