import BerthExecutors
import BerthTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Programs berthd waits for, started without Foundation's `Process`.
@Suite("Child processes")
struct ChildProcessTests {
    @Test("output, exit status and a timeout: what a command printed on each stream, and a hung one killed")
    func output() throws {
        let done = try ChildProcess.output("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], timeout: 30)
        #expect(done.status == 3)
        #expect(String(decoding: done.out, as: UTF8.self) == "out\n")
        #expect(String(decoding: done.err, as: UTF8.self) == "err\n")
        let hung = try ChildProcess.output("/bin/sh", ["-c", "sleep 60"], timeout: 0.5)
        #expect(hung.status == nil)
        #expect(throws: ChildProcess.Failure.self) { try ChildProcess("/nonexistent/program", []) }
    }

    @Test("a program still open for writing (text file busy) starts once the writer lets go")
    func textFileBusy() throws {
        let folder = try TemporaryDirectory(prefix: "berth-etxtbsy")
        defer { folder.remove() }
        let path = folder.file("program")
        let writer = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o755)
        try #require(writer >= 0)
        let script = "#!/bin/sh\nexit 7\n"
        #expect(write(writer, script, script.utf8.count) == script.utf8.count)
        // Open for writing: exec fails with ETXTBSY until it is closed, 100 ms from now, on a
        // thread of its own: a global dispatch queue busy with other tests' blocking waits
        // once ran the close only after the retries had given up.
        Thread.detachNewThread {
            usleep(100_000)
            close(writer)
        }
        let child = try ChildProcess(path, [])
        #expect(child.wait() == 7)
    }
}
