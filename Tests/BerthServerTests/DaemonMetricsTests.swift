import BerthCore
import BerthStore
import Foundation
import Testing

@testable import BerthServer

/// The series `GET /metrics` writes, without a daemon: a census in, text out.
@Suite("Daemon metrics")
struct DaemonMetricsTests {
    func live(_ id: Int64, _ name: String, purpose: Purpose = .inference, restarts: Int = 0, queued: Int = 0) -> LedgerCensus.LiveReservation {
        LedgerCensus.LiveReservation(
            id: id,
            name: name,
            model: "m",
            purpose: purpose,
            status: .active,
            queuedJobs: queued,
            serveRestarts: restarts,
            tokensLastMinute: 500,
            budgetPerMinute: 2000
        )
    }

    func census(_ reservations: [LedgerCensus.LiveReservation]) -> LedgerCensus {
        LedgerCensus(
            units: [.init(pool: .dedicated, state: "leased", count: 3)],
            reservationsByStatus: [.active: reservations.count],
            jobsByStatus: [:],
            liveReservations: reservations
        )
    }

    /// Sample lines, `name{labels} value`, without comments.
    func samples(_ metrics: DaemonMetrics) -> Set<String> {
        Set(String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
    }

    @Test("gauges follow the census: zeros for every state, and an ended reservation's series are dropped")
    func gaugesFollowTheCensus() {
        let metrics = DaemonMetrics()
        metrics.refresh(from: census([live(1, "a", queued: 2), live(2, "b", purpose: .training)]))
        var lines = samples(metrics)
        #expect(lines.contains(#"berth_compute_units{pool="dedicated",state="leased"} 3.0"#))
        #expect(lines.contains(#"berth_compute_units{pool="shared",state="free"} 0.0"#))
        #expect(lines.contains(#"berth_reservations{status="active"} 2.0"#))
        #expect(lines.contains(#"berth_reservations{status="failed"} 0.0"#))
        #expect(lines.contains(#"berth_jobs{status="queued"} 0.0"#))
        #expect(lines.contains(#"berth_reservation_queued_jobs{reservation="a"} 2.0"#))
        #expect(lines.contains(#"berth_reservation_queued_jobs{reservation="b"} 0.0"#))
        #expect(lines.contains(#"berth_reservation_utilization_ratio{reservation="a"} 0.25"#))
        // Training reservations have no budget, no serve process and no calls.
        #expect(!lines.contains { $0.hasPrefix("berth_reservation_utilization_ratio{reservation=\"b\"}") })
        #expect(!lines.contains { $0.hasPrefix("berth_serve_restarts_total{reservation=\"b\"}") })
        // The first call of an inference reservation is a rise from a 0 already there.
        #expect(lines.contains(#"berth_invocations_total{reservation="a",model="m",tier="provisioned",outcome="served"} 0"#))

        metrics.refresh(from: census([live(2, "b", purpose: .training)]))
        lines = samples(metrics)
        #expect(!lines.contains { $0.contains(#"{reservation="a"}"#) })
        #expect(lines.contains(#"berth_reservation_queued_jobs{reservation="b"} 0.0"#))
    }

    @Test("the serve-restart counter catches up with the ledger's count, and a renamed reservation's starts afresh")
    func serveRestarts() {
        let metrics = DaemonMetrics()
        metrics.refresh(from: census([live(1, "a", restarts: 2)]))
        #expect(samples(metrics).contains(#"berth_serve_restarts_total{reservation="a"} 2"#))
        metrics.refresh(from: census([live(1, "a", restarts: 5)]))
        #expect(samples(metrics).contains(#"berth_serve_restarts_total{reservation="a"} 5"#))
        metrics.refresh(from: census([live(1, "z", restarts: 5), live(2, "a", restarts: 1)]))
        let lines = samples(metrics)
        #expect(lines.contains(#"berth_serve_restarts_total{reservation="z"} 5"#))
        #expect(lines.contains(#"berth_serve_restarts_total{reservation="a"} 1"#))
    }

    @Test("a call counts by reservation, model, tier and outcome; a target that named nothing adds no series of its own")
    func invocations() {
        let metrics = DaemonMetrics()
        func call(_ target: String, reservation: Int64?, tier: ServiceTier?, outcome: CallOutcome) -> InvocationRecord {
            InvocationRecord(
                at: Date(),
                owner: "alice",
                target: target,
                reservationID: reservation,
                model: reservation == nil ? target : "m",
                tier: tier,
                outcome: outcome,
                inputTokens: outcome == .served ? 4 : 0,
                outputTokens: outcome == .served ? 6 : 0,
                latencyMs: 12.5,
                cost: 0,
                budgetPerMinute: 0
            )
        }
        metrics.invocation(call("a", reservation: 1, tier: .provisioned, outcome: .served), targetResolved: true)
        metrics.invocation(call("a", reservation: 1, tier: nil, outcome: .throttled), targetResolved: true)
        metrics.invocation(call("a-typo", reservation: nil, tier: nil, outcome: .refused), targetResolved: false)
        metrics.invocation(call("some-other-typo", reservation: nil, tier: nil, outcome: .refused), targetResolved: false)
        let lines = samples(metrics)
        #expect(lines.contains(#"berth_invocations_total{reservation="a",model="m",tier="provisioned",outcome="served"} 1"#))
        #expect(lines.contains(#"berth_invocations_total{reservation="a",model="m",tier="",outcome="throttled"} 1"#))
        #expect(lines.contains(#"berth_throttled_invocations_total{reservation="a",model="m"} 1"#))
        #expect(lines.contains(#"berth_invocations_total{reservation="",model="",tier="",outcome="refused"} 2"#))
        #expect(!lines.contains { $0.contains("typo") })
        #expect(lines.contains(#"berth_invocation_tokens_total{reservation="a",model="m",tier="provisioned",type="input"} 4"#))
        #expect(lines.contains(#"berth_invocation_tokens_total{reservation="a",model="m",tier="provisioned",type="output"} 6"#))
        #expect(lines.contains(#"berth_invocation_duration_seconds_count{reservation="a",model="m",tier="provisioned"} 1"#))
        #expect(lines.contains(#"berth_invocation_duration_seconds_sum{reservation="a",model="m",tier="provisioned"} 0.0125"#))
        #expect(lines.contains(#"berth_invocation_duration_seconds_bucket{reservation="a",model="m",tier="provisioned",le="0.025"} 1"#))
        #expect(lines.contains(#"berth_invocation_duration_seconds_bucket{reservation="a",model="m",tier="provisioned",le="0.01"} 0"#))

        // The next call of the same kind adds to the same series.
        metrics.invocation(call("a", reservation: 1, tier: .provisioned, outcome: .served), targetResolved: true)
        let again = samples(metrics)
        #expect(again.contains(#"berth_invocations_total{reservation="a",model="m",tier="provisioned",outcome="served"} 2"#))
        #expect(again.contains(#"berth_invocation_tokens_total{reservation="a",model="m",tier="provisioned",type="output"} 12"#))
        #expect(again.contains(#"berth_invocation_duration_seconds_count{reservation="a",model="m",tier="provisioned"} 2"#))
        #expect(again.filter { $0.hasPrefix("berth_invocations_total{") }.count == 3)
    }
}
