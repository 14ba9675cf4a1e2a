public import FoundationEssentials

/// What the planner sees: the dedicated pool and every reservation that is not finished.
public struct Snapshot: Sendable {
    /// Dedicated unit ids, in the order units are handed out.
    public var dedicatedUnits: [String]
    /// Reservations that are `pending` or `active`.
    public var reservations: [Reservation]
    /// Leases of active reservations: which unit each one holds now.
    public var heldLeases: [Lease]
    /// When each unit's last closed lease ended; a unit is not handed out for a time before that.
    public var unitFreeSince: [String: Date]
    /// Jobs running or stopping, and queued jobs: each live reservation's queue, or at least its
    /// head (a job needs a unit, so a reservation of N units starts at most N jobs in a cycle;
    /// the ledger hands over no more than that).
    public var jobs: [Job]
    /// The executor of each unit not of this host (`"slurm"`): a reservation is placed on
    /// units of one executor, so one runner never spans two. Empty: every unit is this host's.
    public var unitExecutors: [String: String] = [:]

    public init(
        dedicatedUnits: [String],
        reservations: [Reservation],
        heldLeases: [Lease],
        unitFreeSince: [String: Date] = [:],
        jobs: [Job] = [],
        unitExecutors: [String: String] = [:]
    ) {
        self.dedicatedUnits = dedicatedUnits
        self.reservations = reservations
        self.heldLeases = heldLeases
        self.unitFreeSince = unitFreeSince
        self.jobs = jobs
        self.unitExecutors = unitExecutors
    }

    public var calendar: CapacityCalendar {
        CapacityCalendar(total: dedicatedUnits.count, reservations: reservations)
    }

    /// Each executor's dedicated units and what is booked on them, in unit order: a
    /// reservation runs on units of one executor, so it is admitted against one pool.
    ///
    /// A reservation counts in the pool of the units it holds; one not started yet, in the pool
    /// it was admitted on. One admitted before executors were recorded (or on an executor the
    /// config no longer has) counts in the first pool with room for it over its window, oldest
    /// first, as the planner would place it.
    public var pools: [ExecutorPool] {
        var order: [String] = []
        var sizes: [String: Int] = [:]
        for unit in dedicatedUnits {
            let executor = unitExecutors[unit] ?? ""
            if sizes[executor] == nil { order.append(executor) }
            sizes[executor, default: 0] += 1
        }
        var holding: [Int64: String] = [:]
        for lease in heldLeases where holding[lease.reservationID] == nil {
            holding[lease.reservationID] = unitExecutors[lease.unit] ?? ""
        }
        var booked: [String: [Reservation]] = [:]
        var unplaced: [Reservation] = []
        for r in reservations where r.holdsCapacity {
            if let executor = holding[r.id] ?? r.executor, sizes[executor] != nil {
                booked[executor, default: []].append(r)
            } else {
                unplaced.append(r)
            }
        }
        for r in unplaced.sorted(by: { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }) {
            let fit = order.first { executor in
                CapacityCalendar(total: sizes[executor]!, reservations: booked[executor] ?? []).minFree(from: r.start, to: r.end) >= r.units
            }
            booked[fit ?? order.first ?? "", default: []].append(r)
        }
        return order.map { ExecutorPool(executor: $0, calendar: CapacityCalendar(total: sizes[$0]!, reservations: booked[$0] ?? [])) }
    }

    /// The calendar `reservation` grows in: its executor's pool (the whole pool for one that
    /// holds no capacity yet).
    public func growthCalendar(of reservation: Reservation) -> CapacityCalendar {
        pools.first { $0.calendar.bookings.contains { $0.reservationID == reservation.id } }?.calendar ?? calendar
    }

    /// Executors whose reservations get their units at admission: Slurm reserves named nodes
    /// for a window, so the nodes it holds for a reservation that starts tomorrow must be the
    /// ones berth hands out then. This host's units stay interchangeable until a start.
    public static let pinningExecutors: Set<String> = ["slurm"]

    /// The units of `executor`, in unit order, that are free for the whole of `[from, to)`:
    /// held by no reservation whose window reaches past `from`, and pinned by no other pending
    /// reservation whose window overlaps it. A unit still held by a reservation that ended (its
    /// runner is stopping) is taken as free for a start after `now`.
    public func unitsFree(of executor: String, from: Date, to: Date?, excluding: Int64? = nil, now: Date) -> [String] {
        var byID: [Int64: Reservation] = [:]
        for r in reservations { byID[r.id] = r }
        var blocked = Set<String>()
        for lease in heldLeases where lease.reservationID != excluding {
            if let r = byID[lease.reservationID], r.status == .active {
                if r.end.map({ $0 > from }) ?? true { blocked.insert(lease.unit) }
            } else if from <= now {
                blocked.insert(lease.unit)
            }
        }
        for r in reservations where r.id != excluding && r.status == .pending && r.overlaps(from, to) {
            blocked.formUnion(r.pinnedUnits)
        }
        return dedicatedUnits.filter { (unitExecutors[$0] ?? "") == executor && !blocked.contains($0) }
    }
}

/// One executor's dedicated units and the reservations booked on them.
public struct ExecutorPool: Sendable, Equatable {
    /// `""` for this host's units, `"slurm"` for units on Slurm nodes.
    public var executor: String
    public var calendar: CapacityCalendar

    public init(executor: String, calendar: CapacityCalendar) {
        self.executor = executor
        self.calendar = calendar
    }
}

/// "Does not fit" is data: a reservation that could not be placed, and why.
public struct NoFit: Sendable, Equatable {
    public var reservationID: Int64
    public var reason: String

    public init(reservationID: Int64, reason: String) {
        self.reservationID = reservationID
        self.reason = reason
    }
}

/// Changes to the ledger, in the order they happened.
public enum PlanStep: Sendable, Equatable {
    /// The reservation becomes active over `[start, end)`; its leases on `units` start at `leaseStart`.
    case activate(reservationID: Int64, start: Date, end: Date?, units: [String], leaseStart: Date)
    /// An active reservation that was given more units gets leases on `units` from `at`.
    case grow(reservationID: Int64, units: [String], at: Date)
    /// The reservation reached its end at `at`; its leases end there.
    case expire(reservationID: Int64, at: Date)
    /// A queued job starts on `units` of its reservation.
    case startJob(jobID: Int64, units: [String], at: Date)
    /// A running job must stop (its reservation ended): SIGTERM, then SIGKILL after the grace period.
    case stopJob(jobID: Int64, reason: JobEndReason, at: Date)
    /// A queued job can never run (its reservation ended): it is stopped without running.
    case cancelJob(jobID: Int64, reason: JobEndReason, at: Date)
}

extension PlanStep {
    /// Whether the step starts, stops or cancels a job, rather than changing a reservation.
    public var isJobStep: Bool {
        switch self {
        case .startJob, .stopJob, .cancelJob: true
        case .activate, .grow, .expire: false
        }
    }

    /// The reservation a step changes; nil for a job's step.
    public var reservationID: Int64? {
        switch self {
        case .activate(let id, _, _, _, _), .grow(let id, _, _), .expire(let id, _): id
        case .startJob, .stopJob, .cancelJob: nil
        }
    }
}

extension Plan {
    /// Whether a step starts, grows or ends one of `reservations` that is for inference: only
    /// those change which serve processes should run. `reservations` are the ones planned
    /// over, which hold every reservation a step can name.
    public func changesInference(of reservations: [Reservation]) -> Bool {
        let changed = Set(steps.compactMap(\.reservationID))
        return !changed.isEmpty && reservations.contains { $0.purpose == .inference && changed.contains($0.id) }
    }
}

public struct Plan: Sendable, Equatable {
    public var steps: [PlanStep] = []
    public var deferred: [NoFit] = []
    /// When the next start or end falls due; the scheduler sleeps until then unless woken.
    public var nextWake: Date?

    public init(steps: [PlanStep] = [], deferred: [NoFit] = [], nextWake: Date? = nil) {
        self.steps = steps
        self.deferred = deferred
        self.nextWake = nextWake
    }

    public var isEmpty: Bool { steps.isEmpty }
}

/// Why a reservation cannot be admitted: how many units are free over its window, and the
/// earliest start that would fit (`nil`: never, the pool is too small or blocked for ever).
public struct CapacityRefusal: Sendable, Equatable {
    public var needed: Int
    public var free: Int
    public var total: Int
    public var earliestStart: Date?

    public init(needed: Int, free: Int, total: Int, earliestStart: Date?) {
        self.needed = needed
        self.free = free
        self.total = total
        self.earliestStart = earliestStart
    }
}

public enum Admission: Sendable, Equatable {
    /// Capacity is promised over `[start, end)`.
    case admit(start: Date, end: Date?)
    /// No capacity now; queued as `pending` until some frees (`--wait`).
    case queue
    case refuse(CapacityRefusal)
}

/// Whether a reservation may grow where units are pinned, and the units it then has pinned.
public enum PinnedGrowth: Sendable, Equatable {
    case admit(pinned: [String])
    case refuse(CapacityRefusal)
}

public enum ReleaseDecision: Sendable, Equatable {
    case release(at: Date)
    /// Inside a paid term: the term's end.
    case commitmentActive(until: Date)
    case alreadyFinished(ReservationStatus)
}

/// The scheduler's decisions, and nothing else: a snapshot and the time in, a plan out.
public enum Planner {
    /// Decides whether a new reservation of `units` compute units can be promised.
    public static func admit(
        units: Int,
        start: Date,
        commitment: Commitment,
        duration: TimeInterval?,
        wait: Bool,
        calendar: CapacityCalendar,
        now: Date
    ) -> Admission {
        let end = Reservation.end(start: start, commitment: commitment, duration: duration)
        let free = calendar.minFree(from: start, to: end)
        if free >= units { return .admit(start: start, end: end) }
        let length = end.map { $0.timeIntervalSince(start) }
        let earliest = calendar.earliestStart(units: units, notBefore: max(start, now), length: length)
        // Waiting only makes sense if the pool could ever hold it.
        if wait && units <= calendar.total { return .queue }
        return .refuse(CapacityRefusal(needed: units, free: max(free, 0), total: calendar.total, earliestStart: earliest))
    }

    /// Decides whether a new reservation of `units` can be promised on one executor's units:
    /// the first pool, in unit order, that holds it over its whole window. On an executor that
    /// pins units (`Snapshot.pinningExecutors`) it also chooses them: `units` of that executor
    /// free for the whole window. A pool whose count fits but where no units are free for the
    /// whole window (one pinned for tomorrow, another held until noon) refuses, with the
    /// earliest start at which some are. Refused with the figures of the pool that comes
    /// closest (the most free units), so the advice is one that can be followed.
    public static func admit(
        units: Int,
        start: Date,
        commitment: Commitment,
        duration: TimeInterval?,
        wait: Bool,
        snapshot: Snapshot,
        now: Date
    ) -> (admission: Admission, executor: String?, pinned: [String]) {
        let pools = snapshot.pools
        let end = Reservation.end(start: start, commitment: commitment, duration: duration)
        var refusals: [CapacityRefusal] = []
        for pool in pools {
            switch admit(units: units, start: start, commitment: commitment, duration: duration, wait: false, calendar: pool.calendar, now: now) {
            case .admit(let start, let end):
                guard Snapshot.pinningExecutors.contains(pool.executor) else { return (.admit(start: start, end: end), pool.executor, []) }
                let free = snapshot.unitsFree(of: pool.executor, from: start, to: end, now: now)
                if free.count >= units { return (.admit(start: start, end: end), pool.executor, Array(free.prefix(units))) }
                refusals.append(
                    CapacityRefusal(
                        needed: units,
                        free: free.count,
                        total: pool.calendar.total,
                        earliestStart: earliestPinnedStart(
                            units: units,
                            notBefore: max(start, now),
                            end: end,
                            start: start,
                            pool: pool,
                            snapshot: snapshot,
                            now: now
                        )
                    )
                )
            case .refuse(let refusal):
                var refusal = refusal
                if Snapshot.pinningExecutors.contains(pool.executor), let earliest = refusal.earliestStart {
                    refusal.earliestStart = earliestPinnedStart(
                        units: units,
                        notBefore: earliest,
                        end: end,
                        start: start,
                        pool: pool,
                        snapshot: snapshot,
                        now: now
                    )
                }
                refusals.append(refusal)
            case .queue: break
            }
        }
        let largest = pools.map(\.calendar.total).max() ?? 0
        if wait && units <= largest { return (.queue, nil, []) }
        let closest = refusals.max { $0.free < $1.free }
        let earliest = refusals.compactMap(\.earliestStart).min()
        return (.refuse(CapacityRefusal(needed: units, free: closest?.free ?? 0, total: largest, earliestStart: earliest)), nil, [])
    }

    /// The earliest start at or after `notBefore` at which both the count and whole units of a
    /// pinning pool hold a window as long as `[start, end)`. Units free up only where a holder
    /// or a pin ends, so those instants are the candidates.
    private static func earliestPinnedStart(
        units: Int,
        notBefore: Date,
        end: Date?,
        start: Date,
        pool: ExecutorPool,
        snapshot: Snapshot,
        now: Date
    ) -> Date? {
        let length = end.map { $0.timeIntervalSince(start) }
        var candidates: Set<Date> = [notBefore]
        for r in snapshot.reservations where r.holdsCapacity { if let end = r.end, end > notBefore { candidates.insert(end) } }
        for candidate in candidates.sorted() {
            let to = length.map { candidate.addingTimeInterval($0) }
            if pool.calendar.minFree(from: candidate, to: to) >= units,
                snapshot.unitsFree(of: pool.executor, from: candidate, to: to, now: now).count >= units
            {
                return candidate
            }
        }
        return nil
    }

    /// Decides whether an admitted reservation can grow to `units` compute units for the rest of
    /// its window. Units are only ever added, never taken away mid-term.
    public static func admitGrowth(_ reservation: Reservation, to units: Int, calendar: CapacityCalendar, now: Date) -> CapacityRefusal? {
        guard reservation.holdsCapacity else { return nil }
        let from = max(now, reservation.start)
        let free = calendar.minFree(from: from, to: reservation.end, excluding: reservation.id)
        if free >= units { return nil }
        return CapacityRefusal(
            needed: units - reservation.units,
            free: max(free - reservation.units, 0),
            total: calendar.total,
            earliestStart: nil
        )
    }

    /// On an executor that pins units, growth to `units` also needs units free for the rest of
    /// the window, one by one: a reservation not started yet gets them pinned too (the units
    /// it will hold, returned), one that runs gets them at the next cycle. Elsewhere, and for a
    /// reservation admitted before pins were kept, the calendar's count is the whole answer.
    public static func admitPinnedGrowth(_ r: Reservation, to units: Int, snapshot: Snapshot, now: Date) -> PinnedGrowth {
        let held = snapshot.heldLeases.filter { $0.reservationID == r.id }.map(\.unit)
        guard let executor = held.first.map({ snapshot.unitExecutors[$0] ?? "" }) ?? r.executor,
            Snapshot.pinningExecutors.contains(executor), r.status == .active || !r.pinnedUnits.isEmpty
        else { return .admit(pinned: r.pinnedUnits) }
        let mine = r.status == .active ? held : r.pinnedUnits
        let free = snapshot.unitsFree(of: executor, from: max(now, r.start), to: r.end, excluding: r.id, now: now).filter { !mine.contains($0) }
        let needed = units - r.units
        guard free.count < needed else { return .admit(pinned: r.status == .active ? r.pinnedUnits : mine + free.prefix(needed)) }
        let total = snapshot.dedicatedUnits.filter { (snapshot.unitExecutors[$0] ?? "") == executor }.count
        return .refuse(CapacityRefusal(needed: needed, free: free.count, total: total, earliestStart: nil))
    }

    /// Release inside a `1m`/`6m` term is refused: the term is paid for. A reservation still
    /// queued with `--wait` has no term yet and can always be withdrawn.
    public static func release(_ reservation: Reservation, now: Date) -> ReleaseDecision {
        if reservation.status.isTerminal { return .alreadyFinished(reservation.status) }
        if reservation.commitment != .none, !reservation.waiting, let end = reservation.end, end > now {
            return .commitmentActive(until: end)
        }
        return .release(at: now)
    }

    /// One scheduling cycle.
    public static func plan(_ snapshot: Snapshot, now: Date) -> Plan {
        var plan = Plan()
        var reservations = Dictionary(uniqueKeysWithValues: snapshot.reservations.map { ($0.id, $0) })
        var holder: [String: Int64] = [:]
        for lease in snapshot.heldLeases { holder[lease.unit] = lease.reservationID }
        var freeSince = snapshot.unitFreeSince

        /// `count` free units of one executor (the first, in unit order, that has them), or
        /// of `executor` when the reservation already holds units of it; never units another
        /// reservation has pinned for a window that overlaps `[time, end)`.
        func place(_ count: Int, at time: Date, until end: Date?, for id: Int64, executor: String? = nil) -> [String]? {
            var pinned = Set<String>()
            for r in reservations.values where r.id != id && r.status == .pending && !r.pinnedUnits.isEmpty && r.overlaps(time, end) {
                pinned.formUnion(r.pinnedUnits)
            }
            let free = snapshot.dedicatedUnits.filter { unit in
                holder[unit] == nil && !pinned.contains(unit) && (freeSince[unit].map { $0 <= time } ?? true)
            }
            var byExecutor: [String: [String]] = [:]
            var order: [String] = []
            for unit in free {
                let group = snapshot.unitExecutors[unit] ?? ""
                if byExecutor[group] == nil { order.append(group) }
                byExecutor[group, default: []].append(unit)
            }
            for group in order where executor.map({ $0 == group }) ?? true {
                if let units = byExecutor[group], units.count >= count { return Array(units.prefix(count)) }
            }
            return nil
        }
        // A unit whose runner has not exited yet stays with its reservation past the end: the
        // lease ends when the runner is gone, so no one else's work starts beside it. Worked
        // out only when a reservation ends: most cycles end none.
        var busyUnits: Set<String>?
        func releaseUnits(of id: Int64, at time: Date) {
            let busy = busyUnits ?? Set(snapshot.jobs.filter { $0.status == .running || $0.status == .stopping }.flatMap(\.units))
            busyUnits = busy
            for (unit, owner) in holder where owner == id && !busy.contains(unit) {
                holder[unit] = nil
                freeSince[unit] = time
            }
        }

        // 1. Gather what fell due up to now: starts of admitted reservations and ends of windows.
        enum Event {
            case expire(Int64, Date)
            case activate(Int64, Date)
        }
        var events: [(event: Event, time: Date, kind: Int, createdAt: Date, id: Int64)] = []
        for r in snapshot.reservations {
            if r.status == .pending && !r.waiting && r.start <= now { events.append((.activate(r.id, r.start), r.start, 1, r.createdAt, r.id)) }
            if r.holdsCapacity, let end = r.end, end <= now { events.append((.expire(r.id, end), end, 0, r.createdAt, r.id)) }
        }
        // 2. Replay them in time order, ends before starts at the same instant (windows that
        //    touch do not overlap), so a daemon that was down catches up with the right times;
        //    older reservations first at the same instant and kind.
        let ordered = events.sorted { a, b in
            (a.time, a.kind, a.createdAt, a.id) < (b.time, b.kind, b.createdAt, b.id)
        }.map(\.event)
        for event in ordered {
            switch event {
            case .expire(let id, let at):
                guard let r = reservations[id], r.status == .active else { continue }
                releaseUnits(of: id, at: at)
                reservations[id]?.status = .expired
                plan.steps.append(.expire(reservationID: id, at: at))
            case .activate(let id, let at):
                guard let r = reservations[id], r.status == .pending else { continue }
                // Units freed late (a unit dropped and re-added, a lease closed after `at`)
                // cannot be handed out in the past: then the leases start now.
                let units: [String]
                let leaseStart: Date
                // On the executor it was admitted on, while the config still has that one; on
                // the units pinned at admission, while the config still has them all.
                let executor = r.executor.flatMap { e in snapshot.dedicatedUnits.contains { (snapshot.unitExecutors[$0] ?? "") == e } ? e : nil }
                let pinned = !r.pinnedUnits.isEmpty && r.pinnedUnits.allSatisfy(snapshot.dedicatedUnits.contains) ? r.pinnedUnits : nil
                func pins(at time: Date) -> [String]? {
                    guard let pinned else { return nil }
                    return pinned.allSatisfy { holder[$0] == nil && (freeSince[$0].map { $0 <= time } ?? true) } ? pinned : nil
                }
                if let early = pinned != nil ? pins(at: at) : place(r.units, at: at, until: r.end, for: id, executor: executor) {
                    (units, leaseStart) = (early, at)
                } else if let late = pinned != nil ? pins(at: now) : place(r.units, at: now, until: r.end, for: id, executor: executor),
                    r.end.map({ $0 > now }) ?? true
                {
                    (units, leaseStart) = (late, now)
                } else if let pinned {
                    plan.deferred.append(
                        NoFit(reservationID: id, reason: "its units \(pinned.joined(separator: ",")) are not all free yet")
                    )
                    continue
                } else {
                    plan.deferred.append(
                        NoFit(
                            reservationID: id,
                            reason: "only \(snapshot.dedicatedUnits.count - holder.count) dedicated units are free, \(r.units) needed"
                        )
                    )
                    continue
                }
                for unit in units { holder[unit] = id }
                reservations[id]?.status = .active
                plan.steps.append(.activate(reservationID: id, start: r.start, end: r.end, units: units, leaseStart: leaseStart))
            }
        }

        // 3. Top up active reservations that were given more units.
        var heldCount: [Int64: Int] = [:]
        for owner in holder.values { heldCount[owner, default: 0] += 1 }
        let short = reservations.values.filter { $0.status == .active && $0.units > heldCount[$0.id, default: 0] }
        for r in short.sorted(by: { $0.id < $1.id }) {
            let missing = r.units - heldCount[r.id, default: 0]
            let executor = holder.first { $0.value == r.id }.map { snapshot.unitExecutors[$0.key] ?? "" }
            if let units = place(missing, at: now, until: r.end, for: r.id, executor: executor) {
                for unit in units { holder[unit] = r.id }
                plan.steps.append(.grow(reservationID: r.id, units: units, at: now))
            } else {
                plan.deferred.append(NoFit(reservationID: r.id, reason: "\(missing) more units needed, not enough free"))
            }
        }

        // 4. Start queued (`--wait`) reservations that now fit for their whole window, oldest
        //    first; a later, smaller one may start while an older, larger one still waits.
        let waiting = reservations.values.filter { $0.status == .pending && $0.waiting && $0.start <= now }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        for r in waiting {
            let end = Reservation.end(start: now, commitment: r.commitment, duration: r.duration)
            var current = snapshot
            current.reservations = Array(reservations.values)
            current.heldLeases = holder.map { Lease(unit: $0.key, reservationID: $0.value, start: now, end: nil) }
            // The first executor whose units hold it for its whole window, and are free now.
            let units = current.pools.lazy.filter { $0.calendar.minFree(from: now, to: end) >= r.units }
                .compactMap { place(r.units, at: now, until: end, for: r.id, executor: $0.executor) }.first
            guard let units else {
                plan.deferred.append(NoFit(reservationID: r.id, reason: "waiting for \(r.units) free dedicated units"))
                continue
            }
            for unit in units { holder[unit] = r.id }
            reservations[r.id]?.status = .active
            reservations[r.id]?.waiting = false
            reservations[r.id]?.start = now
            reservations[r.id]?.end = end
            plan.steps.append(.activate(reservationID: r.id, start: now, end: end, units: units, leaseStart: now))
        }

        // 5. Jobs of reservations that ended stop first; then each active reservation's queue,
        //    in priority then submission order, starts jobs while its free units allow. The
        //    order is strict: a job that does not fit holds back the ones behind it.
        let live = Set(reservations.values.filter { $0.status == .active || $0.status == .pending }.map(\.id))
        let ended = snapshot.jobs.filter { ($0.status == .running || $0.status == .queued) && !live.contains($0.reservationID) }
        for job in ended.sorted(by: { $0.id < $1.id }) {
            plan.steps.append(
                job.status == .running
                    ? .stopJob(jobID: job.id, reason: .reservationEnded, at: now)
                    : .cancelJob(jobID: job.id, reason: .reservationEnded, at: now)
            )
        }
        let queues = Dictionary(grouping: snapshot.jobs.filter { $0.status == .queued && live.contains($0.reservationID) }, by: \.reservationID)
        // The units each reservation's running jobs hold: needed only where a queue waits.
        var busy: [Int64: Set<String>] = [:]
        if !queues.isEmpty {
            for job in snapshot.jobs where (job.status == .running || job.status == .stopping) && queues[job.reservationID] != nil {
                busy[job.reservationID, default: []].formUnion(job.units)
            }
        }
        var heldUnits: [Int64: [String]] = [:]
        if !queues.isEmpty {
            for unit in snapshot.dedicatedUnits { if let owner = holder[unit], queues[owner] != nil { heldUnits[owner, default: []].append(unit) } }
        }
        for (reservationID, queue) in queues.sorted(by: { $0.key < $1.key }) {
            guard reservations[reservationID]?.status == .active else { continue }
            let held = heldUnits[reservationID] ?? []
            var free = held.filter { !(busy[reservationID]?.contains($0) ?? false) }
            for job in queue.sorted(by: Job.queueOrder) {
                guard job.unitsNeeded <= free.count else { break }
                let units = Array(free.prefix(job.unitsNeeded))
                free.removeFirst(job.unitsNeeded)
                plan.steps.append(.startJob(jobID: job.id, units: units, at: now))
            }
        }

        // 6. Sleep until the next start or end.
        var wakes: [Date] = []
        for r in reservations.values {
            if r.status == .pending, r.start > now { wakes.append(r.start) }
            if r.status == .active, let end = r.end, end > now { wakes.append(end) }
        }
        plan.nextWake = wakes.min()
        return plan
    }
}
