extension DaemonMetrics.Family {
    /// Every family berthd's own code makes. A dashboard or an alert may use these names and
    /// no others (docs/grafana/berth.json is checked against them).
    static let all: [DaemonMetrics.Family] = [
        computeUnits, reservations, jobs, reservationUnits, runnerCPU, runnerPeakMemory, queuedJobs, utilization, serveRestarts, invocations,
        throttles, tokens,
        invocationDuration, ledgerWriteDuration, ledgerFull, gpuUtilization, gpuMemoryUsed, reservationGPUUtilization,
        reservationGPUMemoryUsed, reservationGPUIdle, apiKeyRejections,
    ]
}

extension DaemonMetrics {
    /// The names of the families in `GET /metrics`, as `# TYPE` lines give them (a histogram's
    /// samples add `_bucket`, `_sum` and `_count`).
    public static var familyNames: [String] { Family.all.map(\.name) }

    /// The histogram families among them.
    public static var histogramNames: [String] { [Family.invocationDuration.name, Family.ledgerWriteDuration.name] }
}
