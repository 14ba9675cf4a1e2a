import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// berthd with its ledger on a small tmpfs that fills up: every change is refused with 503
/// `ledger-full`, status and `/metrics` say so, the log says it once, and once there is room
/// again everything acknowledged is still there.
@Suite("A full ledger disk", .serialized)
struct LedgerFullTests {
    static let model = "amazon.nova-micro-v1:0"

    /// A tmpfs of its own, mounted for the test and unmounted by `unmount()`.
    struct SmallDisk {
        let folder: TemporaryDirectory
        var filler: String { folder.file("filler") }

        init(size: String) throws {
            folder = try TemporaryDirectory(prefix: "berth-small-disk")
            let mounted = try Products.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0755", "tmpfs", folder.path])
            guard mounted.status == 0 else { throw RawSocket.Failure(description: "cannot mount a tmpfs: \(mounted)") }
        }

        /// Writes a file until the file system refuses with ENOSPC; returns the bytes written.
        @discardableResult
        func fill() throws -> Int {
            let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            guard fd >= 0 else { throw POSIXError(.EIO) }
            defer { close(fd) }
            var written = 0
            for chunk in [65_536, 4_096, 1] {
                let bytes = [UInt8](repeating: 0x78, count: chunk)
                while true {
                    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, chunk) }
                    if n > 0 {
                        written += n
                        continue
                    }
                    guard n < 0, errno == ENOSPC else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                    break
                }
            }
            return written
        }

        func makeRoom() throws {
            try FileManager.default.removeItem(atPath: filler)
        }

        func unmount() {
            _ = try? Products.run("/usr/bin/umount", [folder.path])
            folder.remove()
        }
    }

    func reserve(_ daemon: TemporaryDaemon, _ name: String, startingIn hours: Int) throws -> CommandResult {
        try daemon.cli(["reserve", name, "--model", Self.model, "--units", "1", "--purpose", "training", "--start", "+\(hours)h", "--duration", "1h"])
    }

    /// Each reservation by name, with its status.
    func reservations(_ daemon: TemporaryDaemon) throws -> [String: String] {
        let list = try daemon.view(ReservationList.self, ["reservations"]).reservations
        return Dictionary(list.map { ($0.name, $0.status) }, uniquingKeysWith: { a, _ in a })
    }

    /// What `berth status` says after `ledger:`.
    func ledgerLine(_ status: CommandResult) -> String? {
        status.stdout.split(separator: "\n").first { $0.hasPrefix("ledger:") }.map { $0.dropFirst(7).trimmingCharacters(in: .whitespaces) }
    }

    func jobCount(_ daemon: TemporaryDaemon) throws -> Int {
        try daemon.view(JobList.self, ["jobs"]).jobs.count
    }

    func ledgerFullGauge(_ daemon: TemporaryDaemon) async throws -> Double? {
        let response = try await SocketClient(socketPath: daemon.socket).send(method: "GET", path: "/metrics")
        return try Exposition(parsing: String(decoding: response.body, as: UTF8.self)).value("berth_ledger_full")
    }

    /// Tries `attempt(0)`, `attempt(1)`, … until one is refused, and returns that refusal. On a
    /// full disk a change can still go through: it fits in write-ahead-log space that a
    /// checkpoint freed, or that a refused commit left allocated. Each one that does is passed
    /// to `acknowledged`, and must survive like any other.
    func firstRefusal(
        _ attempt: (Int) async throws -> (refused: Bool, answer: String),
        acknowledged: (Int) -> Void
    ) async throws -> String? {
        for n in 0..<100 {
            let (refused, answer) = try await attempt(n)
            if refused { return answer }
            acknowledged(n)
        }
        return nil
    }

    @Test(
        "changes are refused with 503 ledger-full, status and /metrics say so, the log says it once; with room again they go through and nothing acknowledged is lost"
    )
    func fullDisk() async throws {
        let disk = try SmallDisk(size: "4m")
        let daemon = try TemporaryDaemon(database: disk.folder.file("berth.db"))
        defer {
            daemon.stop()
            disk.unmount()
        }
        try daemon.start()
        // Every acknowledged reservation and its status, and how many jobs were acknowledged.
        var expected: [String: String] = [:]
        var jobs = 0
        for hour in 1...4 {
            #expect(try reserve(daemon, "before-\(hour)", startingIn: hour).status == 0)
            expected["before-\(hour)"] = "pending"
        }
        #expect(try await ledgerFullGauge(daemon) == 0)

        try disk.fill()
        let folder = (disk.folder.path as NSString).standardizingPath
        let message = "berth: ledger-full: the ledger's disk is full: free space on \(folder); nothing was recorded"
        func cli(_ result: CommandResult) -> (refused: Bool, answer: String) { (result.status != 0, "\(result)") }

        // Through the CLI: the message, exit 1.
        let reserved = try await firstRefusal({ n in cli(try reserve(daemon, "during-\(n)", startingIn: n + 10)) }) {
            expected["during-\($0)"] = "pending"
        }
        let refusal = try #require(reserved, "every reservation went through on a full disk")
        #expect(refusal.hasPrefix("exit 1\n") && refusal.contains(message), "\(refusal)")

        // The answer itself: 503 in the error shape.
        let raw = try await firstRefusal({ n in
            let answer = try await SocketClient(socketPath: daemon.socket).send(
                method: "POST",
                path: "/v1/reservations",
                body: Data(#"{"name":"raw-\#(n)","model":"\#(Self.model)","model_units":1,"start":"+\#(n + 200)h","duration":"1h"}"#.utf8)
            )
            return (answer.status != 201, "\(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }) { expected["raw-\($0)"] = "pending" }
        #expect(
            raw?.hasPrefix(
                #"503 {"error":{"code":"ledger-full","message":"the ledger's disk is full: free space on \#(folder); nothing was recorded"}}"#
            ) == true,
            "\(raw ?? "")"
        )

        // A job submission and a release are refused the same way.
        let submitted = try await firstRefusal({ n in
            cli(
                try daemon.cli([
                    "submit", "ft-\(n)", "--reservation", "before-1", "--kind", "fine-tuning", "--data",
                    "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
                    "--output", daemon.directory.file("out-\(n)"), "--model-name", "nova-full-\(n)", "--epochs", "1",
                ])
            )
        }) { _ in jobs += 1 }
        #expect(submitted?.hasPrefix("exit 1\n") == true && submitted?.contains(message) == true, "\(submitted ?? "")")
        let released = try await firstRefusal({ n in cli(try daemon.cli(["release", "before-\(min(n, 2) + 2)"])) }) {
            expected["before-\($0 + 2)"] = "deleted"
        }
        #expect(released?.contains(message) == true, "\(released ?? "")")

        let status = try daemon.cli(["status"])
        #expect(status.status == 0, "\(status)")
        #expect(ledgerLine(status) == "full — free space on \(folder); changes are refused until then", "\(status)")
        let health = try #require(try daemon.view(HealthView.self, ["status"]).ledger)
        #expect(health.full == true)
        #expect(health.folder == folder)
        #expect(try await ledgerFullGauge(daemon) == 1)
        #expect(daemon.isRunning)
        // Reads still work, and show nothing of what was refused.
        #expect(try reservations(daemon) == expected)
        let episode = "the ledger's disk is full: every change is refused"
        #expect(daemon.log.components(separatedBy: episode).count - 1 == 1, "\(daemon.log)")

        try disk.makeRoom()
        #expect(try reserve(daemon, "after", startingIn: 500).status == 0)
        expected["after"] = "pending"
        #expect(daemon.log.components(separatedBy: "the ledger's disk has room again").count - 1 == 1, "\(daemon.log)")
        let recovered = try daemon.cli(["status"])
        #expect(ledgerLine(recovered) == "ok", "\(recovered)")
        #expect(try await ledgerFullGauge(daemon) == 0)
        #expect(daemon.log.components(separatedBy: episode).count - 1 == 1, "\(daemon.log)")

        // Nothing acknowledged is lost, nothing refused was recorded, also after a restart.
        #expect(try reservations(daemon) == expected)
        #expect(try jobCount(daemon) == jobs)
        #expect(daemon.stop() == 0)
        try daemon.start()
        #expect(try reservations(daemon) == expected)
        #expect(try jobCount(daemon) == jobs)
    }
}
