public import BerthStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Meters calls without an fsync per call: records gather in memory and go to the ledger in
/// one transaction every few milliseconds (group commit). It stops after the socket server, so
/// every call that was answered is flushed before berthd exits.
public final class InvocationMeter: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let metrics: DaemonMetrics
    private let doorbell = Doorbell()
    /// Calls not yet written, and whether the service is stopping. A lock, not an actor: the
    /// hot path only appends.
    private let state = Mutex<(buffer: [InvocationRecord], stopping: Bool)>(([], false))

    public init(ledger: Ledger, logger: Logger, metrics: DaemonMetrics) {
        self.ledger = ledger
        self.logger = logger
        self.metrics = metrics
    }

    /// Counts the call in `/metrics` now and queues it for the ledger. `targetResolved` is
    /// false when the target named no reservation or model the caller may call.
    public func record(_ call: InvocationRecord, targetResolved: Bool = true) {
        metrics.invocation(call, targetResolved: targetResolved)
        let count = state.withLock { state -> Int in
            state.buffer.append(call)
            return state.buffer.count
        }
        if count == 1 || count >= 512 { Task { await doorbell.ring() } }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !self.state.withLock({ $0.stopping }) {
                await self.doorbell.wait(timeout: .milliseconds(200))
                // Let a burst gather for a moment: one transaction for all of it.
                try? await Task.sleep(for: .milliseconds(5))
                await self.flush()
            }
        } onGracefulShutdown: {
            Task { await self.stop() }
        }
        await flush()
    }

    private func stop() async {
        state.withLock { $0.stopping = true }
        await doorbell.ring()
    }

    /// Writes everything gathered so far; keeps it for the next try if the write fails.
    public func flush() async {
        let batch = state.withLock { state -> [InvocationRecord] in
            defer { state.buffer.removeAll(keepingCapacity: true) }
            return state.buffer
        }
        guard !batch.isEmpty else { return }
        do {
            try await ledger.write { tx in try tx.record(batch) }
        } catch {
            logger.error("cannot record invocations; will retry", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            state.withLock { $0.buffer.insert(contentsOf: batch, at: 0) }
        }
    }
}
