public import BerthCore
public import BerthStore
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The scheduler loop: runs a planning cycle when a change rings it or when the next start or
/// end falls due, and sleeps otherwise.
public final class Scheduler: Service, Sendable {
    private let ledger: Ledger
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let wakeUps = WakeUps()
    /// Even with nothing due, look again this often: a safety net against a clock jump, not polling.
    private let longestSleep: TimeInterval = 60
    /// Why the loop should run its next cycle: a change asked for one now, or the earliest
    /// time a cycle that already ran (the loop's own, or a commit batch's) said it is due.
    private let wanted = Mutex<(now: Bool, due: Date?)>((false, nil))
    /// Told after every cycle that started or stopped jobs (the job supervisor).
    private let afterJobChanges: @Sendable () -> Void

    public init(ledger: Ledger, clock: @escaping @Sendable () -> Date, logger: Logger, afterJobChanges: @escaping @Sendable () -> Void = {}) {
        self.ledger = ledger
        self.clock = clock
        self.logger = logger
        self.afterJobChanges = afterJobChanges
    }

    /// One cycle inside the caller's transaction: plan from what is committed, apply the plan.
    /// Handlers call it after their change so the answer already shows its effect.
    public static func cycle(_ tx: LedgerTransaction, now: Date) throws -> Plan {
        try cycleNotingServes(tx, now: now).plan
    }

    /// `cycle`, and whether its plan starts, grows or ends an inference reservation: whether
    /// the serve supervisor has anything to start or stop because of it.
    static func cycleNotingServes(_ tx: LedgerTransaction, now: Date) throws -> (plan: Plan, changesServes: Bool) {
        let snapshot = try tx.snapshot(planningAt: now)
        let plan = Planner.plan(snapshot, now: now)
        try tx.apply(plan)
        return (plan, plan.changesInference(of: snapshot.reservations))
    }

    /// Asks for a cycle soon: something changed.
    public func wake() {
        wanted.withLock { $0.now = true }
        wakeUps.ring()
    }

    /// Another transaction has just run a full cycle (`cycle`) after its changes: nothing is
    /// left to place now, so no cycle is needed until `due`, the next start or end it found.
    /// The loop only wakes earlier than it meant to if that time is earlier.
    public func cycleRan(nextDue due: Date?) {
        if noteDue(due) { wakeUps.ring() }
    }

    /// Keeps the earlier of `due` and the time already noted; says whether `due` was earlier.
    private func noteDue(_ due: Date?) -> Bool {
        guard let due else { return false }
        return wanted.withLock { wanted -> Bool in
            guard wanted.due.map({ due < $0 }) ?? true else { return false }
            wanted.due = due
            return true
        }
    }

    /// Runs one cycle in its own transaction and logs what it did.
    @discardableResult
    public func runCycle() async throws -> Plan {
        // The clock is read inside the write: a time read before waiting for the writer could be
        // earlier than the start of a reservation committed meanwhile.
        let plan = try await ledger.write { [clock] tx in try Self.cycle(tx, now: clock()) }
        for step in plan.steps {
            switch step {
            case .activate(let id, _, let end, let units, let leaseStart):
                logger.info(
                    "reservation activated",
                    metadata: [
                        "reservation": "\(id)", "units": "\(units.joined(separator: ","))",
                        "lease_start": "\(TimeExpression.format(leaseStart))", "end": "\(end.map(TimeExpression.format) ?? "open")",
                    ]
                )
            case .grow(let id, let units, _):
                logger.info("reservation grew", metadata: ["reservation": "\(id)", "units": "\(units.joined(separator: ","))"])
            case .expire(let id, let at):
                logger.info("reservation expired", metadata: ["reservation": "\(id)", "at": "\(TimeExpression.format(at))"])
            case .startJob(let id, let units, _):
                logger.info("job started", metadata: ["job": "\(id)", "units": "\(units.joined(separator: ","))"])
            case .stopJob(let id, let reason, _):
                logger.info("job stopping", metadata: ["job": "\(id)", "reason": "\(reason.rawValue)"])
            case .cancelJob(let id, let reason, _):
                logger.info("queued job cancelled", metadata: ["job": "\(id)", "reason": "\(reason.rawValue)"])
            }
        }
        if !plan.steps.isEmpty { afterJobChanges() }
        for noFit in plan.deferred {
            logger.debug("reservation not placed", metadata: ["reservation": "\(noFit.reservationID)", "reason": "\(noFit.reason)"])
        }
        return plan
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var wakeUps = self.wakeUps.makeIterator()
            // The first cycle runs at once (start-up reconciles what is due).
            var lastCycle = Date.distantPast
            while !Task.isCancelled {
                let now = self.clock()
                let due = self.wanted.withLock { wanted -> Bool in
                    let due = wanted.now || (wanted.due.map { $0 <= now } ?? false) || now >= lastCycle.addingTimeInterval(self.longestSleep)
                    if due { wanted = (false, nil) }
                    return due
                }
                if due {
                    lastCycle = now
                    do {
                        // The loop is about to work out its sleep from this: no need to ring.
                        _ = self.noteDue(try await self.runCycle().nextWake)
                    } catch {
                        // A failed cycle changed nothing (its transaction rolled back); try again soon.
                        // A full disk is logged once, by the ledger, not once a second here.
                        self.logger.log(level: error is LedgerFullError ? .debug : .error, "scheduling cycle failed", metadata: ["error": "\(error)"])
                        _ = self.noteDue(self.clock().addingTimeInterval(1))
                    }
                }
                let until = self.wanted.withLock { wanted in
                    wanted.now ? now : min(wanted.due ?? .distantFuture, lastCycle.addingTimeInterval(self.longestSleep))
                }
                // 5 ms past the due time, so the next cycle does not wake a hair too early.
                let sleep = Duration.milliseconds(Int64(max(0, until.timeIntervalSince(self.clock())) * 1000) + 5)
                guard await self.wakeUps.next(&wakeUps, within: sleep, clock: ContinuousClock()) else { break }
            }
        }
    }
}

/// A wake-up call to a service made after the caller: two services that wake each other.
public final class WakeRelay: Sendable {
    private let target = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    public func connect(_ wake: @escaping @Sendable () -> Void) {
        target.withLock { $0 = wake }
    }

    public func fire() {
        target.withLock { $0 }?()
    }
}
