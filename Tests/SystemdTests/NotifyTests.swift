import BerthServer
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// berthd's sd_notify messages, received on a datagram socket standing in for systemd's.
@Suite(.serialized) struct NotifyTests {
    /// Starts berthd with `NOTIFY_SOCKET` pointing at a fresh listener; at READY=1 the listener
    /// asks `berth status` on the control socket, and keeps whether it answered.
    static func launch(environment: [String: String] = [:]) throws -> (LaunchedDaemon, NotifyListener) {
        let daemon = try LaunchedDaemon()
        let socket = daemon.socket
        let listener = try NotifyListener(path: daemon.files.directory.file("notify.sock")) { text in
            guard text.split(separator: "\n").contains("READY=1") else { return nil }
            let status = try? Products.run(Products.path("berth"), ["status"], environment: ["BERTH_SOCKET": socket], timeout: 10)
            return status?.status == 0
        }
        try daemon.start(environment: environment.merging(["NOTIFY_SOCKET": listener.address]) { a, _ in a })
        return (daemon, listener)
    }

    @Test func readyArrivesOnlyOnceTheControlSocketAnswers() throws {
        let (daemon, listener) = try Self.launch()
        defer { listener.stop() }
        let ready = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        #expect(ready.note == true, "berth status failed at the moment READY=1 arrived")
        #expect(listener.messages(with: "READY").count == 1)
        // READY=1 carries the first status line.
        #expect(ready.fields["STATUS"] == "serving: 0/8 dedicated units leased, 0 active and 0 pending reservations")
        #expect(daemon.stop() == 0)
    }

    @Test func statusLinesFollowThePool() throws {
        let (daemon, listener) = try Self.launch(environment: ["WATCHDOG_USEC": "400000"])
        defer { listener.stop() }
        _ = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        let reserved = try daemon.files.cli(["reserve", "one", "--model", "amazon.nova-micro-v1:0", "--units", "2"])
        #expect(reserved.status == 0, "\(reserved)")
        // The status is refreshed with each watchdog period (200 ms here).
        let status = listener.wait(for: "STATUS", value: "serving: 2/8 dedicated units leased, 1 active and 0 pending reservations", timeout: 10)
        #expect(status != nil, "status lines: \(listener.messages(with: "STATUS").map(\.text))")
        #expect(daemon.stop() == 0)
    }

    @Test func watchdogPingsComeAtHalfTheTimeout() throws {
        let (daemon, listener) = try Self.launch(environment: ["WATCHDOG_USEC": "400000"])
        defer { listener.stop() }
        let ready = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        let from = Date()
        Thread.sleep(forTimeInterval: 2)
        let pings = listener.messages(with: "WATCHDOG").filter { $0.at >= from && $0.at < from.addingTimeInterval(2) }
        // Every 200 ms: about 10 in 2 s. A protocol rate, not a performance bound.
        #expect((5...15).contains(pings.count), "\(pings.count) pings in 2 s")
        #expect(pings.allSatisfy { $0.fields["WATCHDOG"] == "1" })
        #expect(ready.at <= from)
        #expect(daemon.stop() == 0)
    }

    @Test func aWatchdogMeantForAnotherProcessIsLeftAlone() throws {
        let (daemon, listener) = try Self.launch(environment: ["WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"])
        defer { listener.stop() }
        _ = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        Thread.sleep(forTimeInterval: 1)
        #expect(listener.messages(with: "WATCHDOG").isEmpty)
        #expect(daemon.stop() == 0)
    }

    @Test func sigtermSendsStoppingAndExitsCleanly() throws {
        let (daemon, listener) = try Self.launch(environment: ["WATCHDOG_USEC": "400000"])
        defer { listener.stop() }
        let ready = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        #expect(listener.messages(with: "STOPPING").isEmpty)
        let status = daemon.stop()
        #expect(status == 0, "log:\n\(daemon.log)")
        let stopping = try #require(listener.wait(for: "STOPPING", value: "1", timeout: 5))
        #expect(stopping.at > ready.at)
        // Pings stop with the daemon.
        let lastPing = listener.messages(with: "WATCHDOG").last?.at ?? .distantPast
        #expect(lastPing < Date())
    }

    @Test func aReloadIsBracketedByReloadingAndReady() throws {
        let (daemon, listener) = try Self.launch()
        defer { listener.stop() }
        let ready = try #require(listener.wait(for: "READY"), "no READY=1; log:\n\(daemon.log)")
        try TemporaryDaemon.config(dedicated: 9).write(toFile: daemon.files.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        let reloading = try #require(listener.wait(for: "RELOADING", value: "1", timeout: 10), "log:\n\(daemon.log)")
        let monotonic = try #require(reloading.fields["MONOTONIC_USEC"].flatMap(UInt64.init))
        #expect(monotonic > 0)
        let readyAgain = try #require(listener.wait(for: "READY", after: reloading.at, timeout: 10))
        #expect(readyAgain.at >= reloading.at && reloading.at > ready.at)
        #expect(readyAgain.fields["STATUS"] == "serving: 0/9 dedicated units leased, 0 active and 0 pending reservations")
        #expect(daemon.stop() == 0)
    }

    @Test func theNotifierReachesAnAbstractSocket() throws {
        let name = "@berth-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listener = try NotifyListener(path: name)
        defer { listener.stop() }
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": name]))
        #expect(notifier.send("STATUS=hello\nX_BERTH=1"))
        let message = try #require(listener.wait(for: "X_BERTH", timeout: 5))
        #expect(message.fields["STATUS"] == "hello")
    }

    @Test func withoutNotifySocketNothingIsSent() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        #expect(SystemdWatchdog.pingInterval(environment: ["WATCHDOG_USEC": "30000000"], pid: 42) == .seconds(15))
        #expect(SystemdWatchdog.pingInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"], pid: 42) == nil)
        #expect(SystemdWatchdog.pingInterval(environment: ["WATCHDOG_USEC": "0"], pid: 42) == nil)
    }
}
