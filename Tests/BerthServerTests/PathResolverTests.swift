import BerthTestSupport
import Foundation
import Testing

@testable import BerthServer

/// A job's paths opened again at its start, as a berthd that is not root does: no link is
/// followed anywhere on the way, the caller's rights are checked on what was opened, and a
/// refused output path makes nothing.
@Suite("Paths opened again at a job's start")
struct PathResolverTests {
    /// A caller who is not root, so mode bits decide (the tests themselves run as root).
    static let caller = PathResolver(access: FileAccess(uid: 4242, groups: [4242]), user: "4242")

    func folder(_ path: String, owner: UInt32 = 4242, mode: mode_t = 0o755) {
        mkdir(path, mode)
        chown(path, owner, owner)
        chmod(path, mode)
    }

    func file(_ path: String, owner: UInt32 = 4242, mode: mode_t = 0o644, text: String = "{}\n") throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chown(path, owner, owner)
        chmod(path, mode)
    }

    /// What a descriptor the resolver returned refers to.
    func target(_ fd: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
    }

    @Test("a data file of the caller's opens, and the descriptor is that file")
    func opensData() throws {
        let dir = try TemporaryDirectory(prefix: "resolver")
        defer { dir.remove() }
        folder(dir.file("home"))
        try file(dir.file("home/data.jsonl"))
        let fd = try Self.caller.openFile(dir.file("home/data.jsonl"), field: "data")
        defer { close(fd) }
        #expect(target(fd) == (dir.file("home/data.jsonl") as NSString).standardizingPath)
    }

    @Test("a link in place of the file, or of a folder on the way, is refused naming the field, and its target is not opened")
    func linksRefused() throws {
        let dir = try TemporaryDirectory(prefix: "resolver")
        defer { dir.remove() }
        folder(dir.file("home"))
        folder(dir.file("theirs"), owner: 4242)
        try file(dir.file("theirs/data.jsonl"))
        symlink(dir.file("theirs/data.jsonl"), dir.file("home/data.jsonl"))
        symlink(dir.file("theirs"), dir.file("home/sub"))

        #expect(throws: PathResolver.Refusal.self) { try Self.caller.openFile(dir.file("home/data.jsonl"), field: "data") }
        do {
            _ = try Self.caller.openFile(dir.file("home/data.jsonl"), field: "data")
        } catch {
            #expect(error.description.hasPrefix("data: ") && error.description.contains("symbolic link"), "\(error)")
        }
        do {
            _ = try Self.caller.openFile(dir.file("home/sub/data.jsonl"), field: "validation_data")
            Issue.record("a link on the way was followed")
        } catch {
            #expect(error.description.hasPrefix("validation_data: ") && error.description.contains("symbolic link"), "\(error)")
        }
    }

    @Test("a file the caller cannot read (root's, 0600) is refused even though berthd could open it")
    func rightsChecked() throws {
        let dir = try TemporaryDirectory(prefix: "resolver")
        defer { dir.remove() }
        folder(dir.file("home"))
        try file(dir.file("home/secret.jsonl"), owner: 0, mode: 0o600)
        do {
            _ = try Self.caller.openFile(dir.file("home/secret.jsonl"), field: "data")
            Issue.record("opened a file the caller cannot read")
        } catch {
            #expect(error.description.contains("can no longer read"), "\(error)")
        }
    }

    @Test("missing output folders are made in a folder the caller may write; under a link, nothing is made")
    func outputFolders() throws {
        let dir = try TemporaryDirectory(prefix: "resolver")
        defer { dir.remove() }
        folder(dir.file("home"))
        let fd = try Self.caller.openFolder(dir.file("home/a/b"), field: "output", bits: 3, create: true)
        close(fd)
        var info = stat()
        #expect(stat(dir.file("home/a/b"), &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR && info.st_mode & 0o777 == 0o755)

        folder(dir.file("guarded"), owner: 0, mode: 0o755)
        symlink(dir.file("guarded"), dir.file("home/link"))
        #expect(throws: PathResolver.Refusal.self) {
            try Self.caller.openFolder(dir.file("home/link/pwn/deeper"), field: "output", bits: 3, create: true)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("guarded")).isEmpty)

        // A folder the caller may not write: refused, and nothing made in it.
        #expect(throws: PathResolver.Refusal.self) {
            try Self.caller.openFolder(dir.file("guarded/new"), field: "output", bits: 3, create: true)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("guarded")).isEmpty)
    }
}
