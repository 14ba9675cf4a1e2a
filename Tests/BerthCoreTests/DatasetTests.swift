import BerthCore
import BerthDataset
import Foundation
import Testing

@Suite("Dataset checks")
struct DatasetTests {
    static let good = #"{"prompt": "What holds the units?", "completion": "The reservation holds them."}"#

    func lines(_ count: Int, replacing: [Int: String] = [:]) -> Data {
        Data((1...count).map { replacing[$0] ?? Self.good }.joined(separator: "\n").appending("\n").utf8)
    }

    func problems(_ result: Result<DatasetSummary, DatasetProblems>) -> [DatasetProblem] {
        if case .failure(let bad) = result { return bad.problems }
        return []
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var line: String
        var reason: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        Case(name: "not JSON", line: "{oops", reason: "not valid JSON"),
        Case(name: "not an object", line: "[1, 2]", reason: "not a JSON object"),
        Case(name: "a missing field", line: #"{"prompt": "x"}"#, reason: #"missing "completion""#),
        Case(name: "a field of the wrong type", line: #"{"prompt": "x", "completion": 3}"#, reason: #""completion" must be a string"#),
        Case(
            name: "a record over max_tokens",
            line: #"{"prompt": "\#(String(repeating: "word ", count: 60))", "completion": "x"}"#,
            reason: "over the model's max_tokens of 50"
        ),
    ])
    func badRecord(_ c: Case) {
        let found = problems(DatasetCheck.check(lines(40, replacing: [37: c.line]), kind: .fineTuning, maxTokens: 50, maxRecords: 1000))
        #expect(found.map(\.line) == [37])
        #expect(found.first?.reason.contains(c.reason) == true, "\(found)")
    }

    /// The count by Unicode properties alone, as it was before ASCII got its own path.
    static func referenceTokenCount(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                if !inWord {
                    count += 1
                    inWord = true
                }
            } else {
                inWord = false
                if !scalar.properties.isWhitespace { count += 1 }
            }
        }
        return count
    }

    @Test("tokens are runs of letters and digits and each other visible character; ASCII counts as by Unicode's properties")
    func tokenCounts() {
        #expect(DatasetCheck.tokenCount("What holds the units?") == 5)
        #expect(DatasetCheck.tokenCount("  a1b2,c\t\n(d) ") == 6)
        #expect(DatasetCheck.tokenCount("") == 0)
        #expect(DatasetCheck.tokenCount("naïve café: 3 €") == 5)
        for value in 0..<0x80 {
            let text = "x" + String(UnicodeScalar(UInt8(value))) + "y 7"
            #expect(DatasetCheck.tokenCount(text) == Self.referenceTokenCount(text), "scalar \(value)")
        }
        // Long ASCII text (counted from its bytes), a substring of it, and the same with one
        // character past ASCII at the very end (counted from its scalars).
        let long = String(repeating: "The units, 12 of them;\t(all) ", count: 40)
        #expect(DatasetCheck.tokenCount(long) == Self.referenceTokenCount(long))
        #expect(DatasetCheck.tokenCount(long.dropFirst(5)) == Self.referenceTokenCount(String(long.dropFirst(5))))
        #expect(DatasetCheck.tokenCount(long + "café") == Self.referenceTokenCount(long + "café"))
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aZ09 _-.,;:!?\t\n\u{85}\u{a0}éß中文١٢€😀\u{301}")
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...24, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            #expect(DatasetCheck.tokenCount(text) == Self.referenceTokenCount(text), "\(text.debugDescription)")
        }
    }

    @Test("a good file passes with its record and token counts; blank lines are not records")
    func good() throws {
        var data = lines(10)
        data.append(Data("\n\n".utf8))
        let summary = try DatasetCheck.check(data, kind: .fineTuning, maxTokens: 100, maxRecords: 100).get()
        #expect(summary.records == 10)
        #expect(summary.tokens == 10 * (DatasetCheck.tokenCount("What holds the units?") + DatasetCheck.tokenCount("The reservation holds them.")))
    }

    @Test("a large file checked in pieces reports the right line numbers, the first ones first")
    func largeFileLineNumbers() {
        let count = 40_000  // about 3 MB: several pieces
        let found = problems(
            DatasetCheck.check(
                lines(count, replacing: [7: "{", 25_001: "{", 39_999: "{", 40_000: "{"]),
                kind: .fineTuning,
                maxTokens: 100,
                maxRecords: 1_000_000
            )
        )
        #expect(found.map(\.line) == [7, 25_001, 39_999])
    }

    @Test("the record limit names the first record past it, even in a later piece")
    func recordLimit() {
        let found = problems(DatasetCheck.check(lines(40_000), kind: .fineTuning, maxTokens: 100, maxRecords: 30_000))
        #expect(found.first?.line == 30_001)
        #expect(found.first?.reason.contains("more than 30000 records") == true)
    }

    @Test("batch record ids must be unique across the whole file")
    func uniqueIDs() {
        let records = (1...30_000).map { #"{"recordId": "r\#($0 == 29_000 ? 5 : $0)", "modelInput": "hello there"}"# }
        let found = problems(
            DatasetCheck.check(Data((records.joined(separator: "\n") + "\n").utf8), kind: .batchInference, maxTokens: 100, maxRecords: 1_000_000)
        )
        #expect(found.map(\.line) == [29_000])
    }

    @Test("an empty file is refused")
    func empty() {
        #expect(problems(DatasetCheck.check(Data(), kind: .distillation, maxTokens: 10, maxRecords: 10)).count == 1)
    }
}
