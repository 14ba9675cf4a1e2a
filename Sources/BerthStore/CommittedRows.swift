import BerthCore
import GRDB
import Synchronization

/// Rows of one table as last committed, kept in memory by key: every submission and every
/// call looks up its reservation and its model, and reading and decoding those rows cost more
/// than everything else the lookup does. The cache watches its table and forgets everything
/// when a transaction that changed the table commits or rolls back.
///
/// A read may store what it found only if no such transaction ended since the read began
/// (`generation` unchanged): a read that began before a change and finished after it would
/// otherwise keep the old row for good. A write may use or store a row only before it has
/// changed the table itself (`touched` false), as with `SnapshotCache`: what it reads then is
/// what is committed. GRDB tells a savepoint's changes when the savepoint ends, so a change
/// and a look-up of the same row inside one savepoint must not go through the cache.
final class CommittedRows<Value: Sendable>: TransactionObserver, Sendable {
    private struct State {
        var generation: UInt64 = 0
        var rows: [String: Value] = [:]
        /// A statement of the transaction now being written changed the table.
        var touched = false
    }
    private let state = Mutex(State())
    private let table: String

    init(table: String) {
        self.table = table
    }

    /// Read before a read transaction starts, so that its snapshot is no older than this.
    var generation: UInt64 { state.withLock { $0.generation } }

    func row(_ key: String, writing: Bool = false) -> Value? {
        state.withLock { state in writing && state.touched ? nil : state.rows[key] }
    }

    func store(_ value: Value, for key: String, readSince generation: UInt64, writing: Bool = false) {
        state.withLock { state in
            if state.generation == generation, !(writing && state.touched) { state.rows[key] = value }
        }
    }

    // MARK: TransactionObserver (called on the writer's queue)

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        eventKind.tableName == table
    }

    func databaseDidChange(with event: DatabaseEvent) {
        state.withLock { $0.touched = true }
    }

    func databaseDidCommit(_ db: Database) { forgetIfTouched() }

    func databaseDidRollback(_ db: Database) { forgetIfTouched() }

    private func forgetIfTouched() {
        state.withLock { state in
            guard state.touched else { return }
            state.touched = false
            state.rows = [:]
            state.generation += 1
        }
    }
}

/// What read transactions look up in memory first: models by id, reservations by name.
struct CachedReads: Sendable {
    let models = CommittedRows<Model>(table: "models")
    let reservations = CommittedRows<Reservation>(table: "reservations")

    func register(on writer: some DatabaseWriter) {
        writer.add(transactionObserver: models, extent: .observerLifetime)
        writer.add(transactionObserver: reservations, extent: .observerLifetime)
    }

    /// The caches as a transaction about to start sees them (a write: on the writer).
    func session(writing: Bool = false) -> LedgerTransaction.Cached {
        LedgerTransaction.Cached(
            models: models,
            modelsSince: models.generation,
            reservations: reservations,
            reservationsSince: reservations.generation,
            writing: writing
        )
    }
}
