import ArgumentParser
import BerthWire

extension Berth {
    struct Units: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "units",
            abstract:
                "List the compute units: pool, kind, device, the reservation holding each, and whether it is lost (gone from the config or discovery while leased)."
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let reply = try global.call(UnitList.self, "GET", "/v1/units")
            global.show(reply) { list in
                var table = Table("id", "kind", "device", "pool", "holder", "state")
                for unit in list.units {
                    table.append(unit.id, unit.kind, Format.number(unit.device), unit.pool, Format.text(unit.holder), unit.state.rawValue)
                }
                return table.render()
            }
        }
    }
}
