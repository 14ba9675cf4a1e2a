import BerthCore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

struct AdmissionCase: CustomTestStringConvertible, Sendable {
    var name: String
    var pool: Int
    var booked: [Reservation]
    var units: Int
    var start: Date
    var duration: TimeInterval?
    var wait: Bool = false
    var expected: Admission
    var testDescription: String { name }
}

@Suite("Admission against the capacity calendar")
struct AdmissionTests {
    static let cases: [AdmissionCase] = [
        AdmissionCase(
            name: "fits now on an empty pool",
            pool: 8,
            booked: [],
            units: 4,
            start: t(0),
            duration: 3600,
            expected: .admit(start: t(0), end: t(1))
        ),
        AdmissionCase(
            name: "fits later: refused with the earliest start when the pool is busy until then",
            pool: 8,
            booked: [Fixtures.reservation(1, units: 6, start: t(0), end: t(2), status: .active)],
            units: 4,
            start: t(0),
            duration: 3600,
            expected: .refuse(CapacityRefusal(needed: 4, free: 2, total: 8, earliestStart: t(2)))
        ),
        AdmissionCase(
            name: "never fits: more units than the pool has",
            pool: 8,
            booked: [],
            units: 9,
            start: t(0),
            duration: 3600,
            expected: .refuse(CapacityRefusal(needed: 9, free: 8, total: 8, earliestStart: nil))
        ),
        AdmissionCase(
            name: "never fits even with wait when the pool is too small",
            pool: 8,
            booked: [],
            units: 9,
            start: t(0),
            duration: nil,
            wait: true,
            expected: .refuse(CapacityRefusal(needed: 9, free: 8, total: 8, earliestStart: nil))
        ),
        AdmissionCase(
            name: "advance reservations that touch do not overlap",
            pool: 4,
            booked: [Fixtures.reservation(1, units: 4, start: t(2), end: t(4))],
            units: 4,
            start: t(0),
            duration: 2 * 3600,
            expected: .admit(start: t(0), end: t(2))
        ),
        AdmissionCase(
            name: "an advance reservation one second into another's window does not fit",
            pool: 4,
            booked: [Fixtures.reservation(1, units: 4, start: t(2), end: t(4))],
            units: 4,
            start: t(0),
            duration: 2 * 3600 + 1,
            expected: .refuse(CapacityRefusal(needed: 4, free: 0, total: 4, earliestStart: t(4)))
        ),
        AdmissionCase(
            name: "open-ended reservation blocked for ever by an open-ended one",
            pool: 4,
            booked: [Fixtures.reservation(1, units: 3, start: t(0), end: nil, status: .active)],
            units: 2,
            start: t(0),
            duration: nil,
            expected: .refuse(CapacityRefusal(needed: 2, free: 1, total: 4, earliestStart: nil))
        ),
        AdmissionCase(
            name: "wait queues it when it does not fit now",
            pool: 4,
            booked: [Fixtures.reservation(1, units: 3, start: t(0), end: nil, status: .active)],
            units: 2,
            start: t(0),
            duration: nil,
            wait: true,
            expected: .queue
        ),
        AdmissionCase(
            name: "queued reservations hold no capacity",
            pool: 4,
            booked: [Fixtures.reservation(1, units: 4, start: t(0), end: nil, waiting: true)],
            units: 4,
            start: t(0),
            duration: 3600,
            expected: .admit(start: t(0), end: t(1))
        ),
        AdmissionCase(
            name: "a gap between two bookings is found",
            pool: 2,
            booked: [
                Fixtures.reservation(1, units: 2, start: t(0), end: t(1), status: .active),
                Fixtures.reservation(2, units: 2, start: t(3), end: t(5)),
            ],
            units: 2,
            start: t(0),
            duration: 2 * 3600,
            expected: .refuse(CapacityRefusal(needed: 2, free: 0, total: 2, earliestStart: t(1)))
        ),
    ]

    @Test(arguments: cases)
    func admission(_ c: AdmissionCase) {
        let calendar = CapacityCalendar(total: c.pool, reservations: c.booked)
        let result = Planner.admit(
            units: c.units,
            start: c.start,
            commitment: .none,
            duration: c.duration,
            wait: c.wait,
            calendar: calendar,
            now: t(0)
        )
        #expect(result == c.expected)
    }

    @Test("a one-month commitment ends a calendar month later")
    func commitmentEnd() {
        let start = TimeExpression.parseRFC3339("2026-01-31T10:00:00Z")!
        #expect(Commitment.oneMonth.termEnd(from: start) == TimeExpression.parseRFC3339("2026-02-28T10:00:00Z"))
        #expect(Commitment.sixMonths.termEnd(from: start) == TimeExpression.parseRFC3339("2026-07-31T10:00:00Z"))
        #expect(Commitment.none.termEnd(from: start) == nil)
    }

    @Test("adding units mid-term is admitted only if they are free for the rest of the window")
    func growth() {
        let r = Fixtures.reservation(1, units: 2, start: t(0), end: t(10), status: .active)
        let other = Fixtures.reservation(2, units: 4, start: t(5), end: t(8))
        let calendar = CapacityCalendar(total: 8, reservations: [r, other])
        #expect(Planner.admitGrowth(r, to: 4, calendar: calendar, now: t(1)) == nil)
        #expect(Planner.admitGrowth(r, to: 5, calendar: calendar, now: t(1)) == CapacityRefusal(needed: 3, free: 2, total: 8, earliestStart: nil))
        // Once the other has gone by, the rest of the window is free.
        #expect(Planner.admitGrowth(r, to: 8, calendar: CapacityCalendar(total: 8, reservations: [r]), now: t(9)) == nil)
    }

    @Test("release inside a commitment is refused; without one, or while queued, it is allowed")
    func release() {
        let committed = Fixtures.reservation(1, units: 1, start: t(0), end: t(720), status: .active, commitment: .oneMonth)
        #expect(Planner.release(committed, now: t(1)) == .commitmentActive(until: t(720)))
        #expect(Planner.release(Fixtures.reservation(2, units: 1, start: t(0), end: nil, status: .active), now: t(1)) == .release(at: t(1)))
        let queued = Fixtures.reservation(3, units: 1, start: t(0), end: nil, waiting: true, commitment: .sixMonths)
        #expect(Planner.release(queued, now: t(1)) == .release(at: t(1)))
        var expired = committed
        expired.status = .expired
        #expect(Planner.release(expired, now: t(1)) == .alreadyFinished(.expired))
    }
}

@Suite("Planning cycles")
struct PlanningTests {
    @Test("a reservation that starts now is activated with one lease per unit")
    func activatesNow() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(4))
        sim.reservations[1] = Fixtures.reservation(1, units: 3, start: t(0), end: t(2))
        let plan = Planner.plan(sim.snapshot, now: t(0))
        #expect(plan.steps == [.activate(reservationID: 1, start: t(0), end: t(2), units: ["cpu-0", "cpu-1", "cpu-2"], leaseStart: t(0))])
        #expect(plan.nextWake == t(2))
    }

    @Test("a future reservation waits, then is activated at its start and expired at its end")
    func advanceLifecycle() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(2))
        sim.reservations[1] = Fixtures.reservation(1, units: 2, start: t(1), end: t(2))
        var plan = Planner.plan(sim.snapshot, now: t(0))
        #expect(plan.steps.isEmpty)
        #expect(plan.nextWake == t(1))
        plan = Planner.plan(sim.snapshot, now: t(1))
        sim.apply(plan)
        #expect(sim.reservations[1]?.status == .active)
        plan = Planner.plan(sim.snapshot, now: t(2))
        #expect(plan.steps == [.expire(reservationID: 1, at: t(2))])
        sim.apply(plan)
        #expect(sim.held.isEmpty)
        #expect(sim.leases.allSatisfy { $0.end == t(2) })
    }

    @Test("a daemon that was down catches up in time order, so touching windows reuse units without overlap")
    func catchUp() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(2))
        sim.reservations[1] = Fixtures.reservation(1, units: 2, start: t(0), end: t(1))
        sim.reservations[2] = Fixtures.reservation(2, units: 2, start: t(1), end: t(3))
        sim.reservations[3] = Fixtures.reservation(3, units: 2, start: t(3), end: nil)
        // Down from before t(0) until t(5): all of it happens in one cycle.
        let plan = Planner.plan(sim.snapshot, now: t(5))
        sim.apply(plan)
        #expect(sim.reservations[1]?.status == .expired)
        #expect(sim.reservations[2]?.status == .expired)
        #expect(sim.reservations[3]?.status == .active)
        #expect(sim.overlappingLeases(now: t(5)).isEmpty)
        #expect(sim.leases.filter { $0.reservationID == 2 }.allSatisfy { $0.start == t(1) && $0.end == t(3) })
    }

    @Test("queued reservations start, oldest first, when capacity frees")
    func waitingStartsWhenFreed() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(4))
        sim.reservations[1] = Fixtures.reservation(1, units: 4, start: t(0), end: nil)
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        sim.reservations[2] = Fixtures.reservation(2, units: 3, start: t(0), end: nil, waiting: true, duration: 3600)
        sim.reservations[3] = Fixtures.reservation(3, units: 2, start: t(0), end: nil, waiting: true)
        var plan = Planner.plan(sim.snapshot, now: t(1))
        #expect(plan.steps.isEmpty)
        #expect(plan.deferred.map(\.reservationID) == [2, 3])
        sim.release(1, at: t(2))
        plan = Planner.plan(sim.snapshot, now: t(2))
        sim.apply(plan)
        #expect(sim.reservations[2]?.status == .active)
        #expect(sim.reservations[2]?.start == t(2))
        #expect(sim.reservations[2]?.end == t(3))
        #expect(sim.reservations[3]?.status == .pending)
        #expect(plan.deferred.map(\.reservationID) == [3])
    }

    @Test("units added mid-term get leases from now, and earlier ones are kept")
    func growsMidTerm() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(4))
        sim.reservations[1] = Fixtures.reservation(1, units: 1, start: t(0), end: t(10))
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        sim.reservations[1]?.units = 3
        let plan = Planner.plan(sim.snapshot, now: t(4))
        #expect(plan.steps == [.grow(reservationID: 1, units: ["cpu-1", "cpu-2"], at: t(4))])
        sim.apply(plan)
        #expect(sim.held.count == 3)
        #expect(sim.leases[0].start == t(0))
    }

    @Test("a plan changes the serve processes only when it activates, grows or ends an inference reservation")
    func changesInference() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(4))
        var training = Fixtures.reservation(1, units: 2, start: t(0), end: t(2))
        training.purpose = .training
        sim.reservations[1] = training
        sim.reservations[2] = Fixtures.reservation(2, units: 1, start: t(1), end: t(3))
        var plan = Planner.plan(sim.snapshot, now: t(0))
        #expect(plan.steps.map(\.reservationID) == [1])
        #expect(!plan.changesInference(of: sim.snapshot.reservations))
        sim.apply(plan)
        plan = Planner.plan(sim.snapshot, now: t(1))
        #expect(plan.steps.map(\.reservationID) == [2])
        #expect(plan.changesInference(of: sim.snapshot.reservations))
        sim.apply(plan)
        // Both end in one cycle: the inference one among them is enough.
        plan = Planner.plan(sim.snapshot, now: t(3))
        #expect(Set(plan.steps.compactMap(\.reservationID)) == [1, 2])
        #expect(plan.changesInference(of: sim.snapshot.reservations))
        // A job's step names no reservation.
        #expect(PlanStep.startJob(jobID: 7, units: ["cpu-0"], at: t(0)).reservationID == nil)
        #expect(!Plan(steps: [.startJob(jobID: 7, units: ["cpu-0"], at: t(0))]).changesInference(of: sim.snapshot.reservations))
    }

    @Test("a unit freed after a reservation's start is not handed out for the past")
    func noBackdatingOntoFreshlyFreedUnits() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(1))
        sim.reservations[1] = Fixtures.reservation(1, units: 1, start: t(0), end: nil)
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        // An admitted start that fell due while the unit was still held (e.g. a unit the config dropped and re-added).
        sim.reservations[2] = Fixtures.reservation(2, units: 1, start: t(1), end: t(8))
        sim.release(1, at: t(3))
        sim.apply(Planner.plan(sim.snapshot, now: t(4)))
        #expect(sim.overlappingLeases(now: t(4)).isEmpty)
        #expect(sim.leases.last?.start == t(4))
    }
}

@Suite("Invariants")
struct PlannerPropertyTests {
    /// A small deterministic generator (SplitMix64), so a failing seed can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("no unit is ever in two overlapping leases, whatever is reserved, released or grown", arguments: 0..<40)
    func noDoubleBooking(seed: Int) {
        var rng = SplitMix(state: UInt64(seed) &* 7919 &+ 1)
        let poolSize = Int.random(in: 1...8, using: &rng)
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(poolSize))
        var now = Fixtures.epoch
        var nextID: Int64 = 1
        for _ in 0..<60 {
            now = now.addingTimeInterval(Double(Int.random(in: 0...5, using: &rng)) * 900)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                // Reserve through admission, as the server does.
                let units = Int.random(in: 1...max(1, poolSize), using: &rng)
                let start = now.addingTimeInterval(Double(Int.random(in: 0...8, using: &rng)) * 900)
                let duration: TimeInterval? = Bool.random(using: &rng) ? Double(Int.random(in: 1...12, using: &rng)) * 900 : nil
                let wait = Int.random(in: 0..<4, using: &rng) == 0
                let admission = Planner.admit(
                    units: units,
                    start: start,
                    commitment: .none,
                    duration: duration,
                    wait: wait,
                    calendar: sim.snapshot.calendar,
                    now: now
                )
                switch admission {
                case .admit(let s, let e):
                    sim.reservations[nextID] = Fixtures.reservation(nextID, units: units, start: s, end: e, createdAt: now)
                case .queue:
                    sim.reservations[nextID] = Fixtures.reservation(
                        nextID,
                        units: units,
                        start: start,
                        end: nil,
                        waiting: true,
                        duration: duration,
                        createdAt: now
                    )
                case .refuse:
                    break
                }
                nextID += 1
            case 5..<7:
                if let victim = sim.reservations.values.filter({ !$0.status.isTerminal }).randomElement(using: &rng) {
                    sim.release(victim.id, at: now)
                }
            case 7:
                if let r = sim.reservations.values.filter({ $0.status == .active }).randomElement(using: &rng) {
                    let target = r.units + Int.random(in: 1...2, using: &rng)
                    if Planner.admitGrowth(r, to: target, calendar: sim.snapshot.calendar, now: now) == nil {
                        sim.reservations[r.id]?.units = target
                    }
                }
            default:
                break
            }
            // Sometimes the daemon is down for a while and catches up in one cycle.
            if Int.random(in: 0..<3, using: &rng) > 0 {
                sim.apply(Planner.plan(sim.snapshot, now: now))
            }
            #expect(sim.overlappingLeases(now: now).isEmpty, "seed \(seed): a unit is in two overlapping leases")
            let heldUnits = sim.held.map { sim.leases[$0].unit }
            #expect(Set(heldUnits).count == heldUnits.count, "seed \(seed): a unit is held twice")
            for r in sim.reservations.values where r.status == .active {
                #expect(sim.held.contains { sim.leases[$0].reservationID == r.id }, "seed \(seed): active without leases")
            }
        }
    }
}

@Suite("Time and names")
struct ParsingTests {
    @Test(arguments: [("now", 0.0), ("+2h", 7200), ("-7d", -604_800), ("+90s", 90)])
    func offsets(text: String, seconds: Double) {
        #expect(TimeExpression.parse(text, now: t(0)) == t(0).addingTimeInterval(seconds))
    }

    @Test func rfc3339() {
        #expect(TimeExpression.parse("2026-11-01T00:00:00Z", now: t(5)) == t(0))
        #expect(TimeExpression.parse("tomorrow", now: t(0)) == nil)
        #expect(TimeExpression.parseDuration("30m") == 1800)
        #expect(TimeExpression.parseDuration("8x") == nil)
        #expect(TimeExpression.parseDuration("-1h") == nil)
    }

    @Test(arguments: ["a", "alpha-1", "0", String(repeating: "a", count: 63)])
    func validNames(_ name: String) throws {
        try ReservationName.validate(name)
    }

    @Test(arguments: ["", "-a", "Alpha", "a_b", "a b", String(repeating: "a", count: 64), "../etc", "é"])
    func invalidNames(_ name: String) {
        #expect(throws: FieldError.self) { try ReservationName.validate(name) }
    }
}
