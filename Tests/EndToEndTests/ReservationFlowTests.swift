import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// The real `berthd` on a temporary socket and database, driven by the real `berth` CLI.
@Suite("Reservations end to end", .serialized)
struct ReservationFlowTests {
    static let model = "amazon.nova-micro-v1:0"

    func reservation(_ daemon: TemporaryDaemon, _ name: String, as user: TestUser? = nil) throws -> ReservationView {
        try daemon.reservation(name, as: user)
    }

    @Test("reserve now: the reservation is active with one lease per unit")
    func reserveActivates() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let result = try daemon.cli(["reserve", "alpha", "--model", Self.model, "--units", "3"])
        #expect(result.status == 0, "\(result)")
        let shown = try reservation(daemon, "alpha")
        #expect(shown.status == "active")
        #expect(shown.leases.count == 3)
        #expect(Set(shown.leases.map(\.unit)).count == 3)
        // The units table shows who holds what.
        #expect(try daemon.units().filter { $0.holder == "alpha" }.count == 3)
        #expect(daemon.stop() == 0)
    }

    @Test("the socket is mode 0660 and other users outside its group cannot connect")
    func socketMode() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)
        #expect((attributes[.groupOwnerAccountID] as? Int) == 65534)
        let outsider = try Products.run(
            "/usr/bin/setpriv",
            ["--reuid=4242", "--regid=4242", "--clear-groups", Products.path("berth"), "status"],
            environment: ["BERTH_SOCKET": daemon.socket]
        )
        #expect(outsider.status == 6, "\(outsider)")
    }

    @Test("restart the daemon and everything is still there")
    func survivesRestart() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        // Training reservations: what is compared is the ledger, not serve processes' ports.
        #expect(try daemon.cli(["reserve", "keep", "--model", Self.model, "--units", "2", "--purpose", "training"]).status == 0)
        #expect(
            try daemon.cli(["reserve", "later", "--model", Self.model, "--units", "2", "--start", "+2h", "--duration", "1h", "--purpose", "training"])
                .status == 0
        )
        let before = try daemon.view(ReservationList.self, ["reservations"])
        #expect(daemon.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socket), "a clean stop removes the socket")
        try daemon.start()
        let after = try daemon.view(ReservationList.self, ["reservations"])
        #expect(before == after)
    }

    @Test("kill -9 right after an acknowledged reserve: the reservation and its leases are there after a restart")
    func survivesKill9() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let result = try daemon.cli(["reserve", "durable", "--model", Self.model, "--units", "4"])
        #expect(result.status == 0)
        daemon.kill9()
        try daemon.start()
        // Active again once the restarted daemon's serve process for it answers.
        var shown = try reservation(daemon, "durable")
        _ = try eventually(timeout: 30) {
            shown = try reservation(daemon, "durable")
            return shown.status != "pending"
        }
        #expect(shown.status == "active")
        #expect(shown.leases.count == 4)
    }

    @Test("a second berthd on the same socket or database refuses to start")
    func singleInstance() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let second = try Products.run(
            Products.path("berthd"),
            ["--config", daemon.configPath, "--socket", daemon.socket, "--database", daemon.directory.file("other.db")],
            timeout: 20
        )
        #expect(second.status == 1)
        #expect(second.stderr.contains("another berthd is running"))
        let third = try Products.run(
            Products.path("berthd"),
            ["--config", daemon.configPath, "--socket", daemon.directory.file("other.sock"), "--database", daemon.database],
            timeout: 20
        )
        #expect(third.status == 1)
        // The first one still answers.
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("an advance reservation becomes active at its start without any request")
    func advanceReservationStartsOnTime() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "soon", "--model", Self.model, "--units", "1", "--start", "+2s", "--duration", "1m"]).status == 0)
        #expect(try reservation(daemon, "soon").status == "pending")
        #expect(try eventually(timeout: 15) { try reservation(daemon, "soon").status == "active" })
    }

    @Test("a reservation expires at its end by itself, and its leases end exactly there")
    func expiresAtEnd() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "brief", "--model", Self.model, "--units", "2", "--duration", "2s"]).status == 0)
        let end = try #require(try reservation(daemon, "brief").end)
        var shown = try reservation(daemon, "brief")
        _ = try eventually(timeout: 15) {
            shown = try reservation(daemon, "brief")
            return shown.status == "expired"
        }
        #expect(shown.status == "expired")
        #expect(shown.leases.count == 2 && shown.leases.allSatisfy { $0.end == end })
        #expect(try daemon.view(HealthView.self, ["status"]).units.leased == 0)
    }

    @Test("a reservation that ended while the daemon was down is expired at its own end time on restart")
    func expiresWhileDown() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "gone", "--model", Self.model, "--units", "1", "--duration", "1s"]).status == 0)
        // Training: an inference reservation would read pending until its serve process answers.
        #expect(
            try daemon.cli(["reserve", "next", "--model", Self.model, "--units", "1", "--start", "+2s", "--duration", "1h", "--purpose", "training"])
                .status == 0
        )
        let end = try #require(try reservation(daemon, "gone").end)
        let nextStart = try reservation(daemon, "next").start
        daemon.kill9()
        sleep(3)
        try daemon.start()
        let gone = try reservation(daemon, "gone")
        #expect(gone.status == "expired")
        #expect(gone.leases.first?.end == end)
        // The advance reservation that fell due while down is active from its own start.
        let next = try reservation(daemon, "next")
        #expect(next.status == "active")
        #expect(next.leases.first?.start == nextStart)
    }

    @Test("--wait queues a reservation as pending until capacity frees, then it starts")
    func waitQueues() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "all", "--model", Self.model, "--units", "8"]).status == 0)
        let queued = try daemon.cli(["reserve", "patient", "--model", Self.model, "--units", "2", "--wait"])
        #expect(queued.status == 0, "\(queued)")
        var shown = try reservation(daemon, "patient")
        #expect(shown.status == "pending")
        #expect(shown.waiting == true)
        #expect(try daemon.cli(["release", "all"]).status == 0)
        // Its units are leased at once; it reads `active` once its serve process answers.
        shown = try reservation(daemon, "patient")
        #expect(shown.leases.count == 2)
        #expect(shown.waiting == false)
        _ = try eventually(timeout: 15) {
            shown = try reservation(daemon, "patient")
            return shown.status == "active"
        }
        #expect(shown.status == "active")
    }

    @Test("a name the CLI refuses itself is exit 2, and changes nothing")
    func badInput() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let badName = try daemon.cli(["reserve", "Bad_Name", "--model", Self.model, "--units", "1"])
        #expect(badName.status == 2)
        #expect(try daemon.view(ReservationList.self, ["reservations"]).reservations.isEmpty)
    }

    @Test("the daemon is unreachable: exit 6")
    func unreachable() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let result = try Products.run(Products.path("berth"), ["status", "--socket", dir.file("none.sock")])
        #expect(result.status == 6)
        #expect(result.stderr.hasPrefix("berth: unreachable: "))
    }
}
