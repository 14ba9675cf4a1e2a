import ArgumentParser
import BerthClient
import BerthWire
import FoundationEssentials

extension Berth {
    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "release",
            abstract: "Delete a reservation and free its units.",
            discussion: "A reservation inside its commitment term cannot be deleted (commitment-active)."
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The reservation to delete.")
        var name: String

        func validate() throws {
            try ArgumentCheck.reservationName(name, field: "name")
        }

        func run() throws {
            let reply = try global.call(
                Released.self,
                "DELETE",
                "/v1/reservations/" + PercentEncoding.pathSegment(name)
            )
            global.show(reply) { _ in "released '\(name)'" }
        }

        /// The daemon may answer a DELETE with the deleted reservation or with no body at all;
        /// either is success and nothing of it is needed for the message.
        struct Released: KeysAsSent {
            init(from decoder: any Decoder) throws {}
        }
    }
}
