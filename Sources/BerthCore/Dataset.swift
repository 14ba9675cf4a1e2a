public import Foundation

/// A bad record of a dataset: its line number (from 1) and why.
public struct DatasetProblem: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}

public struct DatasetSummary: Sendable, Equatable {
    public var records: Int
    public var tokens: Int
}

/// Checks a JSON Lines dataset before a job is queued, so a bad file fails in a second at
/// submission instead of hours into training. Never quotes the data itself in a reason: the
/// file may be someone's secret.
public enum DatasetCheck {
    /// Words as the reference runner counts them: runs of letters and digits, and each other
    /// visible character on its own. An estimate of a tokenizer's count, and the same on both sides.
    public static func tokenCount<S: StringProtocol>(_ text: S) -> Int {
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                if !inWord { count += 1; inWord = true }
            } else {
                inWord = false
                if !scalar.properties.isWhitespace { count += 1 }
            }
        }
        return count
    }

    /// The first `limit` problems of `data` (JSON Lines) for a job of `kind`, or its summary.
    public static func check(
        _ data: Data, kind: JobKind, maxTokens: Int, maxRecords: Int, limit: Int = 3
    ) -> Result<DatasetSummary, DatasetProblems> {
        var problems: [DatasetProblem] = []
        var records = 0
        var tokens = 0
        var seenIDs = Set<String>()
        var lineNumber = 0
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            while start <= bytes.count && problems.count < limit {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                if start == bytes.count { break }
                lineNumber += 1
                let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
                start = end + 1
                // Blank lines (and a trailing newline) carry no record.
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                records += 1
                if records > maxRecords {
                    problems.append(DatasetProblem(line: lineNumber, reason: "more than \(maxRecords) records, the config's limit; split the dataset"))
                    return
                }
                if let reason = checkRecord(Data(line), kind: kind, maxTokens: maxTokens, tokens: &tokens, seenIDs: &seenIDs) {
                    problems.append(DatasetProblem(line: lineNumber, reason: reason))
                }
            }
        }
        if problems.isEmpty && records == 0 {
            problems.append(DatasetProblem(line: 1, reason: "the file has no records; each line must be one JSON object"))
        }
        return problems.isEmpty ? .success(DatasetSummary(records: records, tokens: tokens)) : .failure(DatasetProblems(problems: problems))
    }

    static func checkRecord(_ line: Data, kind: JobKind, maxTokens: Int, tokens: inout Int, seenIDs: inout Set<String>) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: line) else {
            return "not valid JSON; each line must be one JSON object"
        }
        guard let record = object as? [String: Any] else {
            return "not a JSON object; each line must be one JSON object"
        }
        var recordTokens = 0
        for field in kind.requiredFields {
            guard let value = record[field] else {
                return "missing \"\(field)\"; every \(kind.rawValue) record needs \(kind.requiredFields.map { "\"\($0)\"" }.joined(separator: " and "))"
            }
            if kind == .batchInference && field == "modelInput" {
                guard let text = modelInputText(value) else {
                    return "\"modelInput\" must be a string or an object with a \"prompt\" or \"inputText\" string"
                }
                recordTokens += tokenCount(text)
                continue
            }
            guard let text = value as? String else {
                return "\"\(field)\" must be a string"
            }
            if kind == .batchInference && field == "recordId" {
                if text.isEmpty { return "\"recordId\" is empty" }
                if !seenIDs.insert(text).inserted { return "\"recordId\" repeats an earlier record's; each must be unique" }
                continue
            }
            recordTokens += tokenCount(text)
        }
        if recordTokens > maxTokens {
            return "\(recordTokens) tokens, over the model's max_tokens of \(maxTokens); shorten or split the record"
        }
        tokens += recordTokens
        return nil
    }

    /// The text of a batch record's `modelInput`: a string, or `prompt` / `inputText` of an object.
    public static func modelInputText(_ value: Any) -> String? {
        if let text = value as? String { return text }
        if let object = value as? [String: Any] {
            return (object["prompt"] as? String) ?? (object["inputText"] as? String)
        }
        return nil
    }
}

public struct DatasetProblems: Error, Sendable, Equatable {
    public var problems: [DatasetProblem]
}
