import ArgumentParser
import BerthClient
import BerthWire
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

extension Berth {
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "logs",
            abstract: "Print a job's log (its runner's stderr).",
            discussion: """
                The log is written to stdout byte for byte; --json has no effect. With --follow, \
                new output is printed as it comes until the job has ended; Ctrl-C stops following \
                and leaves the job running.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The job whose log to print.")
        var id: String

        @Flag(name: .shortAndLong, help: "Keep printing new output until the job ends.")
        var follow = false

        /// How long to wait before asking again when there was nothing new.
        static let pollInterval: TimeInterval = 0.5

        func validate() throws {
            _ = try ArgumentCheck.jobID(id)
        }

        func run() throws {
            let path = try Jobs.path(id)
            var offset: Int64 = 0
            var jobEnded = false
            while true {
                let chunk = try fetch(path + "/log?offset=\(offset)")
                try Self.write(chunk.bytes)
                offset += Int64(chunk.bytes.count)
                // At most 1 MiB comes per answer: ask again at once while the file is longer.
                if !chunk.bytes.isEmpty, chunk.size.map({ offset < $0 }) ?? true { continue }
                guard follow, !jobEnded else { return }
                if chunk.bytes.isEmpty {
                    let job = try global.call(JobView.self, "GET", path).value
                    // One more fetch after the job has ended, for what it wrote before it ended.
                    if Jobs.terminalStatuses.contains(job.status) {
                        jobEnded = true
                        continue
                    }
                }
                usleep(useconds_t(Self.pollInterval * 1_000_000))
            }
        }

        /// Log bytes from the offset in the path, and the file's whole size (`Berth-Log-Size`).
        private func fetch(_ path: String) throws(CommandFailure) -> (bytes: Data, size: Int64?) {
            let client = try global.connection
            var attempt = 0
            while true {
                attempt += 1
                do throws(ClientError) {
                    let response = try client.send(method: "GET", path: path, headers: [("Accept", "text/plain")])
                    guard (200..<300).contains(response.status) else { throw response.apiError }
                    let size = response.header("Berth-Log-Size").flatMap {
                        Int64($0.trimmingBlanks())
                    }
                    return (response.body, size)
                } catch {
                    // A GET cannot act twice: retried once if the connection broke, as `call` does.
                    if case .transport = error, attempt < 2 { continue }
                    throw CommandFailure(error)
                }
            }
        }

        /// Writes the bytes as they are. When stdout is gone (`berth logs 7 | head`) there is
        /// no one to tell: end quietly with status 1.
        private static func write(_ bytes: Data) throws {
            guard !bytes.isEmpty else { return }
            guard StandardStream.write(bytes) else { throw ExitCode.failure }
        }
    }
}
