import BerthCore
import BerthStore
import BerthWire
import Crypto
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The API keys of the OpenAI listener: made, listed, revoked, and checked on every request.
///
/// A key reads `berth_<id>_<secret>`: the id (not secret) finds its row, and the secret, 256
/// random bits in hex, is checked against the SHA-256 digest the ledger keeps, in constant time,
/// so neither the time to answer nor the ledger tells anything about a key. The live keys are
/// held in memory, read from the ledger once; creating and revoking go through here, so a
/// revoked key is refused from the moment its revocation is committed. A key's last use is
/// written at most once a minute, so a busy key does not cost a write per call.
final class APIKeyring: Sendable {
    private let ledger: Ledger
    private let callers: CallerDirectory
    private let metrics: DaemonMetrics
    private let clock: @Sendable () -> Date
    /// Live keys by id, once read; and when each key's use was last written.
    private let state = Mutex<State>(State())
    private static let useRecordedEvery: TimeInterval = 60

    private struct State {
        var keys: [Int64: StoredAPIKey]?
        /// Counts creations and revocations, so that a read of the keys that one overtook is not kept.
        var changes = 0
        var usesRecorded: [Int64: Date] = [:]
    }

    init(ledger: Ledger, callers: CallerDirectory, metrics: DaemonMetrics, clock: @escaping @Sendable () -> Date) {
        self.ledger = ledger
        self.callers = callers
        self.metrics = metrics
        self.clock = clock
    }

    /// A new key for `owner`: the key itself, which is never stored, and its row.
    func create(name: String, owner: String) async throws -> (key: String, stored: StoredAPIKey) {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let secretText = secret.map { String(format: "%02x", $0) }.joined()
        let digest = Self.digest(secretText)
        let now = clock()
        guard let stored = try await ledger.write({ tx in try tx.insertAPIKey(name: name, owner: owner, digest: digest, at: now) }) else {
            throw APIError(
                .nameTaken,
                "you already have an API key named '\(name)'; choose another name, or revoke it first with berth api-key revoke \(name)"
            )
        }
        state.withLock { state in
            state.keys = nil
            state.changes += 1
        }
        return ("berth_\(stored.id)_\(secretText)", stored)
    }

    func list(owner: String?) async throws -> [StoredAPIKey] {
        try await ledger.read { tx in try tx.apiKeys(owner: owner) }
    }

    /// Revokes `owner`'s key named `name`; from now on it matches nothing.
    func revoke(name: String, owner: String) async throws -> StoredAPIKey {
        let now = clock()
        guard let revoked = try await ledger.write({ tx in try tx.revokeAPIKey(name: name, owner: owner, at: now) }) else {
            throw APIError(.notFound, "\(owner) has no API key named '\(name)'; berth api-key list shows them")
        }
        state.withLock { state in
            state.keys = nil
            state.changes += 1
        }
        return revoked
    }

    /// The caller a request's `Authorization: Bearer KEY` names: the key's owner, as the
    /// socket would name them. Anything else is 401, counted.
    func caller(authorization: String?) async throws -> Caller {
        guard let key = try await match(authorization) else {
            metrics.apiKeyRejections.increment()
            throw OpenAIError(
                status: 401,
                message: authorization == nil
                    ? "no API key: send Authorization: Bearer KEY, with a key from berth api-key create NAME"
                    : "the API key is wrong or revoked: make a new one with berth api-key create NAME",
                code: "invalid_api_key"
            )
        }
        await recordUse(key)
        return caller(for: key.owner)
    }

    /// The live key an `Authorization` header carries, if it carries one.
    private func match(_ authorization: String?) async throws -> StoredAPIKey? {
        guard let authorization, authorization.count < 256 else { return nil }
        let parts = authorization.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let pieces = parts[1].split(separator: "_", omittingEmptySubsequences: false)
        guard pieces.count == 3, pieces[0] == "berth", let id = Int64(pieces[1]), pieces[2].utf8.count == 64 else { return nil }
        let keys = try await liveKeys()
        // A digest is computed and compared whatever the id, so an unknown id takes as long.
        let presented = Self.digest(String(pieces[2]))
        let stored = keys[id]
        let expected = stored?.digest ?? [UInt8](repeating: 0, count: presented.count)
        guard ConstantTime.equal(presented, expected), let stored else { return nil }
        return stored
    }

    private func liveKeys() async throws -> [Int64: StoredAPIKey] {
        let (known, changes) = state.withLock { ($0.keys, $0.changes) }
        if let known { return known }
        let read = try await ledger.read { tx in try tx.apiKeys() }
        let keys = Dictionary(uniqueKeysWithValues: read.map { ($0.id, $0) })
        state.withLock { state in
            // Kept only if no key was made or revoked since the read began: it may have missed it.
            if state.changes == changes { state.keys = keys }
        }
        return keys
    }

    private func recordUse(_ key: StoredAPIKey) async {
        let now = clock()
        let due = state.withLock { state -> Bool in
            if let last = state.usesRecorded[key.id], now.timeIntervalSince(last) < Self.useRecordedEvery { return false }
            state.usesRecorded[key.id] = now
            return true
        }
        guard due else { return }
        // The request goes on if the ledger cannot take the write (a full disk): its use is
        // written the next time it is due.
        do {
            try await ledger.write { tx in try tx.recordAPIKeyUse(id: key.id, at: now) }
        } catch {
            _ = state.withLock { $0.usesRecorded.removeValue(forKey: key.id) }
        }
    }

    /// The owner as the socket names them: a user of the password file, or a bare uid.
    private func caller(for owner: String) -> Caller {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwnam_r(owner, &pwd, &buffer, buffer.count, &result) == 0, result != nil {
            return callers.caller(uid: pwd.pw_uid, gid: pwd.pw_gid)
        }
        if let uid = UInt32(owner) { return callers.caller(uid: uid, gid: 65534) }
        // A user since removed from the system: the name, and no admin rights.
        return Caller(uid: UInt32.max, gid: UInt32.max, user: owner, isAdmin: false)
    }

    static func digest(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(secret.utf8)))
    }
}

extension DaemonMetrics.Family {
    static let apiKeyRejections = DaemonMetrics.Family(
        name: "berth_openai_unauthorized_total",
        help: "Requests on the OpenAI listener ([openai] listen) refused 401: no API key, or a wrong or revoked one."
    )
}
