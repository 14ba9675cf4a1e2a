import ArgumentParser
import BerthCore
import BerthWire
import FoundationEssentials

extension Berth {
    struct Reserve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reserve",
            abstract: "Reserve dedicated model units for a model (provisioned throughput).",
            discussion: """
                The reservation is admitted only if enough dedicated units are free for its whole \
                window; otherwise berthd says how many are free and the earliest start that fits. \
                With --wait it is queued until capacity frees up instead.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The reservation's name: 1 to 63 of a-z, 0-9 and '-'.")
        var name: String

        @Option(help: "The model to reserve for: a base model id or a custom model name.")
        var model: String

        @Option(help: "How many model units to reserve (each takes the model's units per model unit).")
        var units: Int

        @Option(help: "What the units run: training jobs or inference calls.")
        var purpose: Purpose?

        @Option(help: "The commitment term, in calendar months; with 'none' the reservation is open-ended unless --duration is given.")
        var commitment: Commitment?

        @Option(parsing: .unconditional, help: ArgumentHelp("When it starts (default: now).", valueName: "time"))
        var start: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("How long it lasts.", valueName: "dur"))
        var duration: String?

        @Flag(help: "Queue for capacity if it does not fit now, instead of being refused.")
        var wait = false

        @Flag(help: "Send inference calls over budget to the on-demand pool (base models only).")
        var spillover = false

        func validate() throws {
            try ArgumentCheck.reservationName(name, field: "name")
            try ArgumentCheck.modelUnits(units)
            try ArgumentCheck.time(start, option: "--start")
            try ArgumentCheck.duration(duration, option: "--duration")
        }

        func run() throws {
            let request = CreateReservationRequest(
                name: name,
                model: model,
                modelUnits: units,
                purpose: purpose?.rawValue,
                commitment: commitment?.rawValue,
                start: start,
                duration: duration,
                wait: wait ? true : nil,
                spillover: spillover ? true : nil
            )
            let reply = try global.call(
                ReservationRow.self,
                "POST",
                "/v1/reservations",
                body: try .json(request),
                idempotencyKey: UUID().uuidString.lowercased()
            )
            global.show(reply) { "reserved '\($0.name)': " + Self.summary($0) }
        }

        /// `active, 2 model units (4 compute units) until 2026-12-25T10:00:00Z`
        static func summary(_ reservation: ReservationRow) -> String {
            let size = "\(Format.plural(reservation.modelUnits, "model unit")) (\(Format.plural(reservation.units, "compute unit")))"
            let until = reservation.end.map { "until \(Format.time($0))" } ?? "until released"
            switch reservation.status {
            case "pending" where reservation.waiting:
                return "pending, waiting for capacity: \(size) of \(reservation.model); it starts when enough units are free"
            case "pending":
                return "pending, \(size) of \(reservation.model) from \(Format.time(reservation.start)) \(until)"
            default:
                return "\(reservation.status), \(size) of \(reservation.model) \(until)"
            }
        }
    }
}
