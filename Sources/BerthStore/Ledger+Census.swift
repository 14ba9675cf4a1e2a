public import BerthCore
public import Foundation
import GRDB

/// The ledger's state in counts, as `GET /metrics` shows it: read in one transaction at scrape
/// time, so the figures agree with each other and are right straight after a restart.
public struct LedgerCensus: Sendable, Equatable {
    /// Compute units of one pool in one state: `leased` (held by a lease now), `retired`
    /// (dropped from the config, no lease), or `free`.
    public struct UnitCount: Sendable, Equatable {
        public var pool: UnitPool
        public var state: String
        public var count: Int

        public init(pool: UnitPool, state: String, count: Int) {
            self.pool = pool
            self.state = state
            self.count = count
        }
    }

    /// A pending or active reservation, with what `/metrics` says about it.
    public struct LiveReservation: Sendable, Equatable {
        public var id: Int64
        public var name: String
        public var model: String
        public var purpose: Purpose
        public var status: ReservationStatus
        public var queuedJobs: Int
        /// Compute units its leases hold now.
        public var heldUnits: Int = 0
        /// CPU time its ended runners (jobs and serve processes) used, and the most memory one
        /// held, as the kernel counted them (runners berthd could not confine count nothing).
        public var runnerCPUSeconds: Double = 0
        public var runnerPeakMemoryBytes: Int64 = 0
        /// How often its serve process was started again after it died (inference only).
        public var serveRestarts: Int
        /// Tokens it served in the last full minute, and its budget in that minute: the one
        /// recorded with its calls then, else its budget now.
        public var tokensLastMinute: Int
        public var budgetPerMinute: Int

        public init(
            id: Int64,
            name: String,
            model: String,
            purpose: Purpose,
            status: ReservationStatus,
            queuedJobs: Int,
            serveRestarts: Int,
            tokensLastMinute: Int,
            budgetPerMinute: Int
        ) {
            self.id = id
            self.name = name
            self.model = model
            self.purpose = purpose
            self.status = status
            self.queuedJobs = queuedJobs
            self.serveRestarts = serveRestarts
            self.tokensLastMinute = tokensLastMinute
            self.budgetPerMinute = budgetPerMinute
        }
    }

    public var units: [UnitCount]
    /// Every reservation the ledger holds, finished ones included, by status.
    public var reservationsByStatus: [ReservationStatus: Int]
    /// Every job the ledger holds, by status.
    public var jobsByStatus: [JobStatus: Int]
    public var liveReservations: [LiveReservation]

    public init(
        units: [UnitCount],
        reservationsByStatus: [ReservationStatus: Int],
        jobsByStatus: [JobStatus: Int],
        liveReservations: [LiveReservation]
    ) {
        self.units = units
        self.reservationsByStatus = reservationsByStatus
        self.jobsByStatus = jobsByStatus
        self.liveReservations = liveReservations
    }
}

extension LedgerTransaction {
    /// The census at `now`. "The last full minute" is the minute before the one `now` is in:
    /// the current minute is still filling up, so its figure would always read low.
    public func census(now: Date) throws -> LedgerCensus {
        let units = try Row.fetchAll(
            db,
            sql: """
                SELECT pool,
                       CASE WHEN EXISTS (SELECT 1 FROM leases WHERE leases.unit_id = units.id AND leases.held) THEN 'leased'
                            WHEN retired THEN 'retired' ELSE 'free' END,
                       COUNT(*)
                FROM units GROUP BY 1, 2 ORDER BY 1, 2
                """
        ).map { LedgerCensus.UnitCount(pool: try $0.stored(atIndex: 0), state: $0[1], count: $0[2]) }
        func byStatus<Status: RawRepresentable & Hashable>(_ table: String) throws -> [Status: Int] where Status.RawValue == String {
            let rows = try Row.fetchAll(db, sql: "SELECT status, COUNT(*) FROM \(table) GROUP BY status")
            return Dictionary(try rows.map { (try $0.stored(atIndex: 0) as Status, $0[1] as Int) }, uniquingKeysWith: +)
        }
        // The same minute arithmetic as the rollup in `record(_:)`, one minute back.
        let lastMinute = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 60).rounded(.down) * 60 - 60)
        let live = try Row.fetchAll(
            db,
            sql: """
                SELECT r.id, r.name, r.model, r.purpose, r.status, r.serve_restarts,
                       (SELECT COUNT(*) FROM jobs WHERE jobs.reservation_id = r.id AND jobs.status = 'queued'),
                       COALESCE(m.tokens, 0), COALESCE(m.budget, r.model_units * models.tokens_per_minute, 0),
                       (SELECT COUNT(*) FROM leases WHERE leases.reservation_id = r.id AND leases.held),
                       r.serve_cpu_seconds + (SELECT COALESCE(SUM(cpu_seconds), 0) FROM jobs WHERE jobs.reservation_id = r.id),
                       MAX(COALESCE(r.serve_peak_memory_bytes, 0),
                           (SELECT COALESCE(MAX(peak_memory_bytes), 0) FROM jobs WHERE jobs.reservation_id = r.id))
                FROM reservations r
                LEFT JOIN models ON models.id = r.model
                LEFT JOIN reservation_minutes m ON m.reservation_id = r.id AND m.minute = ?
                WHERE r.status IN ('pending', 'active')
                ORDER BY r.id
                """,
            arguments: [lastMinute]
        ).map { row in
            var reservation = LedgerCensus.LiveReservation(
                id: row[0],
                name: row[1],
                model: row[2],
                purpose: try row.stored(atIndex: 3),
                status: try row.stored(atIndex: 4),
                queuedJobs: row[6],
                serveRestarts: row[5],
                tokensLastMinute: row[7],
                budgetPerMinute: row[8]
            )
            reservation.heldUnits = row[9]
            reservation.runnerCPUSeconds = row[10]
            reservation.runnerPeakMemoryBytes = row[11]
            return reservation
        }
        return LedgerCensus(
            units: units,
            reservationsByStatus: try byStatus("reservations"),
            jobsByStatus: try byStatus("jobs"),
            liveReservations: live
        )
    }
}

/// What `GET /metrics` may name to a user who is not an admin.
public struct MetricsScope: Sendable, Equatable {
    /// The user.
    public var owner: String
    /// Reservation names only this user has held. A call's series is kept under its
    /// reservation's name, so a name another user held before counts their calls too.
    public var reservations: Set<String>
    /// Base models, and this user's own custom models.
    public var models: Set<String>

    public init(owner: String, reservations: Set<String>, models: Set<String>) {
        self.owner = owner
        self.reservations = reservations
        self.models = models
    }
}

extension LedgerTransaction {
    /// The reservation names and models `/metrics` may show `owner`; finished reservations and
    /// retired models count, since their series stay until berthd restarts.
    public func metricsScope(owner: String) throws -> MetricsScope {
        let names = try String.fetchAll(
            db,
            sql: """
                SELECT name FROM reservations GROUP BY name HAVING MIN(owner) = ? AND MAX(owner) = ?
                """,
            arguments: [owner, owner]
        )
        let models = try String.fetchAll(db, sql: "SELECT id FROM models WHERE base_model IS NULL OR owner = ?", arguments: [owner])
        return MetricsScope(owner: owner, reservations: Set(names), models: Set(models))
    }
}
