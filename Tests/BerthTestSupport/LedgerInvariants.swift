public import Foundation
import GRDB

/// The ledger's rows that its invariants are about, read as plain values through a read-only
/// connection: the tests look at the file berthd left, not through berthd.
public struct LedgerContents: Sendable {
    public struct ReservationRow: Sendable {
        public var id: Int64
        public var name: String
        public var owner: String
        public var model: String
        public var purpose: String
        public var modelUnits: Int
        /// Compute units: model units times the model's size.
        public var units: Int
        public var status: String
        public var start: Date
        public var end: Date?
        public var endedAt: Date?
        public var statusReason: String?
    }

    public struct LeaseRow: Sendable {
        public var id: Int64
        public var unit: String
        public var reservationID: Int64
        public var start: Date
        public var end: Date?
        public var held: Bool
    }

    public struct JobRow: Sendable {
        public var id: Int64
        public var name: String
        public var owner: String
        public var kind: String
        public var reservationID: Int64
        public var status: String
        public var reason: String?
        public var units: [String]
        public var modelName: String?
        public var startedAt: Date?
        public var endedAt: Date?
        /// The kinds of its events that say it ended (`completed`, `failed`, `stopped`), in order.
        public var endEvents: [String]
    }

    public var reservations: [ReservationRow]
    public var leases: [LeaseRow]
    /// Ids of the units in the dedicated pool, retired ones included.
    public var dedicatedUnits: Set<String>
    public var jobs: [JobRow]
    /// Custom models: model id → the job that made it.
    public var customModels: [String: Int64?]
    /// Served calls by the target they named (a reservation name or a model id).
    public var servedCalls: [String: Int]
    /// Queued jobs per owner as the ledger's `queued_jobs` counts them (absent before v6).
    public var queuedCounts: [String: Int]?
    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    public var integrityCheck: String
    /// Rows of `PRAGMA foreign_key_check`, one sentence each.
    public var foreignKeyProblems: [String]

    public func reservation(named name: String) -> [ReservationRow] { reservations.filter { $0.name == name } }
    public func reservation(id: Int64) -> ReservationRow? { reservations.first { $0.id == id } }
    public func job(id: Int64) -> JobRow? { jobs.first { $0.id == id } }

    /// Reads the ledger at `path` without writing to it. berthd may be running or dead: a
    /// read-only connection sees the last committed state, whatever the WAL holds.
    public static func read(databaseAt path: String) throws -> LedgerContents {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "ledger-invariants"
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            let reservations = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, name, owner, model, purpose, model_units, units, status, start, "end", ended_at, status_reason
                    FROM reservations ORDER BY id
                    """
            ).map { row in
                ReservationRow(
                    id: row["id"],
                    name: row["name"],
                    owner: row["owner"],
                    model: row["model"],
                    purpose: row["purpose"],
                    modelUnits: row["model_units"],
                    units: row["units"],
                    status: row["status"],
                    start: row["start"],
                    end: row["end"],
                    endedAt: row["ended_at"],
                    statusReason: row["status_reason"]
                )
            }
            let dedicated = Set(try String.fetchAll(db, sql: "SELECT id FROM units WHERE pool = 'dedicated'"))
            let leases = try Row.fetchAll(db, sql: #"SELECT id, unit_id, reservation_id, start, "end", held FROM leases ORDER BY id"#).map { row in
                LeaseRow(
                    id: row["id"],
                    unit: row["unit_id"],
                    reservationID: row["reservation_id"],
                    start: row["start"],
                    end: row["end"],
                    held: row["held"]
                )
            }
            var endEvents: [Int64: [String]] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT job_id, kind FROM job_events WHERE kind IN ('completed', 'failed', 'stopped') ORDER BY id
                    """
            ) {
                endEvents[row["job_id"], default: []].append(row["kind"])
            }
            let jobs = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, name, owner, kind, reservation_id, status, reason, units, model_name, started_at, ended_at FROM jobs ORDER BY id
                    """
            ).map { row in
                let unitsText: String = row["units"]
                let id: Int64 = row["id"]
                return JobRow(
                    id: id,
                    name: row["name"],
                    owner: row["owner"],
                    kind: row["kind"],
                    reservationID: row["reservation_id"],
                    status: row["status"],
                    reason: row["reason"],
                    units: (try? JSONDecoder().decode([String].self, from: Data(unitsText.utf8))) ?? ["<unreadable: \(unitsText)>"],
                    modelName: row["model_name"],
                    startedAt: row["started_at"],
                    endedAt: row["ended_at"],
                    endEvents: endEvents[id] ?? []
                )
            }
            var customModels: [String: Int64?] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, job_id FROM models WHERE base_model IS NOT NULL") {
                customModels[row["id"]] = row["job_id"] as Int64?
            }
            var served: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT target, COUNT(*) FROM invocations WHERE outcome = 'served' GROUP BY target") {
                served[row[0]] = row[1]
            }
            var queuedCounts: [String: Int]?
            if try db.tableExists("queued_jobs") {
                queuedCounts = [:]
                for row in try Row.fetchAll(db, sql: "SELECT owner, queued FROM queued_jobs") { queuedCounts?[row[0]] = row[1] }
            }
            let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
            let foreignKeys = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").map { row in
                "row \(row[1] as Int64? ?? -1) of \(row[0] as String? ?? "?") points at a missing row of \(row[2] as String? ?? "?")"
            }
            return LedgerContents(
                reservations: reservations,
                leases: leases,
                dedicatedUnits: dedicated,
                jobs: jobs,
                customModels: customModels,
                servedCalls: served,
                queuedCounts: queuedCounts,
                integrityCheck: integrity,
                foreignKeyProblems: foreignKeys
            )
        }
    }
}

/// What must hold in the ledger at every commit, whatever crashed or was sent: no unit leased
/// twice at once, no job both running and finished, no active reservation without its units.
/// Each violation is one sentence naming the rows, so a failing test says what broke.
public enum LedgerInvariants {
    static let reservationStatuses: Set<String> = ["pending", "active", "expired", "deleted", "failed"]
    static let jobStatuses: Set<String> = ["queued", "running", "stopping", "completed", "failed", "stopped"]

    /// Reads the ledger at `path` read-only and checks it.
    public static func violations(databaseAt path: String) throws -> [String] {
        violations(in: try LedgerContents.read(databaseAt: path))
    }

    public static func violations(in ledger: LedgerContents) -> [String] {
        var found: [String] = []
        if ledger.integrityCheck != "ok" { found.append("PRAGMA integrity_check says: \(ledger.integrityCheck)") }
        found += ledger.foreignKeyProblems.map { "foreign key check: \($0)" }
        found += leaseViolations(ledger)
        found += reservationViolations(ledger)
        found += jobViolations(ledger)
        return found
    }

    /// No unit is in two leases whose windows overlap. A held lease lasts until it is closed,
    /// whatever its planned `end` says; a closed one lasts until its `end`.
    static func leaseViolations(_ ledger: LedgerContents) -> [String] {
        var found: [String] = []
        let names = Dictionary(ledger.reservations.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        func describe(_ lease: LedgerContents.LeaseRow) -> String {
            let end = lease.held ? "still held" : lease.end.map { "to \(format($0))" } ?? "closed with no end"
            return "lease \(lease.id) of '\(names[lease.reservationID] ?? "?")' (from \(format(lease.start)), \(end))"
        }
        for lease in ledger.leases {
            if !ledger.dedicatedUnits.contains(lease.unit) { found.append("\(describe(lease)) is on \(lease.unit), which is not a dedicated unit") }
            if !lease.held && lease.end == nil { found.append("\(describe(lease)) on \(lease.unit) was closed without an end time") }
            if let end = lease.end, !lease.held, end < lease.start { found.append("\(describe(lease)) on \(lease.unit) ends before it starts") }
        }
        for (unit, leases) in Dictionary(grouping: ledger.leases, by: \.unit) {
            let windows = leases.map { lease in (lease, lease.start, lease.held ? Date.distantFuture : (lease.end ?? .distantFuture)) }
                .sorted { ($0.1, $0.0.id) < ($1.1, $1.0.id) }
            for (i, a) in windows.enumerated() {
                for b in windows[(i + 1)...] {
                    // Sorted by start: once b starts after a ends, no later lease overlaps a.
                    if b.1 >= a.2 { break }
                    if max(a.1, b.1) < min(a.2, b.2) {
                        found.append("unit \(unit) is in two overlapping leases: \(describe(a.0)) and \(describe(b.0))")
                    }
                }
            }
        }
        return found
    }

    /// An active reservation holds units, at most as many as it has (fewer only while units it
    /// was given by `update` wait to be free); a pending one none; a finished one none but the
    /// units its still-running jobs are on, and it says when it ended.
    static func reservationViolations(_ ledger: LedgerContents) -> [String] {
        var found: [String] = []
        let held = Dictionary(grouping: ledger.leases.filter(\.held), by: \.reservationID)
        let busy = Dictionary(grouping: ledger.jobs.filter { $0.status == "running" || $0.status == "stopping" }, by: \.reservationID)
            .mapValues { Set($0.flatMap(\.units)) }
        for r in ledger.reservations {
            let units = Set((held[r.id] ?? []).map(\.unit))
            let heldCount = held[r.id]?.count ?? 0
            if !reservationStatuses.contains(r.status) { found.append("reservation '\(r.name)' (\(r.id)) has an unknown status '\(r.status)'") }
            switch r.status {
            case "active":
                if heldCount == 0 || heldCount > r.units {
                    found.append("reservation '\(r.name)' (\(r.id)) is active with \(heldCount) held leases for its \(r.units) units")
                }
                if r.endedAt != nil { found.append("reservation '\(r.name)' (\(r.id)) is active but has ended_at \(format(r.endedAt!))") }
            case "pending":
                if heldCount > 0 {
                    found.append(
                        "reservation '\(r.name)' (\(r.id)) is pending but holds \(heldCount) leases (\(units.sorted().joined(separator: ",")))"
                    )
                }
            default:
                let kept = units.subtracting(busy[r.id] ?? [])
                if !kept.isEmpty {
                    found.append(
                        "reservation '\(r.name)' (\(r.id)) is \(r.status) but still holds \(kept.sorted().joined(separator: ",")), on which none of its jobs runs"
                    )
                }
                if r.endedAt == nil { found.append("reservation '\(r.name)' (\(r.id)) is \(r.status) without an ended_at") }
            }
        }
        return found
    }

    /// A job runs only on units its reservation holds, never on a unit another running job is
    /// on; a job is either live (no end time) or ended (an end time, one end event).
    static func jobViolations(_ ledger: LedgerContents) -> [String] {
        var found: [String] = []
        var heldBy: [String: Int64] = [:]
        for lease in ledger.leases where lease.held { heldBy[lease.unit] = lease.reservationID }
        var runningOn: [String: Int64] = [:]
        for job in ledger.jobs {
            let name = "job \(job.id) ('\(job.name)')"
            guard jobStatuses.contains(job.status) else {
                found.append("\(name) has an unknown status '\(job.status)'")
                continue
            }
            switch job.status {
            case "running", "stopping":
                if let ended = job.endedAt { found.append("\(name) is \(job.status) but ended at \(format(ended))") }
                if job.startedAt == nil { found.append("\(name) is \(job.status) but never started") }
                if !job.endEvents.isEmpty { found.append("\(name) is \(job.status) but has end events: \(job.endEvents.joined(separator: ", "))") }
                if job.units.isEmpty { found.append("\(name) is \(job.status) on no units") }
                for unit in job.units {
                    if heldBy[unit] != job.reservationID {
                        let holder = heldBy[unit].map { "reservation \($0)" } ?? "nobody"
                        found.append("\(name) is \(job.status) on \(unit), which its reservation \(job.reservationID) does not hold (\(holder) does)")
                    }
                    if let other = runningOn[unit] { found.append("\(name) and job \(other) both run on \(unit)") }
                    runningOn[unit] = job.id
                }
            case "queued":
                if job.endedAt != nil || job.startedAt != nil { found.append("\(name) is queued but has a start or end time") }
                if !job.endEvents.isEmpty { found.append("\(name) is queued but has end events: \(job.endEvents.joined(separator: ", "))") }
            default:
                if job.endedAt == nil { found.append("\(name) is \(job.status) without an ended_at") }
                if job.endEvents.count != 1 || job.endEvents.first != job.status {
                    found.append(
                        "\(name) is \(job.status) but its end events are [\(job.endEvents.joined(separator: ", "))]: it must have ended exactly once"
                    )
                }
            }
            // A completed customization job registered its custom model.
            if job.status == "completed", job.kind != "batch-inference", let model = job.modelName, ledger.customModels[model] == nil {
                found.append("\(name) completed but its custom model '\(model)' is not in the catalog")
            }
        }
        // The per-user counts max_queued_jobs_per_user is checked against are the queues' real lengths.
        if let counted = ledger.queuedCounts {
            let real = Dictionary(grouping: ledger.jobs.filter { $0.status == "queued" }, by: \.owner).mapValues(\.count)
            for owner in Set(real.keys).union(counted.keys).sorted() where (counted[owner] ?? 0) != (real[owner] ?? 0) {
                found.append("\(owner) has \(real[owner] ?? 0) queued jobs but queued_jobs counts \(counted[owner] ?? 0)")
            }
        }
        return found
    }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
