import BerthTestSupport
import Foundation
import Testing

/// A row berthd cannot read (a status it does not know, written by a newer berthd or by hand)
/// fails the request that reads it, with the row's problem in berthd's log; berthd keeps
/// serving everything else.
@Suite("Unknown stored values end to end", .serialized)
struct StoredValueEndToEndTests {
    @Test("an unknown reservation status: the listing fails with 500, the log names the value, berthd lives on")
    func unknownStatus() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let reserved = try daemon.cli(["reserve", "alpha", "--model", "amazon.nova-micro-v1:0", "--units", "1"])
        #expect(reserved.status == 0, "\(reserved)")
        #expect(daemon.stop() == 0)
        try LedgerFill.execute("UPDATE reservations SET status = 'exploded' WHERE name = 'alpha'", database: daemon.database)
        try daemon.start()

        let listed = try daemon.cli(["reservations"])
        #expect(listed.status == 1, "\(listed)")
        #expect(listed.stderr.contains("internal error"), "\(listed)")
        #expect(daemon.log.contains("exploded"))
        #expect(daemon.isRunning)
        let status = try daemon.cli(["status"])
        #expect(status.status == 0, "\(status)")
        #expect(daemon.stop() == 0)
    }
}
