public import BerthStore
public import Logging
public import ServiceLifecycle

/// Checkpoints the ledger's write-ahead log a few times a second, beside the writes, so that
/// no request's commit has to (`Ledger.checkpoint()`).
public final class LedgerCheckpointer: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let every: Duration

    public init(ledger: Ledger, logger: Logger, every: Duration = .milliseconds(250)) {
        self.ledger = ledger
        self.logger = logger
        self.every = every
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                try await Task.sleep(for: self.every)
                do {
                    try await self.ledger.checkpoint()
                    failing = false
                } catch {
                    // SQLite checkpoints by itself past 10,000 pages meanwhile; say it once.
                    if !failing { self.logger.warning("cannot checkpoint the ledger; will retry", metadata: ["error": "\(error)"]) }
                    failing = true
                }
            }
        }
    }
}
