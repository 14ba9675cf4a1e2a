public import Foundation
import GRDB

/// An API key as the ledger keeps it: the SHA-256 digest of its secret, never the secret.
public struct StoredAPIKey: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// The user who created it, as whom its requests act.
    public var owner: String
    public var digest: [UInt8]
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public init(id: Int64, name: String, owner: String, digest: [UInt8], createdAt: Date, lastUsedAt: Date?, revokedAt: Date?) {
        self.id = id
        self.name = name
        self.owner = owner
        self.digest = digest
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }

    static let selection = "id, name, owner, digest, created_at, last_used_at, revoked_at"

    init(row: Row) {
        id = row[0]
        name = row[1]
        owner = row[2]
        digest = [UInt8]((row[3] as Data?) ?? Data())
        createdAt = row[4]
        lastUsedAt = row[5]
        revokedAt = row[6]
    }
}

extension LedgerTransaction {
    /// Keys that are not revoked, oldest first; `owner` limits them to one user's.
    public func apiKeys(owner: String? = nil) throws -> [StoredAPIKey] {
        var sql = "SELECT \(StoredAPIKey.selection) FROM api_keys WHERE revoked_at IS NULL"
        var arguments: StatementArguments = []
        if let owner {
            sql += " AND owner = ?"
            arguments = [owner]
        }
        return try Row.fetchAll(db, sql: sql + " ORDER BY id", arguments: arguments).map(StoredAPIKey.init(row:))
    }

    /// A key by its id, revoked or not.
    public func apiKey(id: Int64) throws -> StoredAPIKey? {
        try Row.fetchOne(db, sql: "SELECT \(StoredAPIKey.selection) FROM api_keys WHERE id = ?", arguments: [id]).map(StoredAPIKey.init(row:))
    }

    /// Adds a key; nil if the owner already has a live key of that name.
    public func insertAPIKey(name: String, owner: String, digest: [UInt8], at now: Date) throws -> StoredAPIKey? {
        guard try apiKeys(owner: owner).allSatisfy({ $0.name != name }) else { return nil }
        try db.execute(
            sql: "INSERT INTO api_keys (name, owner, digest, created_at) VALUES (?, ?, ?, ?)",
            arguments: [name, owner, Data(digest), now.stored]
        )
        return try apiKey(id: db.lastInsertedRowID)
    }

    /// Revokes the owner's live key of that name; the key revoked, or nil if there is none.
    public func revokeAPIKey(name: String, owner: String, at now: Date) throws -> StoredAPIKey? {
        guard let key = try apiKeys(owner: owner).first(where: { $0.name == name }) else { return nil }
        try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ?", arguments: [now.stored, key.id])
        return key
    }

    public func recordAPIKeyUse(id: Int64, at now: Date) throws {
        try db.execute(sql: "UPDATE api_keys SET last_used_at = ? WHERE id = ?", arguments: [now.stored, id])
    }
}
