public import BerthCore
public import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The SQLite ledger: the single owner of the database writer for the life of the process.
/// Every change is made inside one `write` transaction, committed before the caller answers.
public final class Ledger: Sendable {
    private let writer: any DatabaseWriter
    /// Models and reservations as last committed, for reads (`CommittedRows`).
    private let cached = CachedReads()
    /// The scheduler's snapshot as last committed, but for the queues (`SnapshotCache`).
    private let snapshots = SnapshotCache()

    /// Tells the scheduler which executor each unit not of this host belongs to (`"slurm"`),
    /// from the config at start-up and at every reload.
    public func setUnitExecutors(_ executors: [String: String]) {
        snapshots.unitExecutors.withLock { $0 = executors }
    }
    /// A connection of its own for checkpoints (`checkpoint()`); `nil` in memory.
    private let checkpoints: DatabaseQueue?
    public let path: String
    /// Told how long each write took, waiting for the writer included: that wait and the
    /// fsync at commit are what every change through the API pays (berthd's `/metrics`).
    private let writeTimer: @Sendable (Duration) -> Void
    /// Ledger files that others could read when it was opened, now made private (0600).
    public let looseFiles: [LooseLedgerFile]
    /// Whether the file system is full, as the writes find it (`LedgerSpace`).
    private let space: LedgerSpace
    /// Writes committed that changed rows, since the ledger was opened (`committedChanges`).
    private let changes = Atomic<UInt64>(0)

    /// Opens (creating if needed) the ledger at `path` in WAL mode with `synchronous = FULL`,
    /// and brings its schema up to date. Its files are made 0600 first (`LedgerFileMode`).
    /// `spaceChanged` is told when a write first finds the file system full, and when one gets
    /// through again (`LedgerSpace`).
    /// `date` as a row keeps it: to the millisecond, as GRDB writes a DATETIME. Whatever
    /// compares the clock with times read back from the ledger (the scheduler, admission, the
    /// supervisors) reads the clock through this, so a reservation that starts now is due now,
    /// not a fraction of a millisecond later once written and read back.
    public static func asStored(_ date: Date) -> Date {
        Date.fromDatabaseValue(date.forTruncatingFormatter.stored.databaseValue) ?? date
    }

    public init(
        path: String,
        writeTimer: @escaping @Sendable (Duration) -> Void = { _ in },
        spaceChanged: @escaping @Sendable (LedgerSpaceChange) -> Void = { _ in }
    ) throws {
        self.looseFiles = try LedgerFileMode.secure(path)
        var configuration = Configuration()
        configuration.label = "berth-ledger"
        configuration.foreignKeysEnabled = true
        // Two connections write to the file (the writer, and checkpoints beside it): a lock one
        // of them holds for an instant makes the other wait, not fail its transaction.
        configuration.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets `synchronous = NORMAL` on the WAL writer after `prepareDatabase`, which
        // survives a crash of the process but not of the machine. An acknowledged change must
        // survive both, so FULL is set here, after opening.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // SQLite would otherwise checkpoint inside whichever commit takes the log past 1,000
            // pages, and that request would wait for the copy and its fsyncs (the slowest 1 %
            // of calls). `checkpoint()` does it from another connection, beside the writes;
            // SQLite still checkpoints by itself past 10,000 pages, should nobody call it
            // (tools that open a ledger, or a checkpointer that fell behind).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
            // Each request of a batch runs in its own savepoint, whose undo pages SQLite keeps in
            // a statement journal; past 64 KiB it spills that journal to a temporary file in
            // /var/tmp, created, written and unlinked once per batch (perf: a fifth of the
            // insert's time was ext4). In memory it is a few hundred KiB at most per batch.
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        var checkpointing = Configuration()
        checkpointing.label = "berth-ledger-checkpoints"
        checkpointing.busyMode = .timeout(1)
        self.checkpoints = try DatabaseQueue(path: path, configuration: checkpointing)
        try Migrations.migrator.migrate(pool)
        cached.register(on: pool)
        pool.add(transactionObserver: snapshots, extent: .observerLifetime)
        self.writer = pool
        self.path = path
        self.writeTimer = writeTimer
        self.space = LedgerSpace(folder: (path as NSString).deletingLastPathComponent, changed: spaceChanged)
    }

    /// A private in-memory ledger, for tests.
    public init(inMemory: Void = ()) throws {
        let queue = try DatabaseQueue()
        try Migrations.migrator.migrate(queue)
        cached.register(on: queue)
        queue.add(transactionObserver: snapshots, extent: .observerLifetime)
        self.writer = queue
        self.path = ":memory:"
        self.writeTimer = { _ in }
        self.looseFiles = []
        self.checkpoints = nil
        self.space = LedgerSpace(folder: "", changed: { _ in })
    }

    /// How many writes that changed rows have committed since the ledger was opened. The log
    /// grows only with them, so a checkpointer that saw the same count last time has nothing
    /// to copy, and an idle daemon leaves its ledger alone.
    public var committedChanges: UInt64 { changes.load(ordering: .relaxed) }

    /// Whether the last writes found the file system full: from the first one SQLite refused
    /// for want of room until one gets through with room again.
    public var isFull: Bool { space.isFull }

    /// The folder of the database, where room must be made when the disk is full.
    public var folder: String { space.folder }

    /// What a caller should see for an error that came out of a statement inside a write: a
    /// `LedgerFullError` if it was SQLite out of room, else the error itself. The write methods
    /// do this for what they throw; a caller that catches inside its transaction (a savepoint
    /// per request) does it for what it caught.
    public func recognizingFullDisk(_ error: any Error) -> any Error {
        space.refused(error)
    }

    /// Copies what the write-ahead log holds into the database file, from a connection of its
    /// own, without waiting for readers or the writer (a passive checkpoint); the log is
    /// synced first, so every commit so far is then durable. berthd calls it a few times a
    /// second while changes are committed (`LedgerCheckpointer`). Returns the frames in the
    /// log and how many are copied.
    @discardableResult
    public func checkpoint() async throws -> (logFrames: Int, copied: Int) {
        guard let checkpoints else { return (0, 0) }
        let result = try await checkpoints.writeWithoutTransaction { try $0.checkpoint(.passive) }
        return (result.walFrameCount, result.checkpointedFrameCount)
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (LedgerTransaction) throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { writeTimer(ContinuousClock.now - started) }
        return try await watched {
            try await writer.write { [snapshots, cached] db in
                try Self.counting(db) { try body(LedgerTransaction(writing: db, snapshots: snapshots, cached: cached)) }
            }
        }
    }

    /// A write committed without waiting for the disk: it survives berthd being killed (the
    /// WAL is in the operating system's hands at commit) but not a power cut until the next
    /// write that syncs, which makes everything before it durable too. For call records only,
    /// which issue 5 asks to keep off an fsync per call; the caller syncs at least every second.
    public func writeUnsynced<T: Sendable>(_ body: @escaping @Sendable (LedgerTransaction) throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { writeTimer(ContinuousClock.now - started) }
        return try await watched { try await writer.writeWithoutTransaction { db in try Self.counting(db) { try Self.unsynced(db, body) } } }
    }

    /// `writeUnsynced` on the calling thread, which waits while another write holds the
    /// writer. For a write of a few rows, where the hop to the writer's queue and back costs
    /// more than the write.
    public func writeUnsyncedNow<T>(_ body: (LedgerTransaction) throws -> T) throws -> T {
        let started = ContinuousClock.now
        defer { writeTimer(ContinuousClock.now - started) }
        return try watchedNow { try writer.writeWithoutTransaction { db in try Self.counting(db) { try Self.unsynced(db, body) } } }
    }

    /// A write's value, and whether it changed rows: only such a write can show that the disk
    /// takes writes again (a transaction that changed nothing commits without writing).
    private static func counting<T>(_ db: Database, _ body: () throws -> T) throws -> (T, changedRows: Bool) {
        let before = db.totalChangesCount
        let value = try body()
        return (value, db.totalChangesCount != before)
    }

    private func watched<T>(_ write: () async throws -> (T, changedRows: Bool)) async throws -> T {
        let value: T
        let changedRows: Bool
        do {
            (value, changedRows) = try await write()
        } catch {
            throw space.refused(error)
        }
        committed(changedRows: changedRows)
        return value
    }

    private func watchedNow<T>(_ write: () throws -> (T, changedRows: Bool)) throws -> T {
        let value: T
        let changedRows: Bool
        do {
            (value, changedRows) = try write()
        } catch {
            throw space.refused(error)
        }
        committed(changedRows: changedRows)
        return value
    }

    /// After a write committed, whichever way it was written.
    private func committed(changedRows: Bool) {
        space.committed(changedRows: changedRows)
        if changedRows { changes.add(1, ordering: .relaxed) }
    }

    private static func unsynced<T>(_ db: Database, _ body: (LedgerTransaction) throws -> T) throws -> T {
        try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute()
        let outcome = Result { () throws -> T in
            var value: T?
            try db.inTransaction {
                value = try body(LedgerTransaction(db: db))
                return .commit
            }
            return value!
        }
        // Every other write syncs: the connection goes back to FULL whatever happened.
        try db.cachedStatement(sql: "PRAGMA synchronous = FULL").execute()
        return try outcome.get()
    }

    /// Makes every commit so far durable against a power cut, those of `writeUnsynced`
    /// included: committed transactions are in the write-ahead log, so syncing it is enough.
    public func syncToDisk() throws {
        guard path != ":memory:" else { return }
        let fd = open(path + "-wal", O_RDONLY | O_CLOEXEC)
        // No log: the last checkpoint moved everything into the database file, and synced it.
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw LedgerSyncError(errno: errno) }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (LedgerTransaction) throws -> T) async throws -> T {
        let cached = cached.session()
        let snapshots = self.snapshots
        let since = snapshots.generation
        return try await writer.read { db in try body(LedgerTransaction(db: db, cached: cached, snapshots: (snapshots, since, false))) }
    }

    /// Synchronous variants, for start-up and tests.
    public func writeNow<T>(_ body: (LedgerTransaction) throws -> T) throws -> T {
        let started = ContinuousClock.now
        defer { writeTimer(ContinuousClock.now - started) }
        return try watchedNow {
            try writer.write { db in try Self.counting(db) { try body(LedgerTransaction(writing: db, snapshots: snapshots, cached: cached)) } }
        }
    }

    /// A read on the calling thread. Short reads on a request's path use it: the hop to a
    /// reader's queue and back cost more than reading a few rows.
    public func readNow<T>(_ body: (LedgerTransaction) throws -> T) throws -> T {
        let cached = cached.session()
        let since = snapshots.generation
        return try writer.read { db in try body(LedgerTransaction(db: db, cached: cached, snapshots: (snapshots, since, false))) }
    }

    /// The reservation of that name and its model as last committed, if a read put both in
    /// memory since the last change to either table; nil sends the caller to `read`. A
    /// submission that finds them here spares a read transaction (a tenth of its CPU).
    public func committedReservation(named name: String) -> (Reservation, Model)? {
        guard let reservation = cached.reservations.row(name), let model = cached.models.row(reservation.model) else { return nil }
        return (reservation, model)
    }

    /// The pool's counts as last committed (`berth status`): from the scheduler's snapshot in
    /// memory when no change since has made it stale, so the answer needs no read transaction
    /// and no hop to a reader's thread; else from a read, which keeps the snapshot for the next.
    public func poolCounts() async throws -> PoolCounts {
        if let base = snapshots.committed { return PoolCounts(base) }
        return try await read { tx in PoolCounts(try tx.snapshotBase()) }
    }

    /// Checkpoints the WAL into the database file and closes the connections: after a clean
    /// shutdown the database file alone holds everything (the -wal and -shm files are empty).
    public func close() throws {
        try checkpoints?.close()
        if let pool = writer as? DatabasePool {
            _ = try pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        }
        try writer.close()
    }

    /// `PRAGMA` values of the writer connection, for tests that check durability settings.
    public func pragma(_ name: String) throws -> String? {
        try writer.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }
}

/// fsync(2) of the write-ahead log failed.
public struct LedgerSyncError: Error, CustomStringConvertible {
    public var errno: Int32
    public var description: String { "cannot sync the ledger's write-ahead log: \(String(cString: strerror(errno)))" }
}

/// What was answered the first time a POST carried an `Idempotency-Key`.
public struct IdempotentAnswer: Sendable, Equatable {
    public var route: String
    public var request: Data
    public var status: Int
    public var response: Data

    public init(route: String, request: Data, status: Int, response: Data) {
        self.route = route
        self.request = request
        self.status = status
        self.response = response
    }
}

/// Reads and writes inside one transaction of the ledger.
public struct LedgerTransaction {
    let db: Database
    /// Set in read transactions only: where `model(id:)` and `reservation(named:)` look first.
    var cached: Cached?

    struct Cached {
        var models: CommittedRows<Model>
        /// The caches' generations before this transaction began.
        var modelsSince: UInt64
        var reservations: CommittedRows<Reservation>
        var reservationsSince: UInt64
        /// A write uses a model as committed only while it has changed no model itself
        /// (`CommittedRows`); it never uses reservations, which most writes change.
        var writing = false
    }

    /// Where `snapshot()` finds its base, the cache's generation when this transaction began,
    /// and whether it is a write (`SnapshotCache`).
    var snapshots: (cache: SnapshotCache, since: UInt64, writing: Bool)?

    init(db: Database, cached: Cached? = nil, snapshots: (cache: SnapshotCache, since: UInt64, writing: Bool)? = nil) {
        self.db = db
        self.cached = cached
        self.snapshots = snapshots
    }

    /// A write transaction, begun now on the writer: nothing of it has changed anything yet.
    init(writing db: Database, snapshots: SnapshotCache, cached: CachedReads) {
        self.init(db: db, cached: cached.session(writing: true), snapshots: (snapshots, snapshots.generation, true))
    }

    // MARK: Catalog

    /// Makes the ledger's units and base models match the config. Units and models that left
    /// the config are retired, never deleted: leases and reservations still point at them.
    public func syncCatalog(units: [ComputeUnit], models: [Model], now: Date) throws {
        try db.execute(sql: "UPDATE units SET retired = 1")
        for (position, unit) in units.enumerated() {
            try UnitRecord(unit, position: position).upsert(db)
        }
        try db.execute(sql: "UPDATE models SET retired = 1 WHERE base_model IS NULL")
        for model in models {
            let createdAt = try Date.fetchOne(db, sql: "SELECT created_at FROM models WHERE id = ?", arguments: [model.id]) ?? now
            try ModelRecord(model, createdAt: createdAt).upsert(db)
        }
    }

    public func units() throws -> [ComputeUnit] {
        try UnitRecord.fetchAll(db, sql: "SELECT * FROM units WHERE NOT retired ORDER BY position").map(\.unit)
    }

    public func models() throws -> [Model] {
        try ModelRecord.fetchAll(db, sql: "SELECT * FROM models WHERE NOT retired ORDER BY base_model IS NOT NULL, id").map(\.model)
    }

    /// A model of the catalog; models the config dropped are not offered any more.
    public func model(id: String) throws -> Model? {
        if let cached, let known = cached.models.row(id, writing: cached.writing) { return known }
        let model = try ModelRecord.fetchOne(db.cachedStatement(sql: "SELECT * FROM models WHERE id = ? AND NOT retired"), arguments: [id]).map(
            \.model
        )
        if let model, let cached { cached.models.store(model, for: id, readSince: cached.modelsSince, writing: cached.writing) }
        return model
    }

    // MARK: Reservations

    /// Reservations, newest first; `owner` limits them to one user's.
    public func reservations(owner: String? = nil) throws -> [Reservation] {
        var sql = "SELECT \(ReservationRecord.selection) FROM reservations"
        var arguments: StatementArguments = []
        if let owner {
            sql += " WHERE owner = ?"
            arguments = [owner]
        }
        sql += " ORDER BY id DESC"
        return try ReservationRecord.fetchAll(db, sql: sql, arguments: arguments).map(\.reservation)
    }

    /// Pending and active reservations.
    public func liveReservations() throws -> [Reservation] {
        try ReservationRecord.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT \(ReservationRecord.selection) FROM reservations WHERE status IN ('pending', 'active') ORDER BY id
                    """
            )
        ).map(\.reservation)
    }

    /// Active reservations for one purpose: what the serve supervisor looks at after every
    /// batch of reservations made or ended, most of which, under load, are not for inference.
    public func activeReservations(purpose: Purpose) throws -> [Reservation] {
        try ReservationRecord.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT \(ReservationRecord.selection) FROM reservations WHERE status = 'active' AND purpose = ? ORDER BY id
                    """
            ),
            arguments: [purpose.rawValue]
        ).map(\.reservation)
    }

    /// The live reservation of that name, or else the latest finished one.
    public func reservation(named name: String) throws -> Reservation? {
        if let cached, !cached.writing, let known = cached.reservations.row(name) { return known }
        let reservation = try ReservationRecord.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT \(ReservationRecord.selection) FROM reservations WHERE name = ?
                    ORDER BY status IN ('pending', 'active') DESC, id DESC LIMIT 1
                    """
            ),
            arguments: [name]
        ).map(\.reservation)
        if let reservation, let cached, !cached.writing {
            cached.reservations.store(reservation, for: name, readSince: cached.reservationsSince)
        }
        return reservation
    }

    /// Whether a live reservation has that name (names are unique among live ones): what a new
    /// reservation's name is checked against, from the live names' own index, reading no row.
    public func hasLiveReservation(named name: String) throws -> Bool {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM reservations WHERE name = ? AND status IN ('pending', 'active')"),
            arguments: [name]
        ) != nil
    }

    /// A reservation's name and status, without reading the rest of its row: what a
    /// submission's transaction checks again, and the name a job shows.
    public func reservationState(id: Int64) throws -> (name: String, status: ReservationStatus)? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT name, status FROM reservations WHERE id = ?"), arguments: [id])
            .map { row in (row[0], try row.stored(atIndex: 1)) }
    }

    public func reservation(id: Int64) throws -> Reservation? {
        try ReservationRecord.fetchOne(
            db.cachedStatement(sql: "SELECT \(ReservationRecord.selection) FROM reservations WHERE id = ?"),
            arguments: [id]
        )
        .map(\.reservation)
    }

    /// Inserts a new reservation and returns it with its id.
    public func insert(_ reservation: Reservation) throws -> Reservation {
        var record = ReservationRecord(reservation)
        // A prepared INSERT of plain values, as for jobs: GRDB's record persistence builds the
        // statement's SQL and arguments through a container on every reservation made.
        try db.cachedStatement(
            sql: """
                INSERT INTO reservations (name, owner, model, purpose, model_units, units, commitment, start, "end", duration, \
                status, waiting, spillover, created_at, ended_at, status_reason, executor, pinned_units) \
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            record.name, record.owner, record.model, record.purpose.rawValue, record.modelUnits, record.units,
            record.commitment.rawValue, record.start.stored, record.end.stored, record.duration, record.status.rawValue,
            record.waiting, record.spillover, record.createdAt.stored, record.endedAt.stored, record.statusReason,
            record.executor, record.pinnedUnits,
        ])
        record.id = db.lastInsertedRowID
        return record.reservation
    }

    /// Saves what `update` and the planner may change in a live reservation: its name, model,
    /// size, window, queue state and pinned units. Status changes go through `apply` and `finish`.
    public func update(_ reservation: Reservation) throws {
        let record = ReservationRecord(reservation)
        try db.execute(
            sql: """
                UPDATE reservations SET name = ?, model = ?, model_units = ?, units = ?, start = ?, "end" = ?, waiting = ?,
                pinned_units = ?
                WHERE id = ?
                """,
            arguments: [
                reservation.name, reservation.model, reservation.modelUnits, reservation.units, reservation.start.stored,
                reservation.end.stored, reservation.waiting, record.pinnedUnits, reservation.id,
            ]
        )
    }

    /// Ends a reservation at `at` with `status` (deleted, expired, failed) and closes its leases there.
    /// Every release runs it: its statements are prepared once per connection, as preparing
    /// them (with the triggers on leases and jobs) cost more than running them.
    public func finish(reservationID: Int64, status: ReservationStatus, at: Date, reason: String? = nil) throws {
        try db.cachedStatement(
            sql: """
                UPDATE reservations SET status = ?, ended_at = ?, status_reason = ?, waiting = 0 WHERE id = ?
                """
        ).execute(arguments: [status.rawValue, at.stored, reason, reservationID])
        try cancelQueue(reservationID: reservationID, reason: JobEndReason.reservationEnded.rawValue, at: at)
        // Units a job of this reservation still runs on stay held until its runner is gone
        // (`finishJob` closes them): the reservation's jobs stop first.
        try db.cachedStatement(
            sql: """
                UPDATE leases SET held = 0, "end" = CASE WHEN "end" IS NULL OR "end" > ? THEN ? ELSE "end" END
                WHERE reservation_id = ? AND held AND unit_id NOT IN (
                    SELECT value FROM jobs, json_each(jobs.units) WHERE reservation_id = ? AND status IN ('running', 'stopping')
                )
                """
        ).execute(arguments: [at.stored, at.stored, reservationID, reservationID])
    }

    // MARK: Leases

    /// A reservation's leases, first to last: every answer that shows a reservation reads them.
    public func leases(reservationID: Int64) throws -> [Lease] {
        try Self.leases(
            db.cachedStatement(sql: #"SELECT unit_id, reservation_id, start, "end" FROM leases WHERE reservation_id = ? ORDER BY start, id"#),
            arguments: [reservationID]
        )
    }

    /// The leases of each of these reservations, as `leases(reservationID:)` gives them, in one
    /// query for a page of a listing; a reservation with none has no entry.
    public func leases(reservationIDs: [Int64]) throws -> [Int64: [Lease]] {
        guard !reservationIDs.isEmpty else { return [:] }
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT unit_id, reservation_id, start, "end" FROM leases
                    WHERE reservation_id IN (SELECT value FROM json_each(?)) ORDER BY start, id
                    """
            ),
            arguments: [Self.jsonArray(reservationIDs)]
        )
        var leases: [Int64: [Lease]] = [:]
        while let row = try rows.next() {
            let lease = Lease(unit: row[0], reservationID: row[1], start: row[2], end: row[3])
            leases[lease.reservationID, default: []].append(lease)
        }
        return leases
    }

    public func heldLeases() throws -> [Lease] {
        // Read on every scheduling cycle: decoded by position. `+id` keeps SQLite from walking
        // every lease ever written in id order: it reads the held ones from their partial index
        // (one per leased unit at most) and sorts those.
        try Self.leases(db.cachedStatement(sql: #"SELECT unit_id, reservation_id, start, "end" FROM leases WHERE held ORDER BY +id"#))
    }

    /// The leases a `SELECT unit_id, reservation_id, start, "end"` finds, decoded by position.
    static func leases(_ statement: Statement, arguments: StatementArguments = []) throws -> [Lease] {
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        var leases: [Lease] = []
        while let row = try rows.next() { leases.append(Lease(unit: row[0], reservationID: row[1], start: row[2], end: row[3])) }
        return leases
    }

    /// Which live reservation holds each unit now: unit id → reservation name.
    public func unitHolders() throws -> [String: String] {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT leases.unit_id, reservations.name FROM leases
                JOIN reservations ON reservations.id = leases.reservation_id WHERE leases.held
                """
        )
        return Dictionary(rows.map { ($0[0] as String, $0[1] as String) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: Planning

    /// What the planner needs, read in this transaction: the base as last committed if no
    /// change since touched it (`SnapshotCache`), and the heads of the queues, always read
    /// unless `readingQueues` is false (admission books reservations in a calendar, and
    /// needs no jobs: a query per live reservation spared on every reservation made). A cycle
    /// planning at `now` reads no queue of a reservation that starts later: the plan cannot
    /// activate it, so its jobs cannot start (jobs queued ahead of an advance reservation).
    public func snapshot(readingQueues: Bool = true, planningAt now: Date? = nil) throws -> Snapshot {
        let base = try snapshotBase()
        let queued = base.reservations.filter { r in now.map { r.status != .pending || r.start <= $0 } ?? true }
        return Snapshot(
            dedicatedUnits: base.dedicatedUnits,
            reservations: base.reservations,
            heldLeases: base.heldLeases,
            unitFreeSince: base.unitFreeSince,
            jobs: base.activeJobs + (readingQueues ? try queueHeads(reservations: queued, active: base.activeJobs) : []),
            unitExecutors: snapshots?.cache.unitExecutors.withLock { $0 } ?? [:]
        )
    }

    func snapshotBase() throws -> SnapshotBase {
        if let snapshots, let known = snapshots.cache.base(since: snapshots.since, writing: snapshots.writing) { return known }
        if let snapshots, snapshots.writing, let (known, inserted) = snapshots.cache.baseMissingInsertedReservations(since: snapshots.since) {
            // Only reservations were inserted since the base was read: read those (one, for a
            // reservation made) rather than the whole base. A row a rolled-back savepoint
            // inserted is gone; an id inserted twice (after such a rollback) is read once.
            var base = known
            var added = false
            for id in Set(inserted) where !base.reservations.contains(where: { $0.id == id }) {
                guard let reservation = try reservation(id: id), !reservation.status.isTerminal else { continue }
                base.reservations.append(reservation)
                added = true
            }
            // In id order, as the full read has them.
            if added { base.reservations.sort { $0.id < $1.id } }
            return base
        }
        // Every change to a reservation makes the base stale, so under a burst of them it is read
        // once per request: its rows are decoded where they lie, through cursors, as copying
        // every row first (`fetchAll`) cost more than the queries.
        let units = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT id, free_since, pool = 'dedicated' FROM units WHERE NOT retired ORDER BY position
                    """
            )
        )
        var dedicatedUnits: [String] = []
        var sharedUnits = 0
        var freeSince: [String: Date] = [:]
        while let row = try units.next() {
            guard row[2] as Bool else {
                sharedUnits += 1
                continue
            }
            let id: String = row[0]
            dedicatedUnits.append(id)
            if let since = row[1] as Date? { freeSince[id] = since }
        }
        let base = SnapshotBase(
            dedicatedUnits: dedicatedUnits,
            sharedUnits: sharedUnits,
            unitFreeSince: freeSince,
            reservations: try liveReservations(),
            heldLeases: try heldLeases(),
            activeJobs: try Self.jobs(db.cachedStatement(sql: "\(Self.jobColumns) WHERE status IN ('running', 'stopping') ORDER BY id"))
        )
        if let snapshots { snapshots.cache.store(base, readSince: snapshots.since, writing: snapshots.writing) }
        return base
    }

    /// The queued jobs a scheduling cycle needs: the head of the queue of each live reservation
    /// that has units to spare (a job needs one at least, so no more than that many), in queue
    /// order. A cycle costs the same with ten queued jobs or a hundred thousand, and a busy pool
    /// reads no queue at all.
    func queueHeads(reservations: [Reservation], active: [Job]) throws -> [Job] {
        var busy: [Int64: Int] = [:]
        for job in active { busy[job.reservationID, default: 0] += job.units.count }
        let head = try db.cachedStatement(
            sql: """
                \(Self.jobColumns) WHERE reservation_id = ? AND status = 'queued' ORDER BY priority DESC, submitted_at, id LIMIT ?
                """
        )
        var jobs: [Job] = []
        for r in reservations {
            let spare = r.units - busy[r.id, default: 0]
            if spare > 0 { jobs += try Self.jobs(head, arguments: [r.id, spare]) }
        }
        return jobs
    }

    /// Exactly the columns the planner uses, decoded by hand: this runs on every cycle.
    static let jobColumns = """
        SELECT id, name, owner, kind, reservation_id, status, priority, model_units, units_needed,
               (SELECT group_concat(value, char(31)) FROM json_each(jobs.units)), submitted_at FROM jobs
        """

    static func jobs(_ statement: Statement, arguments: StatementArguments = []) throws -> [Job] {
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        var jobs: [Job] = []
        while let row = try rows.next() {
            // SQLite's json_each unpacked the JSON list, joined by the unit separator character.
            let units = (row[9] as String?).map { $0.split(separator: "\u{1F}").map(String.init) } ?? []
            jobs.append(
                Job(
                    id: row[0],
                    name: row[1],
                    owner: row[2],
                    kind: try row.stored(atIndex: 3),
                    reservationID: row[4],
                    status: try row.stored(atIndex: 5),
                    priority: row[6],
                    modelUnits: row[7],
                    unitsNeeded: row[8],
                    units: units,
                    submittedAt: row[10]
                )
            )
        }
        return jobs
    }

    /// Applies a plan's steps in order. The caller's transaction makes them one change.
    public func apply(_ plan: Plan) throws {
        for step in plan.steps {
            switch step {
            case .activate(let id, let start, let end, let units, let leaseStart):
                try db.cachedStatement(
                    sql: """
                        UPDATE reservations SET status = 'active', waiting = 0, start = ?, "end" = ? WHERE id = ?
                        """
                ).execute(arguments: [start.stored, end.stored, id])
                try insertLeases(reservationID: id, units: units, start: leaseStart, end: end)
            case .grow(let id, let units, let at):
                let end = try Date.fetchOne(db.cachedStatement(sql: #"SELECT "end" FROM reservations WHERE id = ?"#), arguments: [id])
                try insertLeases(reservationID: id, units: units, start: at, end: end)
            case .expire(let id, let at):
                try finish(reservationID: id, status: .expired, at: at, reason: "reached its end")
            case .startJob, .stopJob, .cancelJob:
                try applyJobStep(step)
            }
        }
    }

    private func insertLeases(reservationID: Int64, units: [String], start: Date, end: Date?) throws {
        for unit in units {
            var lease = LeaseRecord(id: nil, unitId: unit, reservationId: reservationID, start: start, end: end, held: true)
            try lease.insert(db)
        }
    }

    /// Runs `body` in a savepoint: if it throws, its changes are undone and the rest of the
    /// transaction goes on. Lets one transaction carry many requests' changes (group commit)
    /// while each request still succeeds or fails whole.
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        guard db.isInsideTransaction else {
            var result: T?
            try db.inSavepoint {
                result = try body()
                return .commit
            }
            return result!
        }
        // Prepared once: GRDB's `inSavepoint` compiles its two statements on every call, and a
        // batch runs one savepoint per request.
        try db.cachedStatement(sql: "SAVEPOINT request").execute()
        let result: T
        do {
            result = try body()
        } catch {
            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT request").execute()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT request").execute()
            throw error
        }
        try db.cachedStatement(sql: "RELEASE SAVEPOINT request").execute()
        return result
    }

    // MARK: Idempotency

    public func idempotentAnswer(owner: String, key: String) throws -> IdempotentAnswer? {
        // A statement prepared once: `fetchOne(db, key:)` built and prepared its SQL anew at
        // every write that carries a key: 14 % of what berthd spent on a reservation made and released.
        let statement = try db.cachedStatement(sql: "SELECT * FROM idempotency_keys WHERE owner = ? AND key = ?")
        return try IdempotencyRecord.fetchOne(statement, arguments: [owner, key]).map {
            IdempotentAnswer(route: $0.route, request: $0.request, status: $0.status, response: $0.response)
        }
    }

    public func recordIdempotentAnswer(owner: String, key: String, answer: IdempotentAnswer, now: Date) throws {
        try IdempotencyRecord(
            owner: owner,
            key: key,
            route: answer.route,
            request: answer.request,
            status: answer.status,
            response: answer.response,
            createdAt: now
        ).insert(db)
    }

    // MARK: Secrets

    /// The secret of this name, made (32 random bytes) and kept the first time it is asked for:
    /// the same one for as long as the ledger lives, restarts and restores included.
    public func secret(named name: String) throws -> Data {
        if let kept = try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM daemon_secrets WHERE name = ?"), arguments: [name]) {
            return kept
        }
        var generator = SystemRandomNumberGenerator()
        let made = Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
        try db.execute(sql: "INSERT INTO daemon_secrets (name, value) VALUES (?, ?)", arguments: [name, made])
        return made
    }

    // MARK: Checks

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    public func integrityCheck() throws -> String {
        try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer"
    }
}

/// Units by pool and reservations by state, as `berth status` shows them.
public struct PoolCounts: Sendable, Equatable {
    public var dedicatedUnits: Int
    public var sharedUnits: Int
    /// Dedicated units a reservation holds now.
    public var leasedUnits: Int
    public var pendingReservations: Int
    public var activeReservations: Int

    init(_ base: SnapshotBase) {
        dedicatedUnits = base.dedicatedUnits.count
        sharedUnits = base.sharedUnits
        leasedUnits = Set(base.heldLeases.map(\.unit)).count
        pendingReservations = base.reservations.count { $0.status == .pending }
        activeReservations = base.reservations.count { $0.status == .active }
    }
}
