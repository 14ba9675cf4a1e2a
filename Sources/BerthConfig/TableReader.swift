import Foundation
import TOMLKit

/// Problems found so far. Every reader appends to the same log, so one pass over the file
/// reports everything that is wrong instead of stopping at the first.
final class ProblemLog {
    private(set) var problems: [ConfigProblem] = []

    func report(_ keyPath: String, _ message: String) {
        problems.append(ConfigProblem(keyPath: keyPath, message: message))
    }
}

/// Whether a key must be present; a required key carries what to add, for the message.
enum Presence {
    case optional
    /// `add` completes "missing required key; add …", e.g. `kind = "cpu"`.
    case required(add: String)
}

/// A TOML table seen from its key path. Its accessors check types and report problems, and
/// return `nil` for a value that is missing or unusable, so callers keep going.
struct TableReader {
    let table: TOMLTable
    let path: String
    let log: ProblemLog

    init(_ table: TOMLTable, path: String, log: ProblemLog) {
        self.table = table
        self.path = path
        self.log = log
    }

    func keyPath(_ key: String) -> String { KeyPathText.member(key, of: path) }

    /// Reports each key that is not in `known`, suggesting the nearest known one.
    func rejectUnknownKeys(_ known: [String]) {
        for key in table.keys.sorted() where !known.contains(key) {
            let message: String
            if let near = KeyPathText.nearest(to: key, in: known) {
                message = "unknown key; did you mean '\(near)'?"
            } else {
                message = "unknown key; remove it, or use one of: \(known.joined(separator: ", "))"
            }
            log.report(keyPath(key), message)
        }
    }

    /// The raw value at `key`; reports it when it is required and missing.
    func value(_ key: String, _ presence: Presence) -> (any TOMLValueConvertible)? {
        if let value = table[key] { return value }
        if case .required(let add) = presence {
            log.report(keyPath(key), "missing required key; add \(add)")
        }
        return nil
    }

    func string(_ key: String, _ presence: Presence) -> String? {
        guard let value = value(key, presence) else { return nil }
        return ValueReader.string(value, at: keyPath(key), log: log)
    }

    /// A string that must hold something: ids, names, paths.
    func nonEmptyString(_ key: String, _ presence: Presence, hint: String) -> String? {
        guard let text = string(key, presence) else { return nil }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            log.report(keyPath(key), "must not be empty; \(hint)")
            return nil
        }
        return text
    }

    func bool(_ key: String, _ presence: Presence) -> Bool? {
        guard let value = value(key, presence) else { return nil }
        guard let flag = value.bool else {
            log.report(keyPath(key), ValueReader.mismatch(expected: "a boolean (true or false)", found: value))
            return nil
        }
        return flag
    }

    /// An integer of at least `minimum`.
    func int(_ key: String, _ presence: Presence, minimum: Int) -> Int? {
        guard let value = value(key, presence) else { return nil }
        return ValueReader.int(value, at: keyPath(key), minimum: minimum, log: log)
    }

    /// A number (an integer is taken as one) of at least `minimum`, or above it when
    /// `exclusive`.
    func number(_ key: String, _ presence: Presence, minimum: Double, exclusive: Bool = false) -> Double? {
        guard let value = value(key, presence) else { return nil }
        return ValueReader.number(value, at: keyPath(key), minimum: minimum, exclusive: exclusive, log: log)
    }

    /// An array of strings; every element that is not a string is reported. Elements keep
    /// their index so later checks can name them (`daemon.admins[1]`).
    func stringArray(_ key: String, _ presence: Presence) -> [(index: Int, value: String)]? {
        guard let value = value(key, presence) else { return nil }
        let path = keyPath(key)
        guard let array = value.array else {
            log.report(path, ValueReader.mismatch(expected: "an array of strings", found: value))
            return nil
        }
        var strings: [(index: Int, value: String)] = []
        for index in 0..<array.count {
            if let text = ValueReader.string(array[index], at: KeyPathText.element(index, of: path), log: log) {
                strings.append((index, text))
            }
        }
        return strings
    }

    func subtable(_ key: String, _ presence: Presence) -> TableReader? {
        guard let value = value(key, presence) else { return nil }
        guard let table = value.table else {
            log.report(keyPath(key), ValueReader.mismatch(expected: "a table ([\(keyPath(key))])", found: value))
            return nil
        }
        return TableReader(table, path: keyPath(key), log: log)
    }

    /// An array of tables (`[[units]]`), each seen at its own `key[i]` path.
    func tableArray(_ key: String, _ presence: Presence) -> [TableReader]? {
        guard let value = value(key, presence) else { return nil }
        let path = keyPath(key)
        guard let array = value.array else {
            log.report(path, ValueReader.mismatch(expected: "an array of tables ([[\(path)]])", found: value))
            return nil
        }
        var tables: [TableReader] = []
        for index in 0..<array.count {
            let elementPath = KeyPathText.element(index, of: path)
            if let table = array[index].table {
                tables.append(TableReader(table, path: elementPath, log: log))
            } else {
                log.report(elementPath, ValueReader.mismatch(expected: "a table", found: array[index]))
            }
        }
        return tables
    }
}

/// Checks on single values, shared by tables and arrays.
enum ValueReader {
    static func string(_ value: any TOMLValueConvertible, at path: String, log: ProblemLog) -> String? {
        guard let text = value.string else {
            log.report(path, mismatch(expected: "a string", found: value))
            return nil
        }
        return text
    }

    static func int(_ value: any TOMLValueConvertible, at path: String, minimum: Int, log: ProblemLog) -> Int? {
        guard let number = value.int else {
            log.report(path, mismatch(expected: "an integer", found: value))
            return nil
        }
        guard number >= minimum else {
            log.report(path, "must be at least \(minimum), found \(number)")
            return nil
        }
        return number
    }

    static func number(
        _ value: any TOMLValueConvertible,
        at path: String,
        minimum: Double,
        exclusive: Bool,
        log: ProblemLog
    ) -> Double? {
        let number: Double
        if let double = value.double {
            number = double
        } else if let int = value.int {
            number = Double(int)
        } else {
            log.report(path, mismatch(expected: "a number", found: value))
            return nil
        }
        guard number.isFinite else {
            log.report(path, "must be a finite number, found \(number)")
            return nil
        }
        if exclusive ? number <= minimum : number < minimum {
            let bound = exclusive ? "greater than \(format(minimum))" : "at least \(format(minimum))"
            log.report(path, "must be \(bound), found \(format(number))")
            return nil
        }
        return number
    }

    static func mismatch(expected: String, found value: any TOMLValueConvertible) -> String {
        "expected \(expected), found \(noun(value.type))"
    }

    static func noun(_ type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a floating-point number"
        case .bool: "a boolean"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    /// `0` not `0.0`, `1e-06` as TOML would read it back.
    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }
}

/// Key paths as the problems print them: `models[2].price.model_unit_hour`.
enum KeyPathText {
    static func member(_ key: String, of path: String) -> String {
        let bare =
            !key.isEmpty
            && key.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
            }
        let written = bare ? key : "\"\(key.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""
        return path.isEmpty ? written : "\(path).\(written)"
    }

    static func element(_ index: Int, of path: String) -> String { "\(path)[\(index)]" }

    /// The known key a typo most likely meant: within two edits, or a third of its length.
    static func nearest(to key: String, in known: [String]) -> String? {
        let limit = max(2, key.count / 3)
        return
            known
            .map { ($0, editDistance(key, $0)) }
            .filter { $0.1 <= limit }
            .min { $0.1 < $1.1 }?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased())
        let b = Array(b.lowercased())
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}
