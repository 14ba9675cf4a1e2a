public import BerthCore
public import Foundation

/// Small, fixed values the tests share.
public enum Fixtures {
    /// A fixed instant: 2026-11-01T00:00:00Z.
    public static let epoch = Date(timeIntervalSince1970: 1_793_491_200)

    /// `epoch` plus some hours.
    public static func t(_ hours: Double) -> Date { epoch.addingTimeInterval(hours * 3600) }

    public static func dedicatedUnits(_ count: Int) -> [String] { (0..<count).map { "cpu-\($0)" } }

    public static let textModel = Model(
        id: "amazon.nova-micro-v1:0",
        provider: "Amazon",
        inputModalities: [.text],
        outputModalities: [.text],
        maxTokens: 128_000,
        onDemand: true,
        customizations: [.fineTuning, .distillation],
        unitsPerModelUnit: 1,
        tokensPerMinute: 10_000,
        price: ModelPrice(modelUnitHour: [.none: 20, .oneMonth: 16, .sixMonths: 12])
    )

    /// A reservation holding `units` compute units over `[start, end)`.
    public static func reservation(
        _ id: Int64,
        units: Int,
        start: Date,
        end: Date?,
        status: ReservationStatus = .pending,
        waiting: Bool = false,
        commitment: Commitment = .none,
        duration: TimeInterval? = nil,
        createdAt: Date? = nil
    ) -> Reservation {
        Reservation(
            id: id,
            name: "r\(id)",
            owner: "alice",
            model: textModel.id,
            purpose: .inference,
            modelUnits: units,
            units: units,
            commitment: commitment,
            start: start,
            end: end,
            duration: duration,
            status: status,
            waiting: waiting,
            createdAt: createdAt ?? epoch.addingTimeInterval(Double(id))
        )
    }
}

/// Applies plans to an in-memory copy of the state, as the ledger does, so pure tests can run
/// many cycles and check what a sequence of plans did to the leases.
public struct PlanSimulator {
    public var units: [String]
    public var reservations: [Int64: Reservation] = [:]
    /// Every lease written, open or closed.
    public var leases: [Lease] = []
    /// Indices into `leases` of those still held.
    public var held: Set<Int> = []
    public var jobs: [Int64: Job] = [:]

    public init(units: [String]) { self.units = units }

    public var snapshot: Snapshot {
        let live = reservations.values.filter { !$0.status.isTerminal }.sorted { $0.id < $1.id }
        var freeSince: [String: Date] = [:]
        for (i, lease) in leases.enumerated() where !held.contains(i) {
            if let end = lease.end { freeSince[lease.unit] = max(freeSince[lease.unit] ?? end, end) }
        }
        return Snapshot(
            dedicatedUnits: units,
            reservations: live,
            heldLeases: held.sorted().map { leases[$0] },
            unitFreeSince: freeSince,
            jobs: jobs.values.filter { !$0.status.isTerminal }.sorted { $0.id < $1.id }
        )
    }

    public mutating func apply(_ plan: Plan) {
        for step in plan.steps {
            switch step {
            case .activate(let id, let start, let end, let units, let leaseStart):
                reservations[id]?.status = .active
                reservations[id]?.waiting = false
                reservations[id]?.start = start
                reservations[id]?.end = end
                for unit in units {
                    leases.append(Lease(unit: unit, reservationID: id, start: leaseStart, end: end))
                    held.insert(leases.count - 1)
                }
            case .grow(let id, let units, let at):
                for unit in units {
                    leases.append(Lease(unit: unit, reservationID: id, start: at, end: reservations[id]?.end))
                    held.insert(leases.count - 1)
                }
            case .expire(let id, let at):
                reservations[id]?.status = .expired
                close(id, at: at)
            case .startJob(let id, let units, _):
                jobs[id]?.status = .running
                jobs[id]?.units = units
            case .stopJob(let id, _, _):
                jobs[id]?.status = .stopping
            case .cancelJob(let id, _, _):
                jobs[id]?.status = .stopped
            }
        }
    }

    public mutating func release(_ id: Int64, at: Date) {
        reservations[id]?.status = .deleted
        close(id, at: at)
    }

    public mutating func close(_ id: Int64, at: Date) {
        let busy = Set(jobs.values.filter { $0.status == .running || $0.status == .stopping }.flatMap(\.units))
        for i in held where leases[i].reservationID == id && !busy.contains(leases[i].unit) {
            leases[i].end = min(leases[i].end ?? at, at)
            held.remove(i)
        }
    }

    /// Pairs of leases on the same unit whose windows overlap; empty when the pool is sound.
    public func overlappingLeases(now: Date) -> [(Lease, Lease)] {
        var found: [(Lease, Lease)] = []
        let byUnit = Dictionary(grouping: leases.indices, by: { leases[$0].unit })
        for indices in byUnit.values {
            for (a, i) in indices.enumerated() {
                for j in indices[(a + 1)...] {
                    let (x, y) = (leases[i], leases[j])
                    let xEnd = held.contains(i) ? (x.end ?? .distantFuture) : (x.end ?? now)
                    let yEnd = held.contains(j) ? (y.end ?? .distantFuture) : (y.end ?? now)
                    if x.start < yEnd && y.start < xEnd && x.start < xEnd && y.start < yEnd { found.append((x, y)) }
                }
            }
        }
        return found
    }
}
