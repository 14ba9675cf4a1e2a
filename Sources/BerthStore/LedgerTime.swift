import Foundation
import GRDB

/// A time as the ledger keeps it: the text GRDB writes for a `Date`
/// (`yyyy-MM-dd HH:mm:ss.SSS`, UTC), made by arithmetic instead of GRDB's `DateFormatter`,
/// which formats through ICU at ten thousand instructions or more a date. berthd binds several
/// dates in every write (and reads the clock through `Ledger.asStored`), so that formatter was
/// a fifteenth of what making and releasing a reservation cost.
///
/// The text is GRDB's byte for byte (a test compares the two), so a column keeps one format
/// whichever wrote it, and a date read back is the same `Date` either way.
struct LedgerTime: DatabaseValueConvertible {
    var date: Date

    init(_ date: Date) {
        self.date = date
    }

    var databaseValue: DatabaseValue {
        Self.text(date)?.databaseValue ?? date.databaseValue
    }

    static func fromDatabaseValue(_ dbValue: DatabaseValue) -> LedgerTime? {
        Date.fromDatabaseValue(dbValue).map(LedgerTime.init)
    }

    /// GRDB's text for `date`; `nil` before 1970 or from the year 10000 on, which GRDB's own
    /// formatter writes (its calendar's rules for old dates are not worth copying).
    static func text(_ date: Date) -> String? {
        // As Foundation hands a date to ICU, milliseconds since 1970 as a double, and as ICU
        // writes it: to the nearest millisecond.
        let milliseconds = ((date.timeIntervalSinceReferenceDate + 978_307_200) * 1000).rounded()
        guard milliseconds >= 0, milliseconds < 253_402_300_800_000 else { return nil }
        let (days, inDay) = Int64(milliseconds).quotientAndRemainder(dividingBy: 86_400_000)
        let (year, month, day) = civil(daysSince1970: days)
        return String(unsafeUninitializedCapacity: 23) { text in
            // yyyy-MM-dd HH:mm:ss.SSS
            func put(_ value: Int64, at offset: Int, digits: Int) {
                var rest = value
                for index in stride(from: offset + digits - 1, through: offset, by: -1) {
                    text[index] = 0x30 + UInt8(rest % 10)
                    rest /= 10
                }
            }
            put(year, at: 0, digits: 4)
            put(month, at: 5, digits: 2)
            put(day, at: 8, digits: 2)
            put(inDay / 3_600_000, at: 11, digits: 2)
            put(inDay / 60_000 % 60, at: 14, digits: 2)
            put(inDay / 1000 % 60, at: 17, digits: 2)
            put(inDay % 1000, at: 20, digits: 3)
            (text[4], text[7], text[10]) = (0x2D, 0x2D, 0x20)
            (text[13], text[16], text[19]) = (0x3A, 0x3A, 0x2E)
            return 23
        }
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`), for days on or after it.
    static func civil(daysSince1970 days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = z / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension Date {
    /// This time as the ledger keeps it, for a statement's arguments or a record's columns.
    var stored: LedgerTime { LedgerTime(self) }
}

extension Date? {
    var stored: LedgerTime? { map(LedgerTime.init) }
}
