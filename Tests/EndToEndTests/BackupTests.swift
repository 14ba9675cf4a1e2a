import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Synchronization
import Testing

/// `berthd backup`: a copy of the live ledger taken while clients keep changing it, and a
/// restore from it (stop, replace, start).
@Suite("Ledger backup and restore", .serialized)
struct BackupTests {
    /// Reservation names the daemon acknowledged (201), in the order the answers came.
    final class Acknowledged: Sendable {
        private let names = Mutex<[String]>([])
        func add(_ name: String) { names.withLock { $0.append(name) } }
        var all: [String] { names.withLock { $0 } }
    }

    final class Flag: Sendable {
        private let raised = Atomic<Bool>(false)
        func raise() { raised.store(true, ordering: .relaxed) }
        var isRaised: Bool { raised.load(ordering: .relaxed) }
    }

    @Test("a backup taken under concurrent reservations opens, passes integrity_check, holds every change acknowledged before it began, and restores")
    func backupUnderLoad() async throws {
        // Two units, so most reservations queue (--wait) and the load never runs out of room.
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(dedicated: 2))
        try daemon.start()
        let backup = daemon.directory.file("copy.db")
        let acknowledged = Acknowledged()
        let stop = Flag()
        let client = SocketClient(socketPath: daemon.socket)

        var before: [String] = []
        var result: CommandResult?
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    var n = 0
                    while !stop.isRaised {
                        let name = "w\(writer)-\(n)"
                        n += 1
                        let body = Data(#"{"name":"\#(name)","model":"amazon.nova-micro-v1:0","model_units":1,"wait":true}"#.utf8)
                        let answer = try await client.send(method: "POST", path: "/v1/reservations", body: body)
                        if answer.status == 201 { acknowledged.add(name) }
                    }
                }
            }
            // Let the load build up, then back up while it goes on.
            while acknowledged.all.count < 40 { try await Task.sleep(for: .milliseconds(20)) }
            before = acknowledged.all
            result = try Products.run(Products.path("berthd"), ["backup", "--database", daemon.database, "--to", backup])
            let after = acknowledged.all.count
            // More answers after the backup, so it really ran under load.
            while acknowledged.all.count < after + 10 { try await Task.sleep(for: .milliseconds(20)) }
            stop.raise()
            try await group.waitForAll()
        }

        let backedUp = try #require(result)
        #expect(backedUp.status == 0, "berthd backup failed: \(backedUp)")
        #expect(backedUp.stdout.contains("integrity ok"), "\(backedUp)")
        var info = stat()
        #expect(
            stat(backup, &info) == 0 && info.st_mode & 0o777 == 0o600,
            "the copy must be mode 0600, not \(String(info.st_mode & 0o777, radix: 8))"
        )
        #expect(try LedgerIntegrity.check(databaseAt: backup) == ["ok"])
        let copied = Set(try LedgerContents.read(databaseAt: backup).reservations.map(\.name))
        let missing = before.filter { !copied.contains($0) }
        #expect(missing.isEmpty, "acknowledged before the backup began but not in it: \(missing)")

        // Restore: stop, replace the ledger (its -wal and -shm belong to the old file), start.
        let everything = Set(acknowledged.all)
        #expect(daemon.stop() == 0)
        for file in [daemon.database, daemon.database + "-wal", daemon.database + "-shm"] { unlink(file) }
        try FileManager.default.copyItem(atPath: backup, toPath: daemon.database)
        try daemon.start()
        let names = Set(try daemon.view(ReservationList.self, ["reservations", "--all"]).reservations.map(\.name))
        #expect(names == copied, "the restored daemon lists \(names.count) reservations, the copy holds \(copied.count)")
        #expect(names.isSubset(of: everything))
        #expect(daemon.stop() == 0)
    }

    @Test("a backup never replaces a file, nor writes through a symbolic link")
    func refusesExistingDestination() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        defer { daemon.stop() }
        let existing = daemon.directory.file("existing.db")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        let link = daemon.directory.file("link.db")
        let target = daemon.directory.file("target-of-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

        for destination in [existing, link] {
            let refused = try Products.run(Products.path("berthd"), ["backup", "--database", daemon.database, "--to", destination])
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderr.contains("already exists"), "\(refused)")
        }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me")
        #expect(!FileManager.default.fileExists(atPath: target))
        let missing = try Products.run(
            Products.path("berthd"),
            ["backup", "--database", daemon.directory.file("none.db"), "--to", daemon.directory.file("x.db")]
        )
        #expect(missing.status == 1 && missing.stderr.contains("no ledger at"), "\(missing)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: daemon.directory.path).filter { $0.hasPrefix(".berth-backup") }
        #expect(leftovers.isEmpty, "scratch folders left behind: \(leftovers)")
    }
}
