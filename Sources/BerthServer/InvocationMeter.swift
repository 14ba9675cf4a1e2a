public import BerthStore
public import Logging
public import ServiceLifecycle

/// Meters calls without an fsync per call: records gather in memory and go to the ledger in
/// one transaction every few milliseconds (group commit). It stops after the socket server, so
/// every call that was answered is flushed before berthd exits.
public actor InvocationMeter: Service {
    private let ledger: Ledger
    private let logger: Logger
    private let doorbell = Doorbell()
    private var buffer: [InvocationRecord] = []
    private var stopping = false

    public init(ledger: Ledger, logger: Logger) {
        self.ledger = ledger
        self.logger = logger
    }

    public func record(_ call: InvocationRecord) async {
        buffer.append(call)
        if buffer.count == 1 || buffer.count >= 512 { await doorbell.ring() }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !self.stopping {
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
        stopping = true
        await doorbell.ring()
    }

    /// Writes everything gathered so far; keeps it for the next try if the write fails.
    public func flush() async {
        guard !buffer.isEmpty else { return }
        let batch = buffer
        buffer.removeAll(keepingCapacity: true)
        do {
            try await ledger.write { tx in try tx.record(batch) }
        } catch {
            logger.error("cannot record invocations; will retry", metadata: ["count": "\(batch.count)", "error": "\(error)"])
            buffer.insert(contentsOf: batch, at: 0)
        }
    }
}
