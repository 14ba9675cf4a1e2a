import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// berthd serving a socket that systemd opened (here `systemd-socket-activate`, which does
/// what a socket unit does: listen, and start the service at the first connection).
@Suite(.serialized) struct SocketActivationTests {
    @Test func berthdStartedBySocketActivationAnswersOnThePassedSocket() throws {
        let daemon = try LaunchedDaemon()
        try daemon.startSocketActivated()
        // The activator listens before berthd runs; the first connection starts it.
        _ = eventually(timeout: 10, every: 0.02) { FileManager.default.fileExists(atPath: daemon.socket) }
        // What SocketMode=0660 with SocketGroup= does for a socket unit (here: let nobody in).
        chmod(daemon.socket, 0o666)
        try daemon.waitUntilAnswering()

        let status = try daemon.files.cli(["status"])
        #expect(status.status == 0, "\(status)")
        let health = try Products.run("/usr/bin/curl", ["-sS", "--unix-socket", daemon.socket, "http://localhost/v1/health"])
        #expect(health.status == 0 && health.stdout.contains("\"status\":\"ok\""), "\(health)")
        let units = try daemon.files.cli(["units"])
        #expect(units.status == 0 && units.stdout.contains("cpu-7"), "\(units)")
        #expect(daemon.log.contains("listening on the socket systemd passed"), "log:\n\(daemon.log)")
        // Requests that need the caller's identity work too (SO_PEERCRED on the passed socket).
        let reserved = try daemon.files.cli(["reserve", "mine", "--model", "amazon.nova-micro-v1:0", "--units", "1"], as: .nobody)
        #expect(reserved.status == 0, "\(reserved)")
        let listed = try daemon.files.json(["reservations"], as: .nobody)
        let owners = (listed["reservations"] as? [[String: Any]] ?? []).compactMap { $0["owner"] as? String }
        #expect(owners == ["nobody"])

        // berthd does not touch the socket file systemd owns: no lock beside it, and it stays
        // after a clean stop.
        #expect(!FileManager.default.fileExists(atPath: daemon.socket + ".lock"))
        #expect(daemon.stop() == 0, "log:\n\(daemon.log)")
        #expect(FileManager.default.fileExists(atPath: daemon.socket))
    }

    /// The connection cap and the request timeout guard the passed socket as they guard one
    /// berthd binds itself.
    @Test func aSocketActivatedBerthdCapsConnectionsAndTimesOutStalledRequests() throws {
        let daemon = try LaunchedDaemon(config: TemporaryDaemon.config(extra: "\n[limits]\nmax_connections = 1\nrequest_timeout_seconds = 1\n"))
        try daemon.startSocketActivated()
        _ = eventually(timeout: 10, every: 0.02) { FileManager.default.fileExists(atPath: daemon.socket) }
        try daemon.waitUntilAnswering()

        // One connection, kept alive after an answer, takes the only place (once the CLI's
        // connection above has given it back).
        var held = try RawSocket(path: daemon.socket)
        _ = try eventually(timeout: 15) {
            held = try RawSocket(path: daemon.socket)
            #expect(held.send("GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            return try held.readResponse()?.status == 200
        }
        let refused = try RawSocket(path: daemon.socket)
        #expect(refused.send("GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        let answer = try #require(try refused.readResponse())
        #expect(answer.status == 503 && answer.error?.code == "too-many-connections", "\(answer)")

        // The held connection stalls halfway through its next request: 408, and closed.
        #expect(held.send("GET /v1/units HTTP/1.1\r\nHo"))
        let timedOut = try #require(try held.readResponse())
        #expect(timedOut.status == 408 && timedOut.error?.code == "request-timeout", "\(timedOut)")
        #expect(try held.readToEnd().isEmpty && held.sawEOF)
        #expect(daemon.stop() == 0, "log:\n\(daemon.log)")
    }

    @Test func aSocketActivatedBerthdTellsSystemdItIsReady() throws {
        let daemon = try LaunchedDaemon()
        let listener = try NotifyListener(path: daemon.files.directory.file("notify.sock"))
        defer { listener.stop() }
        try daemon.startSocketActivated(environment: ["NOTIFY_SOCKET": listener.address])
        _ = eventually(timeout: 10, every: 0.02) { FileManager.default.fileExists(atPath: daemon.socket) }
        try daemon.waitUntilAnswering()
        let ready = try #require(listener.wait(for: "READY", timeout: 10), "log:\n\(daemon.log)")
        #expect(ready.fields["STATUS"]?.hasPrefix("serving:") == true)
        #expect(daemon.stop() == 0)
        #expect(listener.wait(for: "STOPPING", timeout: 5) != nil)
    }
}
