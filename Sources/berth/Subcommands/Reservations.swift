import ArgumentParser
import BerthClient
import BerthCore
import BerthWire

extension Berth {
    struct Reservations: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reservations",
            abstract: "List reservations, or show one in full with its leases.",
            discussion: """
                Lists the reservations that match the filters, newest first, finished ones included, \
                100 unless --limit or --all says otherwise: your own, or everyone's for an admin \
                (--owner names one user's). When more match than are shown, the table ends with how \
                many more and how to see them; --json has them as `more` and `next_cursor`.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A reservation name, to show it in full.")
        var name: String?

        @Option(
            parsing: .singleValue,
            help: ArgumentHelp(
                "Only reservations in these statuses: \(ReservationStatus.allCases.map(\.rawValue).joined(separator: ", ")), separated by commas.",
                valueName: "status[,status]"
            ),
            transform: ArgumentCheck.values
        )
        var status: [[ReservationStatus]] = []

        @Option(help: ArgumentHelp("Only this user's reservations (an admin may name anyone; others only themselves).", valueName: "user"))
        var owner: String?

        @Option(help: "Only reservations for training jobs or for inference calls.")
        var purpose: Purpose?

        @Option(parsing: .unconditional, help: ArgumentHelp("Only reservations made at or after this time.", valueName: "time"))
        var since: String?

        @OptionGroup var listing: ListingOptions

        func validate() throws {
            if let name {
                try ArgumentCheck.reservationName(name, field: "name")
                if !status.isEmpty || owner != nil || purpose != nil || since != nil || listing.given {
                    throw ValidationError("reservation '\(name)' is shown in full by itself: leave out the listing's options, or the name")
                }
            }
            try ArgumentCheck.owner(owner)
            _ = try ArgumentCheck.since(since)
        }

        func run() throws {
            if let name {
                let reply = try global.call(
                    ReservationView.self,
                    "GET",
                    "/v1/reservations/" + PercentEncoding.pathSegment(name)
                )
                global.show(reply, human: Self.detail)
            } else {
                let statuses = status.joined().map(\.rawValue)
                let filters: [(String, String?)] = [
                    ("status", statuses.isEmpty ? nil : statuses.joined(separator: ",")), ("owner", owner),
                    ("purpose", purpose?.rawValue), ("since", try ArgumentCheck.since(since)),
                ]
                if global.json {
                    global.show(try listing.fetch(ReservationList.self, "/v1/reservations", filters: filters, global: global)) { _ in "" }
                    return
                }
                let list = try listing.fetch(
                    ReservationRowList.self,
                    "/v1/reservations",
                    filters: filters,
                    fields: ReservationRow.fields,
                    global: global
                ).value
                print(Self.table(list))
            }
        }

        /// The listing as a table, with how many more match under it.
        static func table(_ list: ReservationRowList) -> String {
            var table = Table(
                "name",
                "owner",
                "model",
                "purpose",
                "model units",
                "compute units",
                "commitment",
                "start",
                "end",
                "status"
            )
            for r in list.reservations {
                table.append(
                    r.name,
                    r.owner,
                    r.model,
                    r.purpose,
                    String(r.modelUnits),
                    String(r.units),
                    r.commitment,
                    Format.time(r.start),
                    Format.time(r.end),
                    Self.status(r)
                )
            }
            return ([table.render()] + [ListingOptions.moreLine(shown: list.reservations.count, more: list.more)].compactMap { $0 })
                .joined(separator: "\n")
        }

        static func status(_ reservation: ReservationRow) -> String {
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
            if let pinned = reservation.pinnedUnits { fields.append(("units from start", pinned.joined(separator: ", "))) }
            if let restarts = reservation.serveRestarts { fields.append(("serve restarts", String(restarts))) }
            if let cpu = reservation.serveCpuSeconds, let peak = reservation.servePeakMemoryBytes {
                fields.append(("serve cpu used", CFormat.string("%.2f s", cpu)))
                fields.append(("serve peak memory", CFormat.string("%.1f MiB", Double(peak) / 1_048_576)))
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
