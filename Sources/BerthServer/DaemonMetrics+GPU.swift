import Prometheus

extension DaemonMetrics.Family {
    static let gpuUtilization = Self(
        name: "berth_gpu_utilization_ratio",
        help: "Share of the last sample period a kernel ran on each GPU unit (NVML's or nvidia-smi's utilization.gpu, 0 to 1)."
    )
    static let gpuMemoryUsed = Self(name: "berth_gpu_memory_used_bytes", help: "Memory in use on each GPU unit at the last sample.")
    static let reservationGPUUtilization = Self(
        name: "berth_reservation_gpu_utilization_ratio",
        help: "Mean utilization of the GPU units each reservation holds, at the last sample."
    )
    static let reservationGPUMemoryUsed = Self(
        name: "berth_reservation_gpu_memory_used_bytes",
        help: "Memory in use on the GPU units each reservation holds, at the last sample."
    )
    static let reservationGPUIdle = Self(
        name: "berth_reservation_gpu_idle_seconds",
        help:
            "How long every GPU unit a reservation holds has been under [discovery] idle_gpu_percent, whether or not a job or serve process is up; 0 while any is busy."
    )
}

extension DaemonMetrics {
    /// Sets the GPU series from one round of telemetry and drops those of units no longer
    /// sampled and reservations that hold no sampled GPU any more.
    func gpus(_ readings: GPUReadings) {
        gpuGauges.withLock { gauges in
            var fresh: [String: [[String]: Gauge]] = [:]
            func set(_ family: Family, _ labels: [(String, String)], to value: Double) {
                let gauge = registry.makeGauge(descriptor: family.descriptor, labels: labels)
                gauge.set(to: value)
                fresh[family.name, default: [:]][labels.map(\.1)] = gauge
            }
            for unit in readings.units {
                let labels = [("unit", unit.id), ("kind", unit.kind)]
                set(.gpuUtilization, labels, to: unit.sample.utilizationPercent / 100)
                set(.gpuMemoryUsed, labels, to: Double(unit.sample.memoryUsedBytes))
            }
            for reservation in readings.reservations {
                let labels = [("reservation", reservation.name)]
                set(.reservationGPUUtilization, labels, to: reservation.utilizationPercent / 100)
                set(.reservationGPUMemoryUsed, labels, to: Double(reservation.memoryUsedBytes))
                set(.reservationGPUIdle, labels, to: reservation.idleSeconds)
            }
            for (family, series) in gauges {
                for (labels, gauge) in series where fresh[family]?[labels] == nil {
                    registry.unregisterGauge(gauge)
                }
            }
            gauges = fresh
        }
    }
}
