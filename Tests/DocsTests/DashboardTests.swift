import BerthClient
import BerthServer
import BerthTestSupport
import Foundation
import Testing

/// docs/grafana/berth.json queries only series berthd exports.
@Suite("Grafana dashboard", .serialized)
struct DashboardTests {
    /// Every `expr` in the dashboard, at any depth.
    static func expressions() throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repository.root + "/docs/grafana/berth.json"))
        var found: [String] = []
        func walk(_ value: Any) {
            if let object = value as? [String: Any] {
                for (key, child) in object {
                    if key == "expr", let text = child as? String { found.append(text) } else { walk(child) }
                }
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try JSONSerialization.jsonObject(with: data))
        return found
    }

    /// The metric names in a PromQL expression: words that start `berth_`.
    static func metricNames(in expression: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: #"\bberth_[a-z_]+"#)
        return pattern.matches(in: expression, range: NSRange(expression.startIndex..., in: expression)).compactMap {
            Range($0.range, in: expression).map { String(expression[$0]) }
        }
    }

    /// A sample name's family: a histogram's `_bucket`, `_sum` and `_count` belong to it.
    static func family(of name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if DaemonMetrics.histogramNames.contains(base) { return base }
        }
        return name
    }

    @Test("every metric the dashboard queries is one berthd exports")
    func dashboardUsesExportedNames() throws {
        let expressions = try Self.expressions()
        #expect(expressions.count >= 8, "the dashboard has \(expressions.count) queries")
        let exported = Set(DaemonMetrics.familyNames)
        var unknown: [String] = []
        for expression in expressions {
            let names = Self.metricNames(in: expression)
            #expect(!names.isEmpty, "a query that reads no berth series: \(expression)")
            unknown += names.filter { !exported.contains(Self.family(of: $0)) }
        }
        #expect(unknown.isEmpty, "not exported by berthd: \(Set(unknown).sorted())")
    }

    @Test("the checker refuses a name berthd does not export")
    func checkerRefusesUnknown() {
        #expect(Self.family(of: "berth_invocation_duration_seconds_bucket") == "berth_invocation_duration_seconds")
        #expect(!DaemonMetrics.familyNames.contains(Self.family(of: "berth_compute_units_bucket")))
        #expect(!DaemonMetrics.familyNames.contains("berth_invocations"))
    }

    @Test("the list of families names every berth family the real daemon's /metrics has")
    func familyListMatchesDaemon() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        defer { daemon.stop() }
        let reserved = try daemon.cli(["reserve", "inf", "--model", "amazon.nova-micro-v1:0", "--units", "1", "--purpose", "inference"])
        try #require(reserved.status == 0, "\(reserved)")
        let called = try daemon.cli(["invoke", "inf", "--prompt", "what does the ledger keep", "--max-tokens", "4"])
        try #require(called.status == 0, "\(called)")
        let answer = try await SocketClient(socketPath: daemon.socket).send(method: "GET", path: "/metrics")
        let text = String(decoding: answer.body, as: UTF8.self)
        let scraped = text.components(separatedBy: "\n").compactMap { line -> String? in
            guard line.hasPrefix("# TYPE berth_") else { return nil }
            return line.split(separator: " ")[2].description
        }
        #expect(scraped.count >= 8, "\(text.prefix(2000))")
        let listed = Set(DaemonMetrics.familyNames)
        #expect(Set(scraped).subtracting(listed).isEmpty, "exported but missing from DaemonMetrics.familyNames: \(Set(scraped).subtracting(listed))")
    }
}
