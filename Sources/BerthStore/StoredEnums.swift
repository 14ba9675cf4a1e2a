import BerthCore
import GRDB

// Enums the ledger stores by their raw values. A value the enum does not know is an error that
// names the column and the value, never a default that hides a bad row. The enums do not
// conform to GRDB's DatabaseValueConvertible: such a conformance of a core type would be
// public, and BerthStore's interface would name GRDB. They are written as `.rawValue` and
// read with `row.stored(atIndex:)`.

/// A stored value the code does not know: a ledger written by a newer berthd, or edited by hand.
struct UnknownStoredValue: Error, CustomStringConvertible {
    var column: String
    var value: String
    var type: String

    var description: String {
        "the ledger's \(column) holds '\(value)', which is not a \(type) this berthd knows; was it written by a newer berthd?"
    }
}

extension Row {
    /// The enum stored in column `index`, or nil for NULL.
    func storedIfPresent<E: RawRepresentable>(atIndex index: Int) throws -> E? where E.RawValue == String {
        (self[index] as DatabaseValue).isNull ? nil : try stored(atIndex: index) as E
    }

    /// The enum stored in column `index` by its raw value.
    func stored<E: RawRepresentable>(atIndex index: Int) throws -> E where E.RawValue == String {
        let column = columnNames[columnNames.index(columnNames.startIndex, offsetBy: index)]
        let stored: DatabaseValue = self[index]
        guard case .string(let text) = stored.storage else {
            throw UnknownStoredValue(column: column, value: stored.description, type: "\(E.self)")
        }
        guard let value = E(rawValue: text) else { throw UnknownStoredValue(column: column, value: text, type: "\(E.self)") }
        return value
    }
}
