import ArgumentParser
import BerthWire
import FoundationEssentials

extension Berth {
    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stop",
            abstract: "Stop a job.",
            discussion: """
                A queued job is stopped at once. A running one is sent SIGTERM, then SIGKILL after \
                the grace period; it shows 'stopping' until its process has exited.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The job to stop.")
        var id: String

        func validate() throws {
            _ = try ArgumentCheck.jobID(id)
        }

        func run() throws {
            let reply = try global.call(
                JobRow.self,
                "POST",
                try Jobs.path(id) + "/stop",
                idempotencyKey: UUID().uuidString.lowercased()
            )
            global.show(reply) { job in
                switch job.status {
                case "stopping", "stopped": "\(job.status) job \(job.id)"
                default: "job \(job.id) is \(Jobs.status(job))"
                }
            }
        }
    }
}
