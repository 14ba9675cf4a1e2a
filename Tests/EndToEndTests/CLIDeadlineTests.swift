import BerthTestSupport
import Foundation
import Testing

/// A daemon that takes the connection but never answers (stopped with SIGSTOP, or wedged)
/// must not hold the CLI for ever.
@Suite("The CLI's deadline", .serialized)
struct CLIDeadlineTests {
    @Test("against a SIGSTOPped berthd, berth status gives up after --timeout (or BERTH_TIMEOUT) with exit 6 and says where to look")
    func stoppedDaemon() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let pid = try #require(daemon.pid)
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }

        let started = Date()
        let result = try daemon.cli(["status", "--timeout", "1"])
        let took = Date().timeIntervalSince(started)
        #expect(result.status == 6, "\(result)")
        #expect(result.stderr.hasPrefix("berth: timeout: "), "\(result)")
        #expect(result.stderr.contains("did not answer GET /v1/health within 1 s"), "\(result)")
        #expect(result.stderr.contains("systemctl status berthd"), "\(result)")
        // It gave up: well before the 60 s the test harness would wait.
        #expect(took < 30, "took \(took) s")

        let fromEnvironment = try Products.run(
            Products.path("berth"),
            ["status"],
            environment: ["BERTH_SOCKET": daemon.socket, "BERTH_TIMEOUT": "0.5"]
        )
        #expect(fromEnvironment.status == 6, "\(fromEnvironment)")

        let bad = try Products.run(Products.path("berth"), ["status"], environment: ["BERTH_SOCKET": daemon.socket, "BERTH_TIMEOUT": "soon"])
        #expect(bad.status == 2, "\(bad)")
        #expect(bad.stderr.contains("BERTH_TIMEOUT"), "\(bad)")

        // Once it runs again, it answers.
        kill(pid, SIGCONT)
        #expect(try daemon.cli(["status"]).status == 0)
    }
}
