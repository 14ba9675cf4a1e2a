import ArgumentParser
import BerthClient
import BerthCore
import BerthWire
import FoundationEssentials

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
                func table(_ steps: [FreeStepView], total: Int) -> String {
                    var table = Table("start", "end", "free", "reserved")
                    for step in steps {
                        table.append(Format.time(step.start), Format.time(step.end), String(step.free), String(total - step.free))
                    }
                    return table.render()
                }
                let heading =
                    "\(Format.plural(capacity.total, "dedicated unit")), \(Format.time(capacity.from)) to \(Format.time(capacity.to))"
                guard let executors = capacity.executors else { return heading + ":\n\n" + table(capacity.steps, total: capacity.total) }
                // A reservation takes the units of one executor: each one's own calendar.
                return heading + "; a reservation takes the units of one executor.\n"
                    + executors.map { "\n\($0.executor): \(Format.plural($0.total, "unit"))\n\n" + table($0.steps, total: $0.total) }.joined()
            }
        }
    }
}
