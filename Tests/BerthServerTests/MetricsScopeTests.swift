import BerthStore
import Testing

@testable import BerthServer

/// What the socket's `/metrics` shows a user who is not an admin: series of their own
/// reservations and models, and those that name nobody's.
@Suite("Metrics scope")
struct MetricsScopeTests {
    let scope = MetricsScope(owner: "alice", reservations: ["alices"], models: ["base-v1", "alices-tuned"])

    struct Line: Sendable, CustomTestStringConvertible {
        var sentence: String
        var line: String
        var shown: Bool
        var testDescription: String { sentence }
    }

    @Test(
        "Each sample line is shown or left out by the reservation, model and owner it names",
        arguments: [
            Line(sentence: "a series with no labels names nobody", line: "berth_ledger_full 0.0", shown: true),
            Line(sentence: "units by pool and state name nobody", line: #"berth_compute_units{pool="dedicated",state="free"} 8.0"#, shown: true),
            Line(sentence: "her own reservation's gauge is shown", line: #"berth_reservation_queued_jobs{reservation="alices"} 0.0"#, shown: true),
            Line(sentence: "another user's reservation is left out", line: #"berth_reservation_queued_jobs{reservation="bobs"} 0.0"#, shown: false),
            Line(
                sentence: "on-demand calls to a base model are shown",
                line: #"berth_invocations_total{reservation="",model="base-v1",tier="on-demand",outcome="served"} 3"#,
                shown: true
            ),
            Line(
                sentence: "a call through another user's reservation is left out",
                line: #"berth_invocations_total{reservation="bobs",model="base-v1",tier="provisioned",outcome="served"} 1"#,
                shown: false
            ),
            Line(
                sentence: "her own custom model is shown",
                line: #"berth_invocations_total{reservation="alices",model="alices-tuned",tier="provisioned",outcome="served"} 1"#,
                shown: true
            ),
            Line(
                sentence: "another user's custom model is left out even with no reservation",
                line: #"berth_invocations_total{reservation="",model="bobs-tuned",tier="",outcome="refused"} 1"#,
                shown: false
            ),
            Line(
                sentence: "a call whose target named nothing is shown, empty labels naming nobody",
                line: #"berth_invocations_total{reservation="",model="",tier="",outcome="refused"} 1"#,
                shown: true
            ),
            Line(
                sentence: "a histogram bucket follows its series",
                line: #"berth_invocation_duration_seconds_bucket{reservation="bobs",model="base-v1",tier="provisioned",le="0.005"} 0"#,
                shown: false
            ),
            Line(sentence: "an owner label must be hers", line: #"berth_x{owner="bob"} 1"#, shown: false),
            Line(sentence: "her own owner label is shown", line: #"berth_x{owner="alice"} 1"#, shown: true),
            Line(sentence: "an escaped quote does not end the value early", line: #"berth_x{reservation="al\"ices",a="b"} 1"#, shown: false),
            Line(sentence: "a line that cannot be read is left out", line: #"berth_x{reservation="alices} 1"#, shown: false),
        ]
    )
    func sampleLine(_ case: Line) {
        let exposition = Array("# HELP berth_x Help.\n# TYPE berth_x gauge\n\(`case`.line)\n".utf8)
        let kept = String(decoding: scope.filter(exposition), as: UTF8.self)
        #expect(kept.hasPrefix("# HELP berth_x Help.\n# TYPE berth_x gauge\n"))
        #expect(kept.contains(`case`.line) == `case`.shown, "\(kept)")
    }

    @Test("label values are unescaped as the exposition format escapes them")
    func unescapes() throws {
        let labels = try #require(MetricsScope.labels(of: ArraySlice(#"berth_x{a="x\\y",b="say \"hi\"",c="one\ntwo"} 1"#.utf8)))
        #expect(labels == ["a": #"x\y"#, "b": #"say "hi""#, "c": "one\ntwo"])
        #expect(MetricsScope.labels(of: ArraySlice("berth_x 1".utf8)) == [:])
        #expect(MetricsScope.labels(of: ArraySlice(#"berth_x{a="1",a="2"} 1"#.utf8)) == nil)
    }

    @Test("the real registry's exposition, filtered, keeps her series and drops the others'")
    func realExposition() {
        let metrics = DaemonMetrics()
        metrics.refresh(
            from: LedgerCensus(
                units: [],
                reservationsByStatus: [:],
                jobsByStatus: [:],
                liveReservations: ["alices", "bobs"].enumerated().map { index, name in
                    LedgerCensus.LiveReservation(
                        id: Int64(index + 1),
                        name: name,
                        model: "base-v1",
                        purpose: .inference,
                        status: .active,
                        queuedJobs: 0,
                        serveRestarts: 0,
                        tokensLastMinute: 0,
                        budgetPerMinute: 100
                    )
                }
            )
        )
        let whole = String(decoding: metrics.exposition(), as: UTF8.self)
        let hers = String(decoding: scope.filter(metrics.exposition()), as: UTF8.self)
        #expect(whole.contains("\"bobs\"") && whole.contains("\"alices\""))
        #expect(!hers.contains("bobs"))
        #expect(hers.contains(#"berth_reservation_utilization_ratio{reservation="alices"} 0.0"#))
        // Every family is still declared, in the same order.
        #expect(hers.split(separator: "\n").filter { $0.hasPrefix("#") } == whole.split(separator: "\n").filter { $0.hasPrefix("#") })
    }
}
