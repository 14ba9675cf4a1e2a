import Foundation

/// A job's JSON Lines file: one object per non-blank line. berthd has checked it already; the
/// runner checks again, so a bad file fails with the line and the reason, not a crash.
struct JobData {
    struct Record {
        var file: String
        /// 1-based line number in the file.
        var line: Int
        var fields: [String: JSONValue]

        func string(_ field: String) throws -> String {
            guard let value = fields[field] else {
                throw RunnerFailure.invalid("\(file) line \(line): missing field \"\(field)\"")
            }
            guard let text = value.string else {
                throw RunnerFailure.invalid("\(file) line \(line): \"\(field)\" must be a string, not \(value.typeName)")
            }
            return text
        }
    }

    var path: String
    var records: [Record]

    static func read(_ path: String) throws -> JobData {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RunnerFailure.invalid("cannot read \(path): \(error.localizedDescription)")
        }
        var records: [Record] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") }) else { continue }
            let value: JSONValue
            do {
                value = try JSONValue.parse(Data(line))
            } catch {
                throw RunnerFailure.invalid("\(path) line \(lineNumber): not valid JSON")
            }
            guard let fields = value.object else {
                throw RunnerFailure.invalid("\(path) line \(lineNumber): expected a JSON object, found \(value.typeName)")
            }
            records.append(Record(file: path, line: lineNumber, fields: fields))
        }
        return JobData(path: path, records: records)
    }
}
