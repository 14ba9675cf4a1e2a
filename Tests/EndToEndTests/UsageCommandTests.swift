import BerthTestSupport
import BerthWire
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// `berth usage` against the real daemon: its table, CSV, JSON and SVG chart tell the same story.
@Suite("berth usage end to end", .serialized)
struct UsageCommandTests {
    static let model = "amazon.nova-micro-v1:0"

    /// A daemon whose ledger holds a finished window: root's training reservation with a completed
    /// job, root's inference reservation with calls, an on-demand call, and nobody's idle
    /// reservation, all released before the window ends, so every report of it is the same.
    struct Scenario {
        let daemon: TemporaryDaemon
        let from: String
        let to: String
        var window: [String] { ["--from", from, "--to", to] }

        init() throws {
            let config = TemporaryDaemon.config(dedicated: 4).replacingOccurrences(
                of: "stop_grace_seconds = 2",
                with: "stop_grace_seconds = 2\nidle_threshold_seconds = 1"
            )
            daemon = try TemporaryDaemon(config: config)
            try daemon.start()
            let start = Date()
            try Self.expectSuccess(
                daemon.cli(["reserve", "train-root", "--model", UsageCommandTests.model, "--units", "1", "--purpose", "training"])
            )
            try Self.expectSuccess(daemon.cli(["reserve", "chat", "--model", UsageCommandTests.model, "--units", "1", "--purpose", "inference"]))
            try Self.expectSuccess(
                daemon.cli(["reserve", "nobodys", "--model", UsageCommandTests.model, "--units", "1", "--purpose", "training"], as: .nobody)
            )
            try Self.expectSuccess(
                daemon.cli([
                    "submit", "ft", "--reservation", "train-root", "--kind", "fine-tuning",
                    "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl", "--output", daemon.directory.file("ft"), "--model-name", "usage-tuned",
                    "--epochs", "1",
                ])
            )
            for prompt in ["what does the ledger keep", "who holds the units", "how many tokens a minute"] {
                try Self.expectSuccess(daemon.cli(["invoke", "chat", "--prompt", prompt, "--max-tokens", "8"]))
            }
            try Self.expectSuccess(daemon.cli(["invoke", UsageCommandTests.model, "--prompt", "hello there", "--max-tokens", "8"]))
            var status = ""
            let running = daemon
            _ = try eventually(timeout: 60, every: 0.1) {
                status = try running.jobView(1).status
                return ["completed", "failed"].contains(status)
            }
            #expect(status == "completed")
            // Longer than the idle threshold with nothing to do. berthd keeps times in whole
            // seconds, so 1.3 s of real time can be a spell of exactly 1 s (not longer than the
            // threshold): wait past 2 s.
            usleep(2_300_000)
            try Self.expectSuccess(daemon.cli(["release", "train-root"]))
            try Self.expectSuccess(daemon.cli(["release", "chat"]))
            try Self.expectSuccess(daemon.cli(["release", "nobodys"], as: .nobody))
            let formatter = ISO8601DateFormatter()
            let first = Date(timeIntervalSince1970: start.timeIntervalSince1970.rounded(.down) - 60)
            let last = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.up) + 1)
            from = formatter.string(from: first)
            to = formatter.string(from: last)
            // The window is over: reports of it no longer change.
            #expect(eventually(timeout: last.timeIntervalSinceNow + 5) { Date() > last })
        }

        static func expectSuccess(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        }

        func usage(_ arguments: [String], as user: TestUser? = nil) throws -> CommandResult {
            try daemon.cli(["usage"] + window + arguments, as: user)
        }

        func report(_ arguments: [String] = [], as user: TestUser? = nil) throws -> UsageReportView {
            try daemon.view(UsageReportView.self, ["usage"] + window + arguments, as: user)
        }

        /// The report as a plain JSON document, for a test that looks its fields up by the
        /// names the CSV's columns carry.
        func document(_ arguments: [String] = [], as user: TestUser? = nil) throws -> [String: Any] {
            try daemon.json(["usage"] + window + arguments, as: user)
        }
    }

    // MARK: - Tests

    @Test("the CSV parses as RFC 4180, also with Python's csv reader, and its numbers are the JSON's")
    func csvMatchesJSON() throws {
        let scenario = try Scenario()
        let report = try scenario.document()
        let result = try scenario.usage(["--format", "csv"])
        #expect(result.status == 0, "\(result)")
        let records = try CSV.parse(result.stdout)
        // --format json is --json: the API's document, as received.
        let formatJSON = try scenario.usage(["--format", "json"])
        let globalJSON = try scenario.usage(["--json"])
        #expect(formatJSON.status == 0 && formatJSON.stdout == globalJSON.stdout)
        if let python = try CSV.parseWithPython(result.stdout, in: scenario.daemon.directory) {
            #expect(python == records)
        }
        let rows = try #require(report["rows"] as? [[String: Any]])
        let totals = try #require(report["totals"] as? [String: Any])
        let header = try #require(records.first)
        #expect(Array(header.prefix(5)) == ["reservation", "owner", "model", "purpose", "commitment"])
        #expect(header.contains("jobs_completed") && header.contains("jobs_failed") && header.contains("latency_p99_ms"))
        #expect(records.count == 1 + rows.count + 1)
        #expect(records.allSatisfy { $0.count == header.count })
        #expect(Set(rows.compactMap { $0["key"] as? String }) == ["train-root", "chat", "nobodys", "on-demand:\(Self.model)"])
        for (record, row) in zip(records.dropFirst(), rows + [totals]) {
            let fields = Dictionary(uniqueKeysWithValues: zip(header, record))
            #expect(fields["reservation"] == row["key"] as? String)
            #expect(fields["owner"] == (row["owner"] as? String ?? ""))
            #expect(fields["model"] == (row["model"] as? String ?? ""))
            for name in header.dropFirst(5) {
                let text = fields[name] ?? ""
                let expected =
                    name.hasPrefix("jobs_")
                    ? Self.number((row["jobs"] as? [String: Any])?[String(name.dropFirst(5))])
                    : Self.number(row[name])
                if let expected {
                    let value = try #require(Double(text), "\(name) = '\(text)' is not a plain number")
                    #expect(!text.contains("e") && !text.contains("E"), "\(name) = \(text)")
                    #expect(abs(value - expected) <= 1e-9 * max(1, abs(expected)), "\(row["key"] ?? "") \(name): csv \(text), json \(expected)")
                } else {
                    #expect(text.isEmpty, "\(name) = '\(text)' where the JSON has null")
                }
            }
        }
        #expect(records.last?.first == "total")
        let totalRecord = Dictionary(uniqueKeysWithValues: zip(header, records.last ?? []))
        #expect(totalRecord["jobs_completed"] == "1")
    }

    @Test("the table shows the JSON's rows with the same numbers as printed, a TOTAL row, sparklines and the idle reservations")
    func tableMatchesJSON() throws {
        let scenario = try Scenario()
        let report = try scenario.report()
        let result = try scenario.usage([])
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.components(separatedBy: "\n")
        let headerIndex = try #require(lines.firstIndex { $0.hasPrefix("RESERVATION ") && $0.contains("RESERVED U-H") })
        let columns = Self.cells(lines[headerIndex])
        #expect(
            columns == [
                "RESERVATION", "RESERVED U-H", "BUSY U-H", "UTIL", "CPU S", "JOBS OK/FAIL/OTHER", "CALLS", "THROTTLED", "IN TOK", "OUT TOK",
                "P50 MS", "P99 MS", "COST", "IDLE H", "BUSY/RESERVED",
            ]
        )
        let tableLines = lines[(headerIndex + 1)...].prefix { !$0.isEmpty }
        #expect(tableLines.count == report.rows.count + 1)
        for (line, row) in zip(tableLines, report.rows + [report.totals]) {
            let cells = Self.cells(line)
            try #require(cells.count == columns.count, "\(line)")
            #expect(cells[0] == (row.key == "total" && line == tableLines.last ? "TOTAL" : row.key))
            Self.expectPrinted(cells[1], row.reservedUnitHours, "\(cells[0]) reserved")
            Self.expectPrinted(cells[2], row.busyUnitHours, "\(cells[0]) busy")
            if row.reservedUnitHours > 0 {
                Self.expectPrinted(cells[3], row.utilization * 100, "\(cells[0]) util")
            } else {
                #expect(cells[3] == "-")
            }
            Self.expectPrinted(cells[4], row.cpuSeconds > 0 ? row.cpuSeconds : nil, "\(cells[0]) cpu")
            let jobs = row.jobs
            let other = jobs.total - jobs.completed - jobs.failed
            #expect(cells[5] == (jobs.total == 0 ? "-" : "\(jobs.completed)/\(jobs.failed)/\(other)"))
            Self.expectPrinted(cells[6], Double(row.invocations), "\(cells[0]) calls")
            Self.expectPrinted(cells[7], Double(row.throttled), "\(cells[0]) throttled")
            Self.expectPrinted(cells[8], Double(row.inputTokens), "\(cells[0]) input tokens")
            Self.expectPrinted(cells[9], Double(row.outputTokens), "\(cells[0]) output tokens")
            Self.expectPrinted(cells[10], row.latencyP50Ms, "\(cells[0]) p50")
            Self.expectPrinted(cells[11], row.latencyP99Ms, "\(cells[0]) p99")
            Self.expectPrinted(cells[12], row.cost, "\(cells[0]) cost")
            Self.expectPrinted(cells[13], row.idleHours > 0 ? row.idleHours : nil, "\(cells[0]) idle")
            let series = row.series.reservedUnits
            #expect(cells[14].count == series.count && series.count == 24, "\(cells[14])")
            #expect(cells[14].allSatisfy { "·▁▂▃▄▅▆▇█".contains($0) })
        }
        #expect(tableLines.last.map(Self.cells)?.first == "TOTAL")
        #expect(tableLines.first { $0.hasPrefix("chat ") }.map(Self.cells)?[6] == "3")
        #expect(tableLines.first { $0.hasPrefix("train-root ") }.map(Self.cells)?[5] == "1/0/0")
        // The idle reservations, below the table: nobody's never did anything.
        let idle = report.idle
        #expect(idle.contains { $0.reservation == "nobodys" })
        let idleHeader = try #require(lines.firstIndex { $0.hasPrefix("IDLE: ") })
        #expect(lines[idleHeader].contains("longer than 1s"))
        let idleLines = lines[(idleHeader + 2)...].prefix { !$0.isEmpty && !$0.hasPrefix("Release ") }
        #expect(idleLines.map { Self.cells($0)[0] } == idle.map(\.reservation))
        for (line, entry) in zip(idleLines, idle) {
            let cells = Self.cells(line)
            Self.expectPrinted(cells[3], entry.idleHours, "idle hours of \(cells[0])")
            Self.expectPrinted(cells[4], entry.idleCost, "idle cost of \(cells[0])")
        }
    }

    @Test("a non-admin sees only their own reservations' rows, in every format")
    func nonAdminSeesOwnRows() throws {
        let scenario = try Scenario()
        let everyone = try scenario.report()
        #expect(Set(everyone.rows.map(\.key)).isSuperset(of: ["train-root", "chat", "nobodys"]))
        let mine = try scenario.report(as: .nobody)
        #expect(mine.rows.map(\.key) == ["nobodys"])
        #expect(mine.rows.allSatisfy { $0.owner == "nobody" })
        #expect(mine.totals.reservedUnitHours == mine.rows.first?.reservedUnitHours)
        #expect(mine.totals.invocations == 0)
        #expect(mine.idle.allSatisfy { $0.owner == "nobody" })
        let byOwner = try scenario.report(["--by", "owner"], as: .nobody)
        #expect(byOwner.rows.map(\.key) == ["nobody"])
        let rootByOwner = try scenario.report(["--by", "owner"])
        #expect(Set(rootByOwner.rows.map(\.key)) == ["nobody", "root"])
        for format in ["table", "csv"] {
            let result = try scenario.usage(["--format", format], as: .nobody)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("nobodys"))
            #expect(!result.stdout.contains("train-root") && !result.stdout.contains("chat"), "\(result.stdout)")
        }
    }

    @Test("--chart writes a well-formed SVG with one series group per row and a token panel for the inference reservation")
    func chart() throws {
        let scenario = try Scenario()
        let file = scenario.daemon.directory.file("usage.svg")
        let result = try scenario.usage(["--chart", file])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Chart written to \(file)"))
        let rows = try scenario.report().rows
        let data = try #require(FileManager.default.contents(atPath: file))
        let svg = SVGSummary()
        let parser = XMLParser(data: data)
        parser.delegate = svg
        #expect(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        #expect(svg.root == "svg")
        #expect(svg.rootAttributes["xmlns"] == "http://www.w3.org/2000/svg")
        #expect(svg.rootAttributes["width"] != nil && svg.rootAttributes["height"] != nil && svg.rootAttributes["viewBox"] != nil)
        #expect(svg.series.map(\.key).sorted() == rows.map(\.key).sorted())
        #expect(svg.series.allSatisfy { $0.polylines.sorted() == ["busy", "reserved"] }, "\(svg.series)")
        #expect(svg.tokenSeries == ["chat"])
        #expect(svg.texts.contains("time (UTC)"))

        // The same chart when only JSON is printed: stdout stays one JSON document.
        let json = try scenario.usage(["--json", "--chart", file])
        #expect(json.status == 0)
        #expect((try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) != nil)
    }

    @Test("a bad --by or --format exits 2 naming the option; an empty ledger still reports")
    func badArguments() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let cases: [([String], String)] = [
            (["--by", "week"], "--by: 'week' is not a grouping: use reservation, model, owner or day"),
            (["--format", "xml"], "--format: 'xml' is not an output format: use table, json or csv"),
            (["--json", "--format", "csv"], "--json and --format csv"),
            (["--from", "yesterday"], "--from: 'yesterday' is not a TIME"),
            (["--from", "now", "--to", "-1d"], "is not before --to"),
            (["--chart", "/nonexistent-berth-folder/usage.svg"], "--chart: the folder '/nonexistent-berth-folder' does not exist"),
            (["--chart", daemon.directory.path], "is a folder"),
        ]
        for (arguments, message) in cases {
            let result = try daemon.cli(["usage"] + arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.hasPrefix("berth: invalid-argument: "), "\(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        // An empty ledger still reports: a TOTAL row of zeros, and nothing idle.
        let empty = try daemon.cli(["usage"])
        #expect(empty.status == 0, "\(empty)")
        #expect(empty.stdout.contains("\nTOTAL "))
        #expect(empty.stdout.contains("No reservation sat idle"))
    }

    // MARK: - Helpers

    /// A JSON number (or a number the table prints) as a Double; nil for null or absent.
    static func number(_ value: Any?) -> Double? {
        switch value {
        case let value as Int: Double(value)
        case let value as Double: value
        case let value as NSNumber: value.doubleValue
        default: nil
        }
    }

    /// The cells of a table line: columns are two or more spaces apart.
    static func cells(_ line: String) -> [String] {
        line.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The printed cell is `expected` rounded to the decimals printed (`-` for none), thousands grouped.
    static func expectPrinted(_ cell: String, _ expected: Double?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let expected else {
            #expect(cell == "-", "\(what): printed \(cell), JSON has none", sourceLocation: sourceLocation)
            return
        }
        let text = cell.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "%", with: "")
        guard let printed = Double(text) else {
            Issue.record("\(what): '\(cell)' is not a number (JSON \(expected))", sourceLocation: sourceLocation)
            return
        }
        let decimals = text.split(separator: ".").dropFirst().first?.count ?? 0
        let halfStep = 0.5 * pow(10, -Double(decimals))
        #expect(abs(printed - expected) <= halfStep + 1e-9, "\(what): printed \(cell), JSON \(expected)", sourceLocation: sourceLocation)
    }
}

/// RFC 4180, strictly: CRLF between records, fields quoted when they must be, quotes doubled.
enum CSV {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var scalars = Array(text.unicodeScalars)[...]
        guard text.hasSuffix("\r\n") else { throw Malformed(description: "the last record does not end with CRLF") }
        while let scalar = scalars.popFirst() {
            switch scalar {
            case "\"" where field.isEmpty:
                // A quoted field: up to the lone closing quote.
                while true {
                    guard let next = scalars.popFirst() else { throw Malformed(description: "an unterminated quoted field") }
                    if next == "\"" {
                        if scalars.first == "\"" {
                            scalars.removeFirst()
                            field.unicodeScalars.append("\"")
                        } else {
                            break
                        }
                    } else {
                        field.unicodeScalars.append(next)
                    }
                }
                guard let after = scalars.first, after == "," || after == "\r" else {
                    throw Malformed(description: "text after a closing quote in field '\(field)'")
                }
            case "\"":
                throw Malformed(description: "a quote inside an unquoted field '\(field)'")
            case ",":
                record.append(field)
                field = ""
            case "\r":
                guard scalars.popFirst() == "\n" else { throw Malformed(description: "a CR without LF") }
                record.append(field)
                field = ""
                records.append(record)
                record = []
            case "\n":
                throw Malformed(description: "a bare LF in an unquoted field")
            default:
                field.unicodeScalars.append(scalar)
            }
        }
        return records
    }

    /// Python's `csv` module on the same text, or nil where there is no python3.
    static func parseWithPython(_ text: String, in directory: TemporaryDirectory) throws -> [[String]]? {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let python else { return nil }
        let file = directory.file("usage.csv")
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let script = "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8'), strict=True))))"
        let result = try Products.run(python, ["-c", script, file])
        guard result.status == 0 else { throw CSV.Malformed(description: "python's csv reader: \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String]]
    }
}

/// What the chart's XML holds: the root, its series groups and their lines.
final class SVGSummary: NSObject, XMLParserDelegate {
    struct Series: CustomStringConvertible {
        var key: String
        var polylines: [String] = []
        var description: String { "\(key): \(polylines)" }
    }

    var root: String?
    var rootAttributes: [String: String] = [:]
    var series: [Series] = []
    var tokenSeries: [String] = []
    var texts: [String] = []
    private var stack: [String] = []
    private var text = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:])
    {
        if root == nil {
            root = name
            rootAttributes = attributes
        }
        let classes = (attributes["class"] ?? "").split(separator: " ").map(String.init)
        if name == "g" && classes.contains("series") { series.append(Series(key: attributes["data-key"] ?? "")) }
        if name == "g" && classes.contains("token-series") { tokenSeries.append(attributes["data-key"] ?? "") }
        if name == "polyline", stack.last == "series", !series.isEmpty { series[series.count - 1].polylines += classes }
        stack.append(name == "g" && classes.contains("series") ? "series" : name)
        text = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { texts.append(text) }
        stack.removeLast()
    }
}
