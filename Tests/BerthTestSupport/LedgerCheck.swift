import BerthStore

extension TemporaryDaemon {
    /// The ledger invariants its file breaks (see `LedgerInvariants`), read while the daemon
    /// may still be running; empty when all hold.
    public func ledgerViolations() throws -> [String] {
        try LedgerInvariants.violations(databaseAt: database)
    }
}
