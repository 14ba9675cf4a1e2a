import BerthCore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

@Suite("Job placement")
struct JobPlanningTests {
    func job(
        _ id: Int64,
        units: Int,
        priority: Int = 0,
        status: JobStatus = .queued,
        on reservation: Int64 = 1,
        at hours: Double = 0,
        running: [String] = []
    ) -> Job {
        Job(
            id: id,
            name: "j\(id)",
            owner: "alice",
            kind: .fineTuning,
            reservationID: reservation,
            status: status,
            priority: priority,
            modelUnits: units,
            unitsNeeded: units,
            units: running,
            submittedAt: t(hours)
        )
    }

    /// A pool with reservation 1 active on `units` units.
    func simulator(pool: Int = 4, units: Int = 2) -> PlanSimulator {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(pool))
        sim.reservations[1] = Fixtures.reservation(1, units: units, start: t(0), end: nil)
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        return sim
    }

    @Test("queued jobs start in priority order, then submission order, on their reservation's units only")
    func priorityThenSubmission() {
        var sim = simulator(pool: 4, units: 2)
        sim.jobs[1] = job(1, units: 1, priority: 0, at: 0)
        sim.jobs[2] = job(2, units: 1, priority: 5, at: 1)
        sim.jobs[3] = job(3, units: 1, priority: 5, at: 2)
        let plan = Planner.plan(sim.snapshot, now: t(3))
        #expect(plan.steps == [.startJob(jobID: 2, units: ["cpu-0"], at: t(3)), .startJob(jobID: 3, units: ["cpu-1"], at: t(3))])
    }

    @Test("the queue is strict: a job that does not fit holds back smaller ones behind it")
    func strictOrder() {
        var sim = simulator(pool: 4, units: 2)
        sim.jobs[1] = job(1, units: 1, status: .running, running: ["cpu-0"])
        sim.jobs[2] = job(2, units: 2, priority: 1, at: 1)
        sim.jobs[3] = job(3, units: 1, priority: 0, at: 2)
        #expect(Planner.plan(sim.snapshot, now: t(3)).steps.isEmpty)
    }

    @Test("jobs wait while their reservation is pending")
    func pendingReservation() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(2))
        sim.reservations[1] = Fixtures.reservation(1, units: 2, start: t(5), end: nil)
        sim.jobs[1] = job(1, units: 2)
        #expect(Planner.plan(sim.snapshot, now: t(1)).steps.isEmpty)
        let later = Planner.plan(sim.snapshot, now: t(5))
        #expect(later.steps.contains(.startJob(jobID: 1, units: ["cpu-0", "cpu-1"], at: t(5))))
    }

    @Test("when a reservation ends, its running jobs are stopped and its queued jobs cancelled")
    func reservationEnds() {
        var sim = simulator(pool: 2, units: 2)
        sim.jobs[1] = job(1, units: 1, status: .running, running: ["cpu-0"])
        sim.jobs[2] = job(2, units: 2)
        sim.release(1, at: t(1))
        let plan = Planner.plan(sim.snapshot, now: t(1))
        #expect(plan.steps == [.stopJob(jobID: 1, reason: .reservationEnded, at: t(1)), .cancelJob(jobID: 2, reason: .reservationEnded, at: t(1))])
    }

    @Test("a reservation that ends keeps the units its runners still run on, and no one else gets them meanwhile")
    func endedReservationKeepsBusyUnits() {
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(2))
        sim.reservations[1] = Fixtures.reservation(1, units: 2, start: t(0), end: t(2))
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        sim.jobs[1] = job(1, units: 1, status: .running, running: ["cpu-0"])
        sim.reservations[2] = Fixtures.reservation(2, units: 2, start: t(2), end: nil)
        let plan = Planner.plan(sim.snapshot, now: t(2))
        sim.apply(plan)
        #expect(plan.steps.contains(.stopJob(jobID: 1, reason: .reservationEnded, at: t(2))))
        // Reservation 2 waits for cpu-0: it is placed only once the runner is gone.
        #expect(!plan.steps.contains { if case .activate(2, _, _, _, _) = $0 { true } else { false } })
        #expect(sim.overlappingLeases(now: t(2)).isEmpty)
        sim.jobs[1]?.status = .stopped
        sim.close(1, at: t(2.1))
        let later = Planner.plan(sim.snapshot, now: t(2.1))
        sim.apply(later)
        #expect(sim.reservations[2]?.status == .active)
        #expect(sim.overlappingLeases(now: t(2.1)).isEmpty)
    }

    @Test("a stopping job keeps its units until its process is gone")
    func stoppingHoldsUnits() {
        var sim = simulator(pool: 2, units: 1)
        sim.jobs[1] = job(1, units: 1, status: .stopping, running: ["cpu-0"])
        sim.jobs[2] = job(2, units: 1)
        #expect(Planner.plan(sim.snapshot, now: t(1)).steps.isEmpty)
    }

    @Test("no unit ever runs two jobs, and every job runs inside its reservation", arguments: 0..<25)
    func placementInvariants(seed: Int) {
        var rng = PlannerPropertyTests.SplitMix(state: UInt64(seed) &* 104_729 &+ 3)
        var sim = PlanSimulator(units: Fixtures.dedicatedUnits(6))
        for id in Int64(1)...3 {
            sim.reservations[id] = Fixtures.reservation(id, units: Int.random(in: 1...2, using: &rng), start: t(0), end: nil)
        }
        sim.apply(Planner.plan(sim.snapshot, now: t(0)))
        var nextJob: Int64 = 1
        for step in 1...50 {
            let now = t(Double(step))
            switch Int.random(in: 0..<4, using: &rng) {
            case 0, 1:
                let reservation = Int64.random(in: 1...3, using: &rng)
                let size = sim.reservations[reservation]!.units
                sim.jobs[nextJob] = job(
                    nextJob,
                    units: Int.random(in: 1...size, using: &rng),
                    priority: Int.random(in: 0...3, using: &rng),
                    on: reservation,
                    at: Double(step)
                )
                nextJob += 1
            case 2:
                // A running job finishes.
                if let done = sim.jobs.values.filter({ $0.status == .running }).randomElement(using: &rng) {
                    sim.jobs[done.id]?.status = .completed
                }
            default:
                break
            }
            sim.apply(Planner.plan(sim.snapshot, now: now))
            let running = sim.jobs.values.filter { $0.status == .running || $0.status == .stopping }
            let used = running.flatMap(\.units)
            #expect(Set(used).count == used.count, "seed \(seed): a unit runs two jobs")
            for job in running {
                let held = Set(sim.held.map { sim.leases[$0] }.filter { $0.reservationID == job.reservationID }.map(\.unit))
                #expect(Set(job.units).isSubset(of: held), "seed \(seed): job \(job.id) runs outside its reservation")
                #expect(job.units.count == job.unitsNeeded)
            }
        }
    }
}
