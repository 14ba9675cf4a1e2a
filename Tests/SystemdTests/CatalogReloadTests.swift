import BerthCore
import BerthServer
import Testing

@Suite struct CatalogReloadTests {
    static let current = [
        ComputeUnit(id: "cpu-0", kind: "cpu", device: 0, pool: .dedicated),
        ComputeUnit(id: "cpu-1", kind: "cpu", device: 1, pool: .dedicated),
        ComputeUnit(id: "cpu-shared-0", kind: "cpu", pool: .shared),
    ]

    @Test func aReloadWithNoLeasesTakesTheConfigAsItIs() {
        let configured = [
            ComputeUnit(id: "cpu-1", kind: "cpu", device: 1, pool: .dedicated), ComputeUnit(id: "cpu-2", kind: "cpu", device: 2, pool: .dedicated),
        ]
        let reload = CatalogReload.plan(configured: configured, current: Self.current, holders: [:])
        #expect(reload.units == configured)
        #expect(reload.kept.isEmpty)
        #expect(reload.added == ["cpu-2"])
        #expect(reload.removed == ["cpu-0", "cpu-shared-0"])
    }

    @Test func aLeasedUnitTheConfigDropsIsKeptAfterTheConfiguredOnes() {
        let configured = [ComputeUnit(id: "cpu-1", kind: "cpu", device: 1, pool: .dedicated)]
        let reload = CatalogReload.plan(configured: configured, current: Self.current, holders: ["cpu-0": "train"])
        #expect(reload.units.map(\.id) == ["cpu-1", "cpu-0"])
        #expect(reload.kept == [.init(unit: "cpu-0", holder: "train", reason: .dropped)])
        #expect(reload.removed == ["cpu-shared-0"])
    }

    @Test func aLeasedUnitTheConfigMovesToTheSharedPoolStaysDedicated() {
        let configured = [
            ComputeUnit(id: "cpu-0", kind: "cpu", device: 0, pool: .shared),
            ComputeUnit(id: "cpu-1", kind: "cpu", device: 1, pool: .shared),
        ]
        let reload = CatalogReload.plan(configured: configured, current: Self.current, holders: ["cpu-0": "serve"])
        #expect(reload.units == [Self.current[0], configured[1]])
        #expect(reload.kept == [.init(unit: "cpu-0", holder: "serve", reason: .poolChanged)])
    }
}
