import ArgumentParser
import BerthClient
import BerthWire

extension Berth {
    struct Reservations: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reservations",
            abstract: "List reservations, or show one in full with its leases.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A reservation name, to show it in full.")
        var name: String?

        func validate() throws {
            if let name { try ArgumentCheck.reservationName(name, field: "name") }
        }

        func run() throws {
            if let name {
                let reply = try global.call(
                    ReservationView.self, "GET", "/v1/reservations/" + PercentEncoding.pathSegment(name))
                global.show(reply, human: Self.detail)
            } else {
                let reply = try global.call(ReservationList.self, "GET", "/v1/reservations")
                global.show(reply) { list in
                    var table = Table(
                        "name", "owner", "model", "purpose", "model units", "compute units", "commitment", "start", "end",
                        "status")
                    for r in list.reservations {
                        table.append(
                            r.name, r.owner, r.model, r.purpose, String(r.modelUnits), String(r.units), r.commitment,
                            Format.time(r.start), Format.time(r.end), Self.status(r))
                    }
                    return table.render()
                }
            }
        }

        static func status(_ reservation: ReservationView) -> String {
            reservation.waiting ? "\(reservation.status) (waiting)" : reservation.status
        }

        static func detail(_ reservation: ReservationView) -> String {
            var fields = [
                ("name", reservation.name),
                ("owner", reservation.owner),
                ("model", reservation.model),
                ("purpose", reservation.purpose),
                ("model units", String(reservation.modelUnits)),
                ("compute units", String(reservation.units)),
                ("commitment", reservation.commitment),
                ("start", Format.time(reservation.start)),
                ("end", Format.time(reservation.end)),
                ("status", reservation.status),
                ("waiting", Format.yesNo(reservation.waiting)),
                ("spillover", Format.yesNo(reservation.spillover)),
                ("created", Format.time(reservation.createdAt)),
            ]
            if let endedAt = reservation.endedAt {
                fields.append(("ended", Format.time(endedAt) + (reservation.statusReason.map { " (\($0))" } ?? "")))
            }
            guard !reservation.leases.isEmpty else {
                fields.append(("leases", "-"))
                return Table.fields(fields)
            }
            var leases = Table("unit", "start", "end")
            for lease in reservation.leases {
                leases.append(lease.unit, Format.time(lease.start), Format.time(lease.end))
            }
            return Table.fields(fields) + "\n\nleases:\n" + leases.render()
        }
    }
}
