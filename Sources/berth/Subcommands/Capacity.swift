import ArgumentParser
import BerthClient
import BerthCore
import BerthWire
import Foundation

extension Berth {
    struct Capacity: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "capacity",
            abstract: "Show how many dedicated units are free over time."
        )

        @OptionGroup var global: GlobalOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Start of the window (default: now).", valueName: "time"))
        var from: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("End of the window (default: chosen by berthd).", valueName: "time"))
        var to: String?

        func validate() throws {
            try ArgumentCheck.window(from: from, to: to)
        }

        func run() throws {
            let path = "/v1/capacity" + PercentEncoding.query([("from", from), ("to", to)])
            let reply = try global.call(CapacityView.self, "GET", path)
            global.show(reply) { capacity in
                var table = Table("start", "end", "free", "reserved")
                for step in capacity.steps {
                    table.append(
                        Format.time(step.start),
                        Format.time(step.end),
                        String(step.free),
                        String(capacity.total - step.free)
                    )
                }
                return "\(Format.plural(capacity.total, "dedicated unit")), "
                    + "\(Format.time(capacity.from)) to \(Format.time(capacity.to)):\n\n" + table.render()
            }
        }
    }
}
