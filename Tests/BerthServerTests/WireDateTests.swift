import BerthCore
import BerthStore
import BerthWire
import Foundation
import Testing

/// Times are kept to the millisecond, rounded, never cut: on the wire and in the ledger.
@Suite("Times to the millisecond")
struct WireDateTests {
    @Test(
        "the wire writes a time to its nearest millisecond, and a whole second without a fraction",
        arguments: [
            (1_800_000_000.531, "2027-01-15T08:00:00.531Z"),
            (1_800_000_000.174, "2027-01-15T08:00:00.174Z"),
            // 0.9996 s is the next whole second to the millisecond: not 08:00:00, nor .1000.
            (1_800_000_000.9996, "2027-01-15T08:00:01Z"),
            (1_800_000_000.0004, "2027-01-15T08:00:00Z"),
            (1_800_000_000, "2027-01-15T08:00:00Z"),
        ]
    )
    func wire(seconds: Double, written: String) throws {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(Wire.formatDate(date) == written)
        let read = try #require(TimeExpression.parseRFC3339(written))
        #expect(abs(read.timeIntervalSince1970 - (seconds * 1000).rounded() / 1000) < 0.000_5)
    }

    @Test("the ledger's clock is the time as the ledger reads it back: the nearest millisecond")
    func ledger() {
        for seconds in [1_800_000_000.531, 1_800_000_000.174, 1_800_000_000.9996, 1_800_000_000.0004] {
            let stored = Ledger.asStored(Date(timeIntervalSince1970: seconds))
            #expect(abs(stored.timeIntervalSince1970 - (seconds * 1000).rounded() / 1000) < 0.000_5, "\(seconds) → \(stored.timeIntervalSince1970)")
        }
    }
}
