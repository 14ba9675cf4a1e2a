import BerthServer
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Under systemd, stderr is a journal stream (`JOURNAL_STREAM`): no timestamps, journald adds
/// them, and a syslog priority prefix instead.
@Suite(.serialized) struct JournalLoggingTests {
    /// `DEVICE:INODE` of a file, as systemd sets `JOURNAL_STREAM` for the stream it hands over.
    static func journalStream(of path: String) throws -> String {
        var status = stat()
        try #require(stat(path, &status) == 0)
        return "\(status.st_dev):\(status.st_ino)"
    }

    /// swift-log's `StreamLogHandler` starts each line with `%Y-%m-%dT%H:%M:%S%z`.
    static func timestamped(_ line: String) -> Bool {
        line.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"#, options: .regularExpression) != nil
    }

    @Test func logLinesHaveNoTimestampWhenStderrIsTheJournal() throws {
        let daemon = try LaunchedDaemon()
        _ = FileManager.default.createFile(atPath: daemon.files.logPath, contents: nil)
        try daemon.start(environment: ["JOURNAL_STREAM": Self.journalStream(of: daemon.files.logPath)])
        try daemon.waitUntilAnswering()
        #expect(daemon.stop() == 0)
        let lines = daemon.log.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("<6>info berthd:") && $0.contains("ledger open") }, "log:\n\(daemon.log)")
        #expect(lines.allSatisfy { $0.hasPrefix("<") && !Self.timestamped($0) }, "log:\n\(daemon.log)")
    }

    @Test func aJournalStreamThatIsNotStderrKeepsTimestamps() throws {
        let daemon = try LaunchedDaemon()
        // Inherited from a parent whose stderr went to the journal: not ours.
        try daemon.start(environment: ["JOURNAL_STREAM": "1:1"])
        try daemon.waitUntilAnswering()
        #expect(daemon.stop() == 0)
        let first = try #require(daemon.log.split(separator: "\n").first.map(String.init))
        #expect(Self.timestamped(first), "log:\n\(daemon.log)")
    }
}
