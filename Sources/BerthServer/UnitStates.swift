public import BerthCore
public import BerthWire

extension UnitDirectory {
    /// A unit's state in `berth units`: `lost` when the ledger still lists it (a lease holds
    /// it) but the current config and discovery do not, such as a GPU the driver stopped
    /// listing; berth never drops a held unit silently.
    public func state(of unit: ComputeUnit) -> UnitState {
        isLost(unit.id) ? .lost : .present
    }
}
