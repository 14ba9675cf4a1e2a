import BerthStore
import BerthTestSupport
import Foundation
import Testing

/// The ledger holds every user's reservations, data paths and calls: only berthd's user may
/// read its files.
@Suite("Ledger file permissions")
struct LedgerFileModeTests {
    func mode(_ path: String) -> UInt32? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt32(info.st_mode) & 0o777 : nil
    }

    @Test("a new ledger, its -wal and its -shm are created 0600 even under a permissive umask, and nothing is reported")
    func createdPrivate() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("berth.db")
        let previous = umask(0o022)
        defer { umask(previous) }
        let ledger = try Ledger(path: path)
        try ledger.writeNow {
            try $0.recordIdempotentAnswer(
                owner: "alice",
                key: "k",
                answer: IdempotentAnswer(route: "r", request: Data(), status: 201, response: Data()),
                now: Date()
            )
        }
        #expect(ledger.looseFiles.isEmpty)
        #expect(mode(path) == 0o600)
        #expect(mode(path + "-wal") == 0o600)
        #expect(mode(path + "-shm") == 0o600)
        var info = stat()
        stat(path, &info)
        #expect(info.st_uid == geteuid())
        try ledger.close()
    }

    @Test("an existing ledger readable by others is made 0600 on open, and reported with its former mode")
    func tightensLooseFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("berth.db")
        try Ledger(path: path).close()
        chmod(path, 0o644)
        let ledger = try Ledger(path: path)
        #expect(ledger.looseFiles == [LooseLedgerFile(path: path, formerMode: 0o644)])
        #expect(mode(path) == 0o600)
        // What it held is still there: tightening touches the mode, not the data.
        #expect(try ledger.readNow { try $0.integrityCheck() } == "ok")
        try ledger.close()
        // Opened again, there is nothing left to report.
        let again = try Ledger(path: path)
        #expect(again.looseFiles.isEmpty)
        try again.close()
    }

    @Test("loose -wal and -shm files of an open ledger are tightened too")
    func tightensWalAndShm() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("berth.db")
        let first = try Ledger(path: path)
        try first.writeNow {
            try $0.recordIdempotentAnswer(
                owner: "alice",
                key: "k",
                answer: IdempotentAnswer(route: "r", request: Data(), status: 201, response: Data()),
                now: Date()
            )
        }
        chmod(path + "-wal", 0o664)
        chmod(path + "-shm", 0o640)
        let second = try Ledger(path: path)
        #expect(Set(second.looseFiles.map(\.path)) == [path + "-wal", path + "-shm"])
        #expect(second.looseFiles.first { $0.path.hasSuffix("-wal") }?.formerMode == 0o664)
        #expect(mode(path + "-wal") == 0o600)
        #expect(mode(path + "-shm") == 0o600)
        try second.close()
        try first.close()
    }

    @Test("a ledger in a folder berthd cannot write is refused with the path and what to check")
    func uncreatable() throws {
        let error = #expect(throws: LedgerFileError.self) { try Ledger(path: "/proc/berth-no-such-folder/berth.db") }
        #expect(error?.description.contains("/proc/berth-no-such-folder/berth.db") == true)
        #expect(error?.description.contains("check that berthd's user can write its folder") == true)
    }
}
