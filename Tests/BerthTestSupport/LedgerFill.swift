public import Foundation
import GRDB

/// Rows written straight into a ledger file, for tests that need a ledger far bigger than the
/// API could fill in a test's time. berthd must not be running on it.
public enum LedgerFill {
    /// Adds `count` completed fine-tuning jobs on reservation `reservationID`, one every ten
    /// seconds from `start`, owned by `owners` in turn; every tenth is a distillation job.
    /// Returns the first and last ids.
    @discardableResult
    public static func completedJobs(
        _ count: Int,
        database: String,
        reservationID: Int64,
        owners: [String],
        start: Date
    ) throws -> (first: Int64, last: Int64) {
        let queue = try DatabaseQueue(path: database)
        return try queue.write { db in
            let before = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM jobs") ?? 0
            let ownerCases = owners.enumerated().map { "WHEN \($0.offset) THEN '\($0.element)'" }.joined(separator: " ")
            try db.execute(
                sql: """
                    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
                    INSERT INTO jobs (name, owner, kind, reservation_id, model, base_model, status, priority, model_units,
                        units_needed, units, hyperparameters, data, output, model_name, seed, submitted_at, started_at, ended_at,
                        exit_status, progress, busy_unit_seconds, input_tokens, output_tokens, log_path, caller_uid, caller_gid)
                    SELECT 'fill-' || i, CASE i % \(owners.count) \(ownerCases) END,
                        CASE WHEN i % 10 = 9 THEN 'distillation' ELSE 'fine-tuning' END, ?, 'amazon.nova-micro-v1:0',
                        'amazon.nova-micro-v1:0', 'completed', 0, 1, 1, '[]',
                        '{"batchSize":8,"epochs":1,"learningRate":1e-05,"warmupSteps":0}', '/data/train.jsonl', '/out/' || i, NULL,
                        42, strftime('%Y-%m-%d %H:%M:%f', ? + i * 10, 'unixepoch'), NULL, NULL, 0, 1.0, 0, 0, 0, '', 0, 0
                    FROM n
                    """,
                arguments: [count, reservationID, start.timeIntervalSince1970.rounded(.down)]
            )
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM jobs") ?? 0
            return (before + 1, last)
        }
    }

    /// Runs `sql` on the ledger file as it is, for a test of what berthd makes of rows it did
    /// not write.
    public static func execute(_ sql: String, database: String) throws {
        let queue = try DatabaseQueue(path: database)
        try queue.write { try $0.execute(sql: sql) }
        try queue.close()
    }
}
