import BerthCore
public import BerthStore

extension Fixtures {
    /// A ledger in `dir` with four dedicated CPU units (`cpu-0` to `cpu-3`), one shared
    /// (`shared-0`) and the text model.
    public static func openLedger(in dir: TemporaryDirectory) throws -> Ledger {
        let ledger = try Ledger(path: dir.file("berth.db"))
        try ledger.writeNow { tx in
            try tx.syncCatalog(
                units: dedicatedUnits(4).map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) }
                    + [ComputeUnit(id: "shared-0", kind: "cpu", pool: .shared)],
                models: [textModel],
                now: t(0)
            )
        }
        return ledger
    }
}
