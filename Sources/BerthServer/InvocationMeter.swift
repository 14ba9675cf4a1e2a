public import BerthStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Meters calls with group commit: every call's record is in the ledger before the call is
/// answered, without an fsync per call. Records that arrive while a transaction commits wait
/// for the next one, which takes all of them; each caller resumes once its record is committed.
/// It stops after the socket server, so no call is left waiting.
public final class InvocationMeter: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let metrics: DaemonMetrics
    private let doorbell = Doorbell()

    /// Calls not yet written and who waits for them. A lock, not an actor: the hot path only
    /// appends.
    private struct State {
        var buffer: [InvocationRecord] = []
        var waiting: [CheckedContinuation<Void, any Error>] = []
        var stopping = false
        /// The loop has ended: a late caller commits its own record.
        var stopped = false
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
        try await commitWith([call])
    }

    /// Returns once every call recorded before it is committed.
    public func flush() async {
        try? await commitWith([])
    }

    private func commitWith(_ calls: [InvocationRecord]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let (first, stopped) = state.withLock { state -> (Bool, Bool) in
                state.buffer.append(contentsOf: calls)
                state.waiting.append(continuation)
                return (state.waiting.count == 1, state.stopped)
            }
            if stopped {
                Task { await self.commit() }
            } else if first {
                Task { await doorbell.ring() }
            }
        }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !self.state.withLock({ $0.stopping }) {
                // Rung by the first record after an idle spell; records that come while a
                // commit runs make the next batch, which goes as soon as that commit is done.
                await self.doorbell.wait(timeout: .milliseconds(200))
                await self.commit()
            }
        } onGracefulShutdown: {
            Task { await self.stop() }
        }
        state.withLock { $0.stopped = true }
        await commit()
    }

    private func stop() async {
        state.withLock { $0.stopping = true }
        await doorbell.ring()
    }

    /// Writes everything gathered so far in one transaction, then resumes its callers. If the
    /// write fails they get the error and the records stay for the next try.
    private func commit() async {
        let (batch, waiting) = state.withLock { state in
            defer {
                state.buffer.removeAll(keepingCapacity: true)
                state.waiting.removeAll(keepingCapacity: true)
            }
            return (state.buffer, state.waiting)
        }
        guard !batch.isEmpty || !waiting.isEmpty else { return }
        do {
            if !batch.isEmpty { try await ledger.write { tx in try tx.record(batch) } }
            for caller in waiting { caller.resume() }
        } catch {
            logger.error("cannot record invocations; will retry", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            state.withLock { $0.buffer.insert(contentsOf: batch, at: 0) }
            for caller in waiting { caller.resume(throwing: error) }
        }
    }
}
