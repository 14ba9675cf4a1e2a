import Foundation
import GRDB

/// What must hold in any committed ledger, whatever requests came before: checked by tests
/// that throw hostile or concurrent traffic at a daemon, on the file it left.
public enum LedgerInvariants {
    /// Opens the ledger file read-only (a running berthd may keep writing it: WAL lets a
    /// reader see the last commit) and returns one sentence per broken invariant; empty when
    /// all hold.
    public static func violations(atPath path: String) throws -> [String] {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "berth-ledger-check"
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in try violations(db) }
    }

    static func violations(_ db: Database) throws -> [String] {
        var found: [String] = []
        let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
        if integrity != ["ok"] {
            found.append("PRAGMA integrity_check: \(integrity.joined(separator: "; "))")
        }
        let foreignKeys = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
        if !foreignKeys.isEmpty {
            found.append("PRAGMA foreign_key_check: \(foreignKeys.count) row(s) point at nothing, e.g. \(foreignKeys[0])")
        }
        for row in try Row.fetchAll(db, sql: "SELECT unit_id, COUNT(*) FROM leases WHERE held GROUP BY unit_id HAVING COUNT(*) > 1") {
            found.append("unit \(row[0] as String) is in \(row[1] as Int) held leases")
        }
        // Leases are [start, end); an open end runs for ever.
        for row in try Row.fetchAll(db, sql: """
            SELECT a.unit_id, a.id, b.id FROM leases a JOIN leases b ON a.unit_id = b.unit_id AND a.id < b.id
            WHERE a.start < COALESCE(b."end", '9999-12-31') AND b.start < COALESCE(a."end", '9999-12-31')
            """) {
            found.append("unit \(row[0] as String) is in overlapping leases \(row[1] as Int64) and \(row[2] as Int64)")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT name FROM reservations r WHERE status = 'active'
            AND NOT EXISTS (SELECT 1 FROM leases WHERE reservation_id = r.id AND held)
            """) {
            found.append("reservation \(row[0] as String) is active without a held lease")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT id, status FROM jobs WHERE (status IN ('running', 'stopping') AND ended_at IS NOT NULL)
            OR (status IN ('completed', 'failed', 'stopped') AND ended_at IS NULL)
            """) {
            found.append("job \(row[0] as Int64) is \(row[1] as String) but its end time says otherwise")
        }
        return found
    }
}
