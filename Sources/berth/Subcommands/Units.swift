import ArgumentParser
import BerthWire

extension Berth {
    struct Units: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "units",
            abstract: "List the compute units: pool, kind, device and the reservation holding each.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let reply = try global.call(UnitList.self, "GET", "/v1/units")
            global.show(reply) { list in
                var table = Table("id", "kind", "device", "pool", "holder")
                for unit in list.units {
                    table.append(unit.id, unit.kind, Format.number(unit.device), unit.pool, Format.text(unit.holder))
                }
                return table.render()
            }
        }
    }
}
