import ArgumentParser
import BerthCore
import BerthWire

extension Berth {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show the daemon's version, uptime and a summary of the pool."
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let reply = try global.call(HealthView.self, "GET", "/v1/health")
            global.show(reply) { health in
                var fields = [
                    ("status", health.status),
                    ("version", health.version),
                    ("started", Format.time(health.startedAt)),
                    ("uptime", TimeExpression.formatDuration(Double(health.uptimeSeconds))),
                    ("dedicated units", "\(health.units.dedicated) (\(health.units.leased) leased, \(health.units.free) free)"),
                    ("shared units", String(health.units.shared)),
                    ("reservations", "\(health.reservations.active) active, \(health.reservations.pending) pending"),
                ]
                if let confinement = health.confinement { fields.append(("confinement", confinement)) }
                if let ledger = health.ledger {
                    fields.append(
                        (
                            "ledger",
                            ledger.full ? "full — free space on \(ledger.folder ?? "the ledger's folder"); changes are refused until then" : "ok"
                        )
                    )
                }
                return Table.fields(fields)
            }
        }
    }
}
