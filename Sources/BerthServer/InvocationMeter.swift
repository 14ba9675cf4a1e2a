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
/// Four times a second it rolls the new records up into the hourly usage rows.
/// It stops after the socket server, so no call is left waiting.
public final class InvocationMeter: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let metrics: DaemonMetrics
    private let syncEvery: Duration = .seconds(1)
    private let rollUpEvery: Duration = .milliseconds(250)
    private static let rollUpBatch = 50_000

    /// Calls not yet written and who waits for them. A lock, not an actor: the hot path only
    /// appends.
    private struct State {
        var buffer: [InvocationRecord] = []
        var waiting: [CheckedContinuation<Void, any Error>] = []
        /// A batch is being written; whoever writes it writes the next one too.
        var writing = false
        /// Calls were committed since the last sync to disk.
        var unsynced = false
    }

    private let state = Mutex(State())

    public init(ledger: Ledger, logger: Logger, metrics: DaemonMetrics) {
        self.ledger = ledger
        self.logger = logger
        self.metrics = metrics
    }

    /// Counts the call in `/metrics` and returns once its record is committed to the ledger.
    /// `targetResolved` is false when the target named no reservation or model the caller may
    /// call. Throws if the ledger cannot be written; the record is kept for the next commit.
    public func record(_ call: InvocationRecord, targetResolved: Bool = true) async throws {
        metrics.invocation(call, targetResolved: targetResolved)
        let lead = state.withLock { state -> Bool in
            guard !state.writing else { return false }
            state.writing = true
            state.buffer.append(call)
            return true
        }
        if lead {
            // Nobody is writing: this call's task writes (no hop to another task and back).
            try await writeBatch(leading: true)
            return
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { state -> Bool in
                state.buffer.append(call)
                state.waiting.append(continuation)
                if state.writing { return false }
                state.writing = true
                return true
            }
            // The writer finished between the two looks: someone must write this one.
            if start { Task { try? await self.writeBatch(leading: false) } }
        }
    }

    /// Returns once the calls being written are committed, and syncs them to disk. For the
    /// end of `run`, when the socket server has stopped and no call comes any more.
    func flush() async {
        await writeLeftovers()
        while state.withLock({ $0.writing }) { try? await Task.sleep(for: .milliseconds(1)) }
        await rollUp()
        await sync()
    }

    /// Writes records a failed write left in the buffer, if no caller came to write them.
    private func writeLeftovers() async {
        let start = state.withLock { state -> Bool in
            guard !state.writing, !state.buffer.isEmpty else { return false }
            state.writing = true
            return true
        }
        if start { try? await writeBatch(leading: false) }
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
    /// (`rollUpRecorded`), so that each call's own write stays small.
    private func rollUp() async {
        do {
            // An idle daemon only reads here: no write transaction, nothing to sync.
            guard try await ledger.read({ tx in try tx.callsToRollUp() }) else { return }
            var rolled = Self.rollUpBatch
            while rolled == Self.rollUpBatch {
                rolled = try await ledger.writeUnsynced { tx in try tx.rollUpRecorded(limit: Self.rollUpBatch) }
                if rolled > 0 { state.withLock { $0.unsynced = true } }
            }
        } catch {
            logger.log(level: error is LedgerFullError ? .debug : .error, "cannot roll up call records; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Writes what is buffered in one transaction and resumes its callers, as long as callers
    /// keep coming. If the write fails they get the error and the records stay for the next try.
    private func writeBatch(leading: Bool) async throws {
        var ownError: (any Error)?
        var first = leading
        while true {
            let (batch, waiting) = state.withLock { state in
                defer {
                    state.buffer.removeAll(keepingCapacity: true)
                    state.waiting.removeAll(keepingCapacity: true)
                }
                return (state.buffer, state.waiting)
            }
            if batch.isEmpty {
                state.withLock { $0.writing = false }
                for caller in waiting { caller.resume() }
                break
            }
            do {
                if first {
                    // The caller's own thread writes: a few rows, committed without an fsync.
                    try ledger.writeUnsyncedNow { tx in try tx.record(batch) }
                } else {
                    try await ledger.writeUnsynced { tx in try tx.record(batch) }
                }
                state.withLock { $0.unsynced = true }
                for caller in waiting { caller.resume() }
            } catch {
                logger.log(
                    level: error is LedgerFullError ? .debug : .error, "cannot record invocations; will retry",
                    metadata: ["count": "\(batch.count)", "error": "\(error)"])
                state.withLock { $0.buffer.insert(contentsOf: batch, at: 0) }
                for caller in waiting { caller.resume(throwing: error) }
                if first { ownError = error }
                state.withLock { $0.writing = false }
                break
            }
            if first {
                first = false
                // The leader's own call is answered now; anyone who came meanwhile is written
                // by a task of its own.
                let more = state.withLock { state -> Bool in
                    if state.buffer.isEmpty { state.writing = false; return false }
                    return true
                }
                if more { Task { try? await self.writeBatch(leading: false) } }
                break
            }
        }
        if let ownError { throw ownError }
    }

    /// Syncs the ledger to disk if calls were committed since the last time.
    private func sync() async {
        guard state.withLock({ state -> Bool in
            defer { state.unsynced = false }
            return state.unsynced
        }) else { return }
        do {
            try ledger.syncToDisk()
        } catch {
            state.withLock { $0.unsynced = true }
            logger.error("cannot sync call records to disk; will retry", metadata: ["error": "\(error)"])
        }
    }
}
