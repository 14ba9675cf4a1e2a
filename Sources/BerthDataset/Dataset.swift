public import BerthCore
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
        // ASCII text, the usual case, is counted from its UTF-8 bytes: decoding each byte into a
        // Unicode scalar first was most of the work. Text with any other character takes the
        // scalars' path, which looks up their properties.
        if let ascii = text.utf8.withContiguousStorageIfAvailable(asciiTokenCount), let count = ascii {
            return count
        }
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let (isWordPart, isSpace) =
                value < 0x80
                ? asciiClass(UInt8(value))
                : (scalar.properties.isAlphabetic, scalar.properties.isWhitespace)
            step(isWordPart: isWordPart, isSpace: isSpace, count: &count, inWord: &inWord)
        }
        return count
    }

    /// The count of text that is all ASCII, or `nil` at its first byte that is not.
    static func asciiTokenCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var count = 0
        var inWord = false
        for byte in bytes {
            guard byte < 0x80 else { return nil }
            let (isWordPart, isSpace) = asciiClass(byte)
            step(isWordPart: isWordPart, isSpace: isSpace, count: &count, inWord: &inWord)
        }
        return count
    }

    /// An ASCII character as Unicode's properties have it, without looking them up: letters and
    /// digits make words, and the six spaces separate them.
    @inline(__always)
    private static func asciiClass(_ byte: UInt8) -> (isWordPart: Bool, isSpace: Bool) {
        // `| 0x20` folds A-Z onto a-z and sends no other byte there; the wrapping subtractions
        // test a range with one comparison.
        let isLetter = (byte | 0x20) &- 0x61 < 26
        let isDigit = byte &- 0x30 < 10
        return (isLetter || isDigit, byte == 0x20 || byte &- 0x09 < 5)
    }

    @inline(__always)
    private static func step(isWordPart: Bool, isSpace: Bool, count: inout Int, inWord: inout Bool) {
        if isWordPart {
            if !inWord {
                count += 1
                inWord = true
            }
        } else {
            inWord = false
            if !isSpace { count += 1 }
        }
    }

    /// The first `limit` problems of `data` (JSON Lines) for a job of `kind`, or its summary.
    /// Large files are cut at line boundaries into one piece per core and checked in parallel:
    /// parsing JSON is the cost, and a 100 MB dataset must be refused in seconds.
    public static func check(
        _ data: Data,
        kind: JobKind,
        maxTokens: Int,
        maxRecords: Int,
        limit: Int = 3
    ) -> Result<DatasetSummary, DatasetProblems> {
        let pieces = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [Range<Int>] in
            let bytes = raw.bindMemory(to: UInt8.self)
            let count = data.count < 1 << 20 ? 1 : max(1, ProcessInfo.processInfo.activeProcessorCount)
            var ranges: [Range<Int>] = []
            var start = 0
            for piece in 1...count {
                var end = piece == count ? bytes.count : max(start, bytes.count * piece / count)
                while end < bytes.count && end > 0 && bytes[end - 1] != 0x0A { end += 1 }
                ranges.append(start..<end)
                start = end
            }
            return ranges
        }
        var results = [Piece](repeating: Piece(), count: pieces.count)
        results.withUnsafeMutableBufferPointer { out in
            let out = UncheckedSendable(out)
            DispatchQueue.concurrentPerform(iterations: pieces.count) { index in
                out.value[index] = checkPiece(data, pieces[index], kind: kind, maxTokens: maxTokens, limit: limit)
            }
        }
        // Stitch the pieces together: line numbers, record counts and record ids run on.
        var problems: [DatasetProblem] = []
        var records = 0
        var tokens = 0
        var lineOffset = 0
        var seenIDs: [String: Int] = [:]
        for piece in results {
            for problem in piece.problems {
                problems.append(DatasetProblem(line: problem.line + lineOffset, reason: problem.reason))
            }
            for (id, line) in piece.ids.sorted(by: { $0.value < $1.value }) {
                if seenIDs[id] != nil {
                    problems.append(DatasetProblem(line: line + lineOffset, reason: "\"recordId\" repeats an earlier record's; each must be unique"))
                } else {
                    seenIDs[id] = line + lineOffset
                }
            }
            if records + piece.records > maxRecords, let line = piece.recordLines.dropFirst(maxRecords - records).first {
                problems.append(
                    DatasetProblem(line: line + lineOffset, reason: "more than \(maxRecords) records, the config's limit; split the dataset")
                )
            }
            records += piece.records
            tokens += piece.tokens
            lineOffset += piece.lines
        }
        problems.sort { $0.line < $1.line }
        if problems.isEmpty && records == 0 {
            problems.append(DatasetProblem(line: 1, reason: "the file has no records; each line must be one JSON object"))
        }
        return problems.isEmpty
            ? .success(DatasetSummary(records: records, tokens: tokens))
            : .failure(DatasetProblems(problems: Array(problems.prefix(limit))))
    }

    /// What one piece of a file held.
    struct Piece {
        var problems: [DatasetProblem] = []
        var records = 0
        var tokens = 0
        var lines = 0
        /// Batch record ids and the line of each, to find repeats across pieces.
        var ids: [String: Int] = [:]
        /// Lines of the first records, enough to name the one past the record limit.
        var recordLines: [Int] = []
    }

    static func checkPiece(_ data: Data, _ range: Range<Int>, kind: JobKind, maxTokens: Int, limit: Int) -> Piece {
        var piece = Piece()
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = range.lowerBound
            while start < range.upperBound {
                var end = start
                while end < range.upperBound && bytes[end] != 0x0A { end += 1 }
                piece.lines += 1
                let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
                start = end + 1
                // Blank lines (and a trailing newline) carry no record.
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                piece.records += 1
                if piece.recordLines.count < 1_000_000 { piece.recordLines.append(piece.lines) }
                guard piece.problems.count < limit else { continue }
                var recordID: String?
                if let reason = checkRecord(Data(line), kind: kind, maxTokens: maxTokens, tokens: &piece.tokens, recordID: &recordID) {
                    piece.problems.append(DatasetProblem(line: piece.lines, reason: reason))
                } else if let recordID {
                    if piece.ids[recordID] != nil {
                        piece.problems.append(
                            DatasetProblem(line: piece.lines, reason: "\"recordId\" repeats an earlier record's; each must be unique")
                        )
                    } else {
                        piece.ids[recordID] = piece.lines
                    }
                }
            }
        }
        return piece
    }

    static func checkRecord(_ line: Data, kind: JobKind, maxTokens: Int, tokens: inout Int, recordID: inout String?) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: line) else {
            return "not valid JSON; each line must be one JSON object"
        }
        guard let record = object as? [String: Any] else {
            return "not a JSON object; each line must be one JSON object"
        }
        var recordTokens = 0
        for field in kind.requiredFields {
            guard let value = record[field] else {
                return
                    "missing \"\(field)\"; every \(kind.rawValue) record needs \(kind.requiredFields.map { "\"\($0)\"" }.joined(separator: " and "))"
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
                recordID = text
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

/// A buffer written by `concurrentPerform`, each iteration to its own element.
private struct UncheckedSendable<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
