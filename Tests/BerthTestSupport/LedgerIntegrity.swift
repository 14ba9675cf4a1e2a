import Foundation
import GRDB

/// SQLite's own verdict on a ledger file, read-only.
public enum LedgerIntegrity {
    /// `PRAGMA integrity_check`'s lines: `["ok"]` for a sound file.
    public static func check(databaseAt path: String) throws -> [String] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }
}
