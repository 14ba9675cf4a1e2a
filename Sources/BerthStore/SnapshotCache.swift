import BerthCore
import Foundation
import GRDB
import Synchronization

/// The part of the scheduler's snapshot that does not depend on the queues: dedicated units,
/// live reservations, held leases and the jobs running or stopping.
struct SnapshotBase: Sendable {
    var dedicatedUnits: [String]
    /// How many units are in the shared pool: only `berth status` counts them.
    var sharedUnits: Int
    var unitFreeSince: [String: Date]
    var reservations: [Reservation]
    var heldLeases: [Lease]
    var activeJobs: [Job]
}

/// The snapshot's base as last committed. At a thousand units it is thousands of rows, read and
/// decoded on every scheduling cycle, while most cycles (a submission batch, a due time, a
/// call) change none of it: it is kept in memory and forgotten when a transaction that changed
/// one of its tables ends, committed or rolled back.
///
/// Jobs change it only when a column the planner reads changes, or a job is deleted: a job
/// enters the ledger `queued` (queue heads are read fresh on every cycle) and becomes running
/// by an update of its status, so a submission's insert leaves the base as it was.
///
/// Like `CommittedRows`, a read may store what it found only if no such transaction ended
/// since it began (`generation` unchanged), and a write may use or store it only before it has
/// changed any of the tables itself (`touched` false): what it reads then is what is committed.
///
/// One change is common enough to be worth more: a write that has only inserted reservations
/// (every reservation made) may still use the base, with the rows it inserted read by id and
/// added (`baseMissingInsertedReservations`), instead of reading the whole base again.
final class SnapshotCache: TransactionObserver, Sendable {
    private struct State {
        var generation: UInt64 = 0
        var base: SnapshotBase?
        /// A statement of the transaction now being written changed one of the base's tables.
        var touched = false
        /// The row ids of the reservations it inserted, while every such change so far was
        /// one; nil once another change was made.
        var insertedReservations: [Int64]? = []
    }

    private let state = Mutex(State())
    /// Which executor each unit not of this host belongs to, from the config: the planner
    /// places a reservation on units of one executor. Kept here, beside the snapshot it goes into.
    let unitExecutors = Mutex<[String: String]>([:])
    private static let tables: Set<String> = ["units", "reservations", "leases"]
    /// The job columns `LedgerTransaction.jobColumns` reads.
    private static let jobColumns: Set<String> = [
        "id", "name", "owner", "kind", "reservation_id", "status", "priority", "model_units", "units_needed", "units", "submitted_at",
    ]

    var generation: UInt64 { state.withLock { $0.generation } }

    /// The base if it is what the transaction that began at `generation` may use.
    func base(since generation: UInt64, writing: Bool) -> SnapshotBase? {
        state.withLock { state in
            guard state.generation == generation, !(writing && state.touched) else { return nil }
            return state.base
        }
    }

    /// The base as it was before the transaction now being written changed anything of it, and
    /// the ids of the reservations it inserted, if inserting reservations is all it changed:
    /// then those rows, as far as they are still there and live, are all the base lacks.
    func baseMissingInsertedReservations(since generation: UInt64) -> (base: SnapshotBase, inserted: [Int64])? {
        state.withLock { state in
            guard state.generation == generation, state.touched, let inserted = state.insertedReservations, let base = state.base else {
                return nil
            }
            return (base, inserted)
        }
    }

    /// The base as last committed, whatever transaction is under way: nil once a committed
    /// change has made it stale, until the next read stores it again.
    var committed: SnapshotBase? { state.withLock { $0.base } }

    func store(_ base: SnapshotBase, readSince generation: UInt64, writing: Bool) {
        state.withLock { state in
            guard state.generation == generation, !(writing && state.touched) else { return }
            state.base = base
        }
    }

    // MARK: TransactionObserver (called on the writer's queue)

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        switch eventKind {
        case .insert(let table):
            return Self.tables.contains(table)
        case .delete(let table):
            return Self.tables.contains(table) || table == "jobs"
        case .update(let table, let columns):
            return Self.tables.contains(table) || (table == "jobs" && !columns.isDisjoint(with: Self.jobColumns))
        }
    }

    func databaseDidChange(with event: DatabaseEvent) {
        // The event is GRDB's only for this call: what is kept is copied out of it.
        let insertedReservation = event.kind == .insert && event.tableName == "reservations" ? event.rowID : nil
        state.withLock { state in
            state.touched = true
            if let insertedReservation {
                state.insertedReservations?.append(insertedReservation)
            } else {
                state.insertedReservations = nil
            }
        }
    }

    func databaseDidCommit(_ db: Database) { forgetIfTouched() }

    func databaseDidRollback(_ db: Database) { forgetIfTouched() }

    private func forgetIfTouched() {
        state.withLock { state in
            state.insertedReservations = []
            guard state.touched else { return }
            state.touched = false
            state.base = nil
            state.generation += 1
        }
    }
}
