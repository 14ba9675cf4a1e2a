public import BerthStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Meters calls with group commit: every call's record is in the ledger before the call is
/// answered, without an fsync per call. The first caller of a quiet moment writes its record
/// itself; records that arrive while a transaction commits wait for the next one, which takes
/// all of them, and each caller resumes once its record is committed.
///
/// Batches commit without waiting for the disk (`Ledger.writeUnsynced`): a killed berthd loses
/// none of them. Once a second, if calls were recorded, the meter syncs the ledger to disk, as
/// does any change through the API: a power cut loses at most the last second of call records.
/// Four times a second, if calls were recorded since, it rolls the new records up into the
/// hourly usage rows.
/// It stops after the socket server, so no call is left waiting.
public final class InvocationMeter: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let metrics: DaemonMetrics
    private let syncEvery: Duration = .seconds(1)
    private let rollUpEvery: Duration = .milliseconds(250)
    private static let rollUpBatch = 50_000

    /// Calls a failed write left over, to be written by the next pass of `run`, whether calls
    /// were committed since the last sync to disk, and whether since the last roll-up (true at
    /// first: a berthd that was killed may have left records to roll up).
    private struct State {
        var leftovers: [InvocationRecord] = []
        var unsynced = false
        var unrolled = true

        /// Calls were committed: they are to be synced and rolled up.
        mutating func committedCalls() {
            unsynced = true
            unrolled = true
        }
    }

    /// A class, so the batch writer can hold the same lock as the meter.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared = Shared()
    private let batches: GroupCommit<InvocationRecord, Void>

    public init(ledger: Ledger, logger: Logger, metrics: DaemonMetrics) {
        self.ledger = ledger
        self.logger = logger
        self.metrics = metrics
        let shared = self.shared
        batches = GroupCommit { calls, fresh in
            do {
                if fresh {
                    // The first batch of a quiet moment is a few rows: the caller's own thread
                    // writes them, committed without an fsync, with no hop to another thread.
                    try ledger.writeUnsyncedNow { tx in try tx.record(calls) }
                } else {
                    try await ledger.writeUnsynced { tx in try tx.record(calls) }
                }
                shared.state.withLock { $0.committedCalls() }
                return calls.map { _ in .success(()) }
            } catch {
                logger.log(
                    level: error is LedgerFullError ? .debug : .error,
                    "cannot record invocations; will retry",
                    metadata: ["count": "\(calls.count)", "error": "\(error)"]
                )
                shared.state.withLock { $0.leftovers.append(contentsOf: calls) }
                return calls.map { _ in .failure(error) }
            }
        }
    }

    /// Counts the call in `/metrics` and returns once its record is committed to the ledger.
    /// `targetResolved` is false when the target named no reservation or model the caller may
    /// call: such a call is only counted. It used nothing, and its target is whatever string the
    /// caller sent, so a record would put invented names into everyone's usage reports.
    /// Throws if the ledger cannot be written; the record is kept for a later commit.
    public func record(_ call: InvocationRecord, targetResolved: Bool = true) async throws {
        metrics.invocation(call, targetResolved: targetResolved)
        guard targetResolved else { return }
        try await batches.submit(call)
    }

    /// Returns once the calls being written are committed, and syncs them to disk. For the
    /// end of `run`, when the socket server has stopped and no call comes any more.
    func flush() async {
        await writeLeftovers()
        await batches.idle()
        await rollUp()
        await sync()
    }

    /// Writes records a failed write left over.
    private func writeLeftovers() async {
        let calls = shared.state.withLock { state in
            defer { state.leftovers = [] }
            return state.leftovers
        }
        guard !calls.isEmpty else { return }
        do {
            try await ledger.writeUnsynced { tx in try tx.record(calls) }
            shared.state.withLock { $0.committedCalls() }
        } catch {
            shared.state.withLock { $0.leftovers.insert(contentsOf: calls, at: 0) }
        }
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var lastSync = ContinuousClock.now
            while !Task.isCancelled {
                try await Task.sleep(for: self.rollUpEvery)
                await self.writeLeftovers()
                await self.rollUp()
                if ContinuousClock.now - lastSync >= self.syncEvery {
                    lastSync = .now
                    await self.sync()
                }
            }
        }
        await flush()
    }

    /// Adds the calls recorded since the last time to the hourly rows and activity spans
    /// (`rollUpRecorded`), so that each call's own write stays small. Without calls recorded
    /// since, it does not look: an idle daemon leaves its ledger alone.
    func rollUp() async {
        let due = shared.state.withLock { state in
            defer { state.unrolled = false }
            return state.unrolled
        }
        guard due else { return }
        do {
            guard try await ledger.read({ tx in try tx.callsToRollUp() }) else { return }
            var rolled = Self.rollUpBatch
            while rolled == Self.rollUpBatch {
                rolled = try await ledger.writeUnsynced { tx in try tx.rollUpRecorded(limit: Self.rollUpBatch) }
                if rolled > 0 { shared.state.withLock { $0.unsynced = true } }
            }
        } catch {
            shared.state.withLock { $0.unrolled = true }
            logger.log(level: error is LedgerFullError ? .debug : .error, "cannot roll up call records; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Syncs the ledger to disk if calls were committed since the last time.
    private func sync() async {
        guard
            shared.state.withLock({ state -> Bool in
                defer { state.unsynced = false }
                return state.unsynced
            })
        else { return }
        do {
            try ledger.syncToDisk()
        } catch {
            shared.state.withLock { $0.unsynced = true }
            logger.error("cannot sync call records to disk; will retry", metadata: ["error": "\(error)"])
        }
    }
}
