import Foundation
import GRDB
import Testing

@testable import BerthStore

/// `LedgerTime` must write what GRDB writes for a `Date`, byte for byte: the ledger's columns
/// hold one format whichever wrote them, and times are compared as text in SQL.
@Suite("Times as the ledger keeps them")
struct LedgerTimeTests {
    static func grdb(_ date: Date) -> String? {
        String.fromDatabaseValue(date.databaseValue)
    }

    @Test("the same text as GRDB's formatter: calendar edges, whole and half milliseconds and a hair either side, and random times")
    func sameAsGRDB() {
        var dates: [Date] = []
        // Calendar edges: the epoch, leap days, century rules, year ends, the last representable year.
        for text in [
            "1970-01-01 00:00:00.000", "1972-02-29 23:59:59.999", "1999-12-31 23:59:59.999", "2000-02-29 12:00:00.000",
            "2000-03-01 00:00:00.000", "2024-02-29 08:45:12.345", "2026-12-05 08:45:12.001", "2100-02-28 23:59:59.999",
            "2100-03-01 00:00:00.000", "2400-02-29 00:00:00.500", "9999-12-31 23:59:59.999",
        ] {
            dates.append(Date.fromDatabaseValue(text.databaseValue)!)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            // A time between 1970 and 2200 with any fraction, as the clock gives them.
            dates.append(Date(timeIntervalSince1970: Double.random(in: 0..<7_258_118_400, using: &generator)))
            // A whole millisecond as GRDB reads one back, and the neighbouring doubles: a
            // floor on the other side of the millisecond would write the one before.
            let milliseconds = Int64.random(in: 0..<7_258_118_400_000, using: &generator)
            let whole = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
            dates.append(whole)
            dates.append(Date(timeIntervalSinceReferenceDate: whole.timeIntervalSinceReferenceDate.nextDown))
            dates.append(Date(timeIntervalSinceReferenceDate: whole.timeIntervalSinceReferenceDate.nextUp))
            dates.append(Date.fromDatabaseValue(Self.grdb(whole)!.databaseValue)!)
            // Half a millisecond on, where the formatter rounds, and either side of it.
            let half = Date(timeIntervalSince1970: (Double(milliseconds) + 0.5) / 1000)
            dates.append(half)
            dates.append(Date(timeIntervalSinceReferenceDate: half.timeIntervalSinceReferenceDate.nextDown))
            dates.append(Date(timeIntervalSinceReferenceDate: half.timeIntervalSinceReferenceDate.nextUp))
        }
        var mismatches: [String] = []
        for date in dates where LedgerTime.text(date) != Self.grdb(date) {
            mismatches.append("\(date.timeIntervalSinceReferenceDate): \(LedgerTime.text(date) ?? "nil") vs \(Self.grdb(date) ?? "nil")")
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("before 1970 and from the year 10000 on, GRDB's own formatter writes the text")
    func outsideTheRange() {
        let outside = [
            Date(timeIntervalSince1970: -1), Date(timeIntervalSince1970: -86_400 * 365), Date(timeIntervalSince1970: 253_402_300_800),
            // Rounds up to the first millisecond of the year 10000.
            Date(timeIntervalSince1970: 253_402_300_799.9996),
        ]
        for date in outside {
            #expect(LedgerTime.text(date) == nil)
            #expect(String.fromDatabaseValue(LedgerTime(date).databaseValue) == Self.grdb(date))
        }
    }

    @Test("a time written as stored reads back as the same Date as one GRDB wrote")
    func readsBack() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME)")
            let now = Date()
            try db.execute(sql: "INSERT INTO t (id, at) VALUES (1, ?), (2, ?)", arguments: [now.stored, now])
            let read = try Date.fetchAll(db, sql: "SELECT at FROM t ORDER BY id")
            #expect(read.count == 2 && read[0] == read[1])
            #expect(try String.fetchAll(db, sql: "SELECT at FROM t ORDER BY id").count == 2)
            #expect(try Bool.fetchOne(db, sql: "SELECT (SELECT at FROM t WHERE id = 1) = (SELECT at FROM t WHERE id = 2)") == true)
        }
    }
}
