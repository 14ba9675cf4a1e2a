import ArgumentParser
import BerthClient
import BerthWire

extension Berth {
    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update",
            abstract: "Rename a reservation, move it to another model of the same base, or add model units.",
            discussion: "Model units are only ever added: a reservation keeps what it holds until its term ends."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The reservation to change.")
        var name: String

        @Option(help: "The new number of model units (no fewer than it holds now).")
        var units: Int?

        @Option(help: "Another model of the same base model.")
        var model: String?

        @Option(help: ArgumentHelp("A new name for the reservation.", valueName: "new"))
        var rename: String?

        func validate() throws {
            try ArgumentCheck.reservationName(name, field: "name")
            guard units != nil || model != nil || rename != nil else {
                throw ValidationError("nothing to update: give --units, --model or --rename")
            }
            try ArgumentCheck.modelUnits(units)
            if let rename { try ArgumentCheck.reservationName(rename, field: "--rename") }
        }

        func run() throws {
            let request = UpdateReservationRequest(name: rename, model: model, modelUnits: units)
            let reply = try global.call(
                ReservationRow.self,
                "PATCH",
                "/v1/reservations/" + PercentEncoding.pathSegment(name),
                body: try .json(request)
            )
            global.show(reply) { reservation in
                let renamed = reservation.name == name ? "" : " (now '\(reservation.name)')"
                return "updated '\(name)'\(renamed): " + Reserve.summary(reservation)
            }
        }
    }
}
