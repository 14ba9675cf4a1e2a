import BerthCore
import BerthStore
public import Prometheus
import Synchronization

/// berthd's Prometheus series, all in one registry that `GET /metrics` writes out.
///
/// Two kinds. Counters and histograms of things that happen (calls, tokens, ledger writes) are
/// updated where they happen, costing a look-up in a table of their own and an atomic add.
/// Gauges of the ledger's state (units, reservations, jobs, queues, utilization) and the
/// serve-restart counter, which the ledger keeps, are set from one ledger read at scrape time,
/// so they are right straight after a restart and never drift from what `berth` shows.
///
/// berth's own series are made on the registry itself rather than through swift-metrics, so
/// that each family has its `# HELP` line: swift-prometheus makes swift-metrics' series without
/// help, and refuses to mix the two under one name. berthd bootstraps swift-metrics with a
/// `PrometheusMetricsFactory` on this same registry, so a library's metrics come out here too.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// Made once: every ledger write records into it without a lookup.
    private let ledgerWrites: DurationHistogram
    private let ledgerFull: Gauge
    /// Requests on the OpenAI listener turned away for a missing, wrong or revoked API key.
    let apiKeyRejections: Counter
    /// What the last scrape set, so the next one can drop series whose reservation is gone.
    private let scraped = Mutex(Scraped())
    /// The GPU series the last round of telemetry set (`gpus(_:)`): family → labels → gauge.
    let gpuGauges = Mutex<[String: [[String]: Gauge]]>([:])

    private struct Scraped {
        /// Family name → label values → gauge.
        var gauges: [String: [[String]: Gauge]] = [:]
        /// Reservation id → its serve-restart counter, under the name it had, and the ledger's
        /// count it last caught up with.
        var restarts: [Int64: (name: String, counter: Counter, seen: Int)] = [:]
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        ledgerWrites = registry.makeDurationHistogram(descriptor: Family.ledgerWriteDuration.descriptor, buckets: Family.ledgerWriteBuckets)
        ledgerFull = registry.makeGauge(descriptor: Family.ledgerFull.descriptor)
        apiKeyRejections = registry.makeCounter(descriptor: Family.apiKeyRejections.descriptor)
    }

    /// One family: its name (with the unit, and `_total` for counters) and its help line.
    struct Family: Sendable {
        let name: String
        let help: String

        var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }

        static let computeUnits = Family(
            name: "berth_compute_units",
            help: "Compute units by pool and state: leased (held by a reservation's lease), free, or retired (dropped from the config)."
        )
        static let reservations = Family(
            name: "berth_reservations",
            help: "Reservations in the ledger by status, finished ones included."
        )
        static let jobs = Family(name: "berth_jobs", help: "Jobs in the ledger by status, finished ones included.")
        static let reservationUnits = Family(
            name: "berth_reservation_units",
            help: "Compute units each live reservation holds now: who holds the pool."
        )
        static let runnerCPU = Family(
            name: "berth_reservation_runner_cpu_seconds",
            help:
                "CPU time the ended runners (jobs and serve processes) of each live reservation used, as the kernel counted it in their cgroups (0 where berthd could not confine them)."
        )
        static let runnerPeakMemory = Family(
            name: "berth_reservation_runner_peak_memory_bytes",
            help: "The most memory one ended runner (job or serve process) of each live reservation held, as the kernel counted it in its cgroup."
        )
        static let queuedJobs = Family(
            name: "berth_reservation_queued_jobs",
            help: "Jobs waiting in each pending or active reservation's queue."
        )
        static let utilization = Family(
            name: "berth_reservation_utilization_ratio",
            help: "Tokens an active inference reservation served in the last full minute, divided by its tokens per minute."
        )
        static let serveRestarts = Family(
            name: "berth_serve_restarts_total",
            help: "Times an inference reservation's serve process died and was started again, as the ledger counts them."
        )
        static let invocations = Family(
            name: "berth_invocations_total",
            help:
                "Real-time calls by reservation (empty on demand), model, tier that served it (empty if none) and outcome (served, throttled, refused, failed, cancelled)."
        )
        static let throttles = Family(
            name: "berth_throttled_invocations_total",
            help: "Calls refused because the reservation was over its tokens per minute."
        )
        static let tokens = Family(
            name: "berth_invocation_tokens_total",
            help: "Tokens of served calls (and of streamed calls cancelled midway, what they were sent), by type: input (the prompt) or output."
        )
        static let invocationDuration = Family(
            name: "berth_invocation_duration_seconds",
            help: "Time berthd took to answer a served call, the serve process's time included."
        )
        static let ledgerWriteDuration = Family(
            name: "berth_ledger_write_duration_seconds",
            help: "Time a write to the ledger took, from asking for the writer to the commit and its fsync (call records commit without one)."
        )

        static let ledgerFull = Family(
            name: "berth_ledger_full",
            help: "1 while the ledger's file system is full and every change is refused with 503 ledger-full, else 0."
        )

        /// From a fast call on a small model to a long generation.
        static let invocationBuckets: [Duration] = [
            .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60),
        ]
        /// A commit with `synchronous = FULL` is an fsync: a fraction of a millisecond on an SSD,
        /// far more on a busy disk.
        static let ledgerWriteBuckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        ]
    }

    // MARK: On the hot path

    /// Counts one metered call. A target that named nothing callable is counted without its
    /// name: callers choose those strings, and each would be a new series for the daemon's life.
    func invocation(_ call: InvocationRecord, targetResolved: Bool) {
        // Through a reservation, the target is its name.
        let key = CallSeries(
            reservation: call.reservationID == nil ? "" : call.target,
            model: targetResolved ? call.model : "",
            tier: call.tier?.rawValue ?? "",
            outcome: call.outcome
        )
        let series = callSeries.withLock { $0[key] } ?? makeSeries(key)
        series.calls.increment()
        series.throttles?.increment()
        guard let served = series.served else { return }
        served.inputTokens.increment(by: Int64(call.inputTokens))
        served.outputTokens.increment(by: Int64(call.outputTokens))
        // A cancelled call used tokens, but its duration is how long its client stayed.
        guard call.outcome == .served else { return }
        served.duration.record(.nanoseconds(Int64((call.latencyMs * 1_000_000).rounded())))
    }

    /// The series one kind of call adds to. Looking them up in the registry on every call (its
    /// lock, its label hashing, the help text checked again) was 2 % of berthd's time per call.
    private struct CallSeries: Hashable {
        var reservation: String
        var model: String
        var tier: String
        var outcome: CallOutcome
    }

    private struct CallHandles: Sendable {
        let calls: Counter
        let throttles: Counter?
        let served: (inputTokens: Counter, outputTokens: Counter, duration: DurationHistogram)?
    }

    /// The registry keeps these series for the daemon's life as well, so holding them here
    /// keeps nothing alive that it would drop.
    private let callSeries = Mutex<[CallSeries: CallHandles]>([:])

    private func makeSeries(_ key: CallSeries) -> CallHandles {
        let (reservation, model, tier) = (("reservation", key.reservation), ("model", key.model), ("tier", key.tier))
        let handles = CallHandles(
            calls: registry.makeCounter(
                descriptor: Family.invocations.descriptor,
                labels: [reservation, model, tier, ("outcome", key.outcome.rawValue)]
            ),
            throttles: key.outcome == .throttled
                ? registry.makeCounter(descriptor: Family.throttles.descriptor, labels: [reservation, model]) : nil,
            served: key.outcome.usedTokens
                ? (
                    registry.makeCounter(descriptor: Family.tokens.descriptor, labels: [reservation, model, tier, ("type", "input")]),
                    registry.makeCounter(descriptor: Family.tokens.descriptor, labels: [reservation, model, tier, ("type", "output")]),
                    registry.makeDurationHistogram(
                        descriptor: Family.invocationDuration.descriptor,
                        labels: [reservation, model, tier],
                        buckets: Family.invocationBuckets
                    )
                )
                : nil
        )
        callSeries.withLock { $0[key] = handles }
        return handles
    }

    /// For `Ledger(writeTimer:)`.
    func ledgerWrite(_ duration: Duration) {
        ledgerWrites.record(duration)
    }

    // MARK: At scrape time

    /// Whether the ledger's file system is full (`Ledger.isFull`), set at scrape time.
    func ledger(full: Bool) {
        ledgerFull.set(to: full ? 1 : 0)
    }

    /// Sets the ledger-state series from `census` and drops those of reservations that ended.
    /// A scrape runs it under its own lock: two scrapes at once never interleave their changes.
    func refresh(from census: LedgerCensus) {
        scraped.withLock { scraped in
            var fresh: [String: [[String]: Gauge]] = [:]
            func set(_ family: Family, _ labels: [(String, String)], to value: Double) {
                let gauge = registry.makeGauge(descriptor: family.descriptor, labels: labels)
                gauge.set(to: value)
                fresh[family.name, default: [:]][labels.map(\.1)] = gauge
            }

            // Every pool, state and status, zeros included: a series that comes and goes
            // cannot be told apart from a scrape that failed.
            let units = Dictionary(census.units.map { ("\($0.pool.rawValue)|\($0.state)", $0.count) }, uniquingKeysWith: +)
            for pool in UnitPool.allCases {
                for state in ["free", "leased", "retired"] {
                    set(.computeUnits, [("pool", pool.rawValue), ("state", state)], to: Double(units["\(pool.rawValue)|\(state)"] ?? 0))
                }
            }
            for status in ReservationStatus.allCases {
                set(.reservations, [("status", status.rawValue)], to: Double(census.reservationsByStatus[status] ?? 0))
            }
            for status in JobStatus.allCases {
                set(.jobs, [("status", status.rawValue)], to: Double(census.jobsByStatus[status] ?? 0))
            }
            for reservation in census.liveReservations {
                set(.queuedJobs, [("reservation", reservation.name)], to: Double(reservation.queuedJobs))
                set(.reservationUnits, [("reservation", reservation.name)], to: Double(reservation.heldUnits))
                set(.runnerCPU, [("reservation", reservation.name)], to: reservation.runnerCPUSeconds)
                set(.runnerPeakMemory, [("reservation", reservation.name)], to: Double(reservation.runnerPeakMemoryBytes))
                guard reservation.purpose == .inference else { continue }
                if reservation.status == .active {
                    let ratio = reservation.budgetPerMinute > 0 ? Double(reservation.tokensLastMinute) / Double(reservation.budgetPerMinute) : 0
                    set(.utilization, [("reservation", reservation.name)], to: ratio)
                }
                // Zeros for the series its calls will add, so the first call is a rise from 0
                // that rate() sees, not a series that appears from nowhere.
                let served = [("reservation", reservation.name), ("model", reservation.model), ("tier", ServiceTier.provisioned.rawValue)]
                _ = registry.makeCounter(descriptor: Family.invocations.descriptor, labels: served + [("outcome", CallOutcome.served.rawValue)])
                _ = registry.makeCounter(descriptor: Family.tokens.descriptor, labels: served + [("type", "input")])
                _ = registry.makeCounter(descriptor: Family.tokens.descriptor, labels: served + [("type", "output")])
                _ = registry.makeCounter(
                    descriptor: Family.throttles.descriptor,
                    labels: [("reservation", reservation.name), ("model", reservation.model)]
                )
            }
            for (family, series) in scraped.gauges {
                for (labels, gauge) in series where fresh[family]?[labels] == nil {
                    registry.unregisterGauge(gauge)
                }
            }
            scraped.gauges = fresh

            // Serve restarts: the ledger's count per reservation, which only grows, as a counter
            // that catches up with it. Ended or renamed reservations' counters go first, so a
            // name used again starts a counter of its own.
            let inference = Dictionary(
                census.liveReservations.filter { $0.purpose == .inference }.map { ($0.id, $0) },
                uniquingKeysWith: { a, _ in a }
            )
            for (id, known) in scraped.restarts where inference[id]?.name != known.name {
                registry.unregisterCounter(known.counter)
                scraped.restarts[id] = nil
            }
            for (id, reservation) in inference {
                let known =
                    scraped.restarts[id] ?? (
                        reservation.name,
                        registry.makeCounter(descriptor: Family.serveRestarts.descriptor, labels: [("reservation", reservation.name)]), 0
                    )
                if reservation.serveRestarts > known.seen {
                    known.counter.increment(by: Int64(reservation.serveRestarts - known.seen))
                }
                scraped.restarts[id] = (known.name, known.counter, max(known.seen, reservation.serveRestarts))
            }
        }
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return buffer
    }
}
