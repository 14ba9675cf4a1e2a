import BerthCore
import BerthTestSupport
import BerthWire
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The usage report as a new user meets it: a mistyped target is no usage, a burst of calls on
/// an oversized reservation gets advice, and the chart draws the burst where it happened.
@Suite("berth usage advice and truth end to end", .serialized)
struct UsageAdviceTests {
    static let model = "amazon.nova-micro-v1:0"  // 20,000 tokens a minute per model unit, 20 a model-unit-hour
    static let serve = "demo-serve-for-the-right-sizing-advice"
    /// Training, so that it starts no serve process; the same long prefix as `serve`.
    static let quiet = "demo-serve-for-the-right-sizing-train"

    @Test(
        "a call to an unknown target leaves no usage row; an oversized reservation's burst gets advice; the chart draws it after the start with distinct labels"
    )
    func adviceAfterABurst() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let from = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) - 120))

        let typo = try daemon.cli(["invoke", "nonexistent-model", "--prompt", "hello"])
        #expect(typo.status == 3, "\(typo)")
        #expect(typo.stderr.hasPrefix("berth: not-found: "), "\(typo)")

        #expect(try daemon.cli(["reserve", Self.serve, "--model", Self.model, "--units", "4", "--purpose", "inference"]).status == 0)
        #expect(try daemon.cli(["reserve", Self.quiet, "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let reserved = try daemon.reservation(Self.serve).start
        for prompt in ["what does the ledger keep", "who holds the units", "how many tokens a minute", "when does it end", "why"] {
            let call = try daemon.cli(["invoke", Self.serve, "--prompt", prompt, "--max-tokens", "8"])
            #expect(call.status == 0, "\(call)")
        }
        // Asked at once: a report to now holds every call answered before it, those of the
        // current second included.
        let window = ["--from", from, "--to", "now"]

        let report = try daemon.view(UsageReportView.self, ["usage"] + window)
        let keys = report.rows.map(\.key)
        #expect(!keys.contains { $0.contains("nonexistent") }, "\(keys)")
        #expect(Set(keys) == [Self.serve, Self.quiet], "\(keys)")
        #expect(report.totals.invocations == 5)

        // Advice in the JSON: four units for a few small calls, one would have served them.
        let busy = try #require(report.advice.first { $0.reservation == Self.serve })
        #expect(busy.modelUnits == 4)
        #expect(busy.neededModelUnits == 1)
        #expect(busy.verdict == "oversized")
        #expect(busy.throttled == 0)
        #expect(busy.monthlyCostChange == -43_800.0)  // three units of 20 an hour, 730 hours
        let share = try #require(busy.busiestMinuteShare)
        #expect(share > 0 && share < 0.25, "\(busy)")
        let idle = try #require(report.advice.first { $0.reservation == Self.quiet })
        #expect(idle.neededModelUnits == 0)
        #expect(idle.runningShare == 0)
        #expect(idle.monthlyCostChange == -14_600.0)

        // And as sentences.
        let printed = try daemon.cli(["usage", "--advice"] + window)
        #expect(printed.status == 0, "\(printed)")
        let lines = printed.stdout.split(separator: "\n").map(String.init)
        let percent = Int((share * 100).rounded())
        #expect(
            lines.contains {
                $0.hasPrefix("\(Self.serve): 4 model units, busiest minute used ")
                    && $0.hasSuffix("of the budget; 1 model unit would have served every call: saves 43,800.00 a month")
            },
            "\(printed.stdout) (\(percent) %)"
        )
        #expect(lines.contains("\(Self.quiet): 1 model unit, no job ran in the window: releasing it saves 14,600.00 a month"), "\(printed.stdout)")
        let csv = try daemon.cli(["usage", "--advice", "--format", "csv"] + window)
        #expect(csv.status == 2 && csv.stderr.contains("--advice prints sentences, not CSV"), "\(csv)")

        // The chart: no tokens before the reservation began, every row named in full.
        let file = daemon.directory.file("usage.svg")
        #expect(try daemon.cli(["usage", "--chart", file] + window).status == 0)
        let charted = try daemon.view(UsageReportView.self, ["usage", "--chart", file] + window)
        let bucketSeconds = charted.bucketSeconds
        let start = charted.from
        let row = try #require(charted.rows.first { $0.key == Self.serve })
        let tokens = row.series.tokensPerMinute
        #expect(tokens.contains { $0 > 0 })
        for (i, value) in tokens.enumerated() where start.addingTimeInterval(Double(i + 1) * bucketSeconds) <= reserved {
            #expect(value == 0, "bucket \(i) ends before the reservation began but draws \(value) tokens a minute")
        }
        let legend = LegendTexts()
        let parser = XMLParser(data: try #require(FileManager.default.contents(atPath: file)))
        parser.delegate = legend
        #expect(parser.parse())
        #expect(legend.texts.contains { $0.hasPrefix(Self.serve + " (") }, "\(legend.texts)")
        #expect(legend.texts.contains { $0.hasPrefix(Self.quiet + " (") }, "\(legend.texts)")
        #expect(Set(legend.texts).count == legend.texts.count)
    }
}

/// The texts of the chart's legend.
final class LegendTexts: NSObject, XMLParserDelegate {
    var texts: [String] = []
    private var depth = 0
    private var text = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:])
    {
        if name == "g" && attributes["class"] == "legend" { depth = 1 } else if depth > 0 { depth += 1 }
        text = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if depth > 1 && name == "text" { texts.append(text) }
        if depth > 0 { depth -= 1 }
    }
}
