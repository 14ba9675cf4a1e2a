public import BerthStore
public import Logging
public import ServiceLifecycle

/// Checkpoints the ledger's write-ahead log a few times a second, beside the writes, so that
/// no request's commit has to (`Ledger.checkpoint()`). A pass that finds no change committed
/// since the log was last copied whole does nothing: an idle daemon leaves its ledger alone.
public final class LedgerCheckpointer: Service, Sendable {
    private let ledger: Ledger
    private let logger: Logger
    private let every: Duration
    private let checkpoint: @Sendable () async throws -> (logFrames: Int, copied: Int)

    public convenience init(ledger: Ledger, logger: Logger, every: Duration = .milliseconds(250)) {
        self.init(ledger: ledger, logger: logger, every: every) { try await ledger.checkpoint() }
    }

    /// With the checkpoint itself given, for tests that count the passes that make one.
    init(
        ledger: Ledger,
        logger: Logger,
        every: Duration,
        checkpoint: @escaping @Sendable () async throws -> (logFrames: Int, copied: Int)
    ) {
        self.ledger = ledger
        self.logger = logger
        self.every = every
        self.checkpoint = checkpoint
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failing = false
            var copiedThrough: UInt64?
            while !Task.isCancelled {
                try await Task.sleep(for: self.every)
                do {
                    copiedThrough = try await self.pass(after: copiedThrough)
                    failing = false
                } catch {
                    // SQLite checkpoints by itself past 10,000 pages meanwhile; say it once.
                    if !failing { self.logger.warning("cannot checkpoint the ledger; will retry", metadata: ["error": "\(error)"]) }
                    failing = true
                }
            }
        }
    }

    /// One pass, given `Ledger.committedChanges` as it was when the log was last copied whole
    /// (nil before that, so the first pass copies whatever an earlier run left); returns the
    /// same for after this pass.
    func pass(after copiedThrough: UInt64?) async throws -> UInt64? {
        let changes = ledger.committedChanges
        guard changes != copiedThrough else { return copiedThrough }
        let result = try await checkpoint()
        // A reader still on an older snapshot holds back the frames after it: the next pass
        // copies them.
        return result.copied >= result.logFrames ? changes : nil
    }
}
