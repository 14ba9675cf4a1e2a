import BerthCore
import GRDB
import Synchronization

/// Catalog models as last committed, kept in memory: every submission and every call looks
/// its model up, and decoding a model row (six JSON columns) cost more than the rest of the
/// lookup. It watches the `models` table and forgets everything when a transaction that
/// changed it commits or rolls back.
///
/// A read may store what it found only if no such transaction ended since the read began
/// (`generation` unchanged): a read that began before a change and finished after it would
/// otherwise keep the old model for good. Writes never use it (they may see their own
/// uncommitted changes).
final class ModelCache: TransactionObserver, Sendable {
    private struct State {
        var generation: UInt64 = 0
        var models: [String: Model] = [:]
        /// A statement of the transaction now being written changed `models`.
        var touched = false
    }
    private let state = Mutex(State())

    /// Read before a read transaction starts, so that its snapshot is no older than this.
    var generation: UInt64 { state.withLock { $0.generation } }

    func model(_ id: String) -> Model? {
        state.withLock { $0.models[id] }
    }

    func store(_ model: Model, readSince generation: UInt64) {
        state.withLock { state in
            if state.generation == generation { state.models[model.id] = model }
        }
    }

    // MARK: TransactionObserver (called on the writer's queue)

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        eventKind.tableName == "models"
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
            state.models = [:]
            state.generation += 1
        }
    }
}
