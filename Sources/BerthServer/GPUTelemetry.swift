public import BerthConfig
public import BerthCore
public import BerthStore
public import Foundation
public import Logging
import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Samples every GPU unit's utilization and memory in use every `[discovery] sample_seconds`,
/// and sets the GPU series of `/metrics` from them: per unit, and per reservation over the
/// GPUs it holds, with how long those GPUs have all been under `idle_gpu_percent`, so a stuck
/// trainer or an unused model server on a reserved GPU shows up while its process is up.
///
/// NVML is asked where `libnvidia-ml.so.1` loads: its interface is stable across drivers,
/// while nvidia-smi's text is not promised to be. Elsewhere the configured nvidia-smi is run.
public final class GPUTelemetry: Service, Sendable {
    private let hardware: UnitDirectory
    private let ledger: Ledger
    private let metrics: DaemonMetrics
    private let discovery: DaemonConfig.Discovery
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let source: any GPUSampleSource
    /// Per reservation: since when all its GPUs have been under the threshold.
    private let quietSince = Mutex<[String: Date]>([:])
    /// Whether the last sample failed, so a failing source is logged once per episode.
    private let failing = Atomic<Bool>(false)

    public init(
        hardware: UnitDirectory,
        ledger: Ledger,
        metrics: DaemonMetrics,
        discovery: DaemonConfig.Discovery,
        clock: @escaping @Sendable () -> Date,
        logger: Logger,
        source: (any GPUSampleSource)? = nil
    ) {
        self.hardware = hardware
        self.ledger = ledger
        self.metrics = metrics
        self.discovery = discovery
        self.clock = clock
        self.logger = logger
        self.source = source ?? NVMLSampleSource.load() ?? NvidiaSMISampleSource(program: discovery.nvidiaSMI)
    }

    /// Whether any unit berthd knows is a GPU: without one, there is nothing to watch.
    public static func isNeeded(_ units: [ComputeUnit], discovery: DaemonConfig.Discovery) -> Bool {
        discovery.gpus != nil || units.contains(where: \.isGPU)
    }

    public func run() async throws {
        logger.info("GPU telemetry", metadata: ["source": "\(source.name)", "every_seconds": "\(discovery.sampleSeconds)"])
        // Quiet spans a previous berthd left open end now: nothing watched the GPUs meanwhile.
        _ = try? await ledger.write { [now = clock()] tx in try tx.closeGPUQuietSpans(at: now) }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.sampleOnce()
                try await Task.sleep(for: .milliseconds(Int64(self.discovery.sampleSeconds * 1000)))
            }
        }
        _ = try? await ledger.write { [now = clock()] tx in try tx.closeGPUQuietSpans(at: now) }
    }

    /// One sample of every GPU unit, into the series.
    func sampleOnce() async {
        let units = hardware.units.values.filter(\.isGPU).sorted { $0.id < $1.id }
        guard !units.isEmpty else {
            metrics.gpus(GPUReadings(units: [], reservations: []))
            return
        }
        let samples: [GPUSample]
        do {
            let source = self.source
            // nvidia-smi blocks for tens of milliseconds; never on the cooperative pool.
            samples = try await NIOThreadPool.singleton.runIfActive { try source.sample(units) }
            if failing.exchange(false, ordering: .relaxed) { logger.notice("GPU telemetry works again", metadata: ["source": "\(source.name)"]) }
        } catch {
            if !failing.exchange(true, ordering: .relaxed) {
                logger.warning(
                    "cannot sample the GPUs; their series are left out until it works",
                    metadata: ["source": "\(source.name)", "error": "\(error)"]
                )
            }
            metrics.gpus(GPUReadings(units: [], reservations: []))
            return
        }
        let holders = (try? await ledger.read { tx in try tx.unitHolders() }) ?? [:]
        let now = clock()
        let (readings, quieted, woke) = quietSince.withLock { quiet in
            let before = quiet
            let readings = Self.readings(
                GPUDiscovery.match(samples, to: units),
                units: units,
                holders: holders,
                now: now,
                idleBelow: discovery.idleGPUPercent,
                quietSince: &quiet
            )
            return (readings, quiet.filter { before[$0.key] == nil }, before.keys.filter { quiet[$0] == nil })
        }
        metrics.gpus(readings)
        // Quiet spans into the ledger as they begin and end, for the usage report's idle flag.
        guard !quieted.isEmpty || !woke.isEmpty else { return }
        do {
            try await ledger.write { tx in
                for (name, since) in quieted { try tx.openGPUQuietSpan(reservation: name, since: since) }
                for name in woke { try tx.closeGPUQuietSpan(reservation: name, at: now) }
            }
        } catch {
            logger.warning("cannot record GPU quiet spans", metadata: ["error": "\(error)"])
        }
    }

    /// The series' values: each sampled unit, and each reservation holding sampled GPUs.
    /// `quietSince` carries, from one round to the next, since when each reservation's GPUs
    /// have all been under `idleBelow` percent.
    static func readings(
        _ matched: [String: GPUSample],
        units: [ComputeUnit],
        holders: [String: String],
        now: Date,
        idleBelow threshold: Double,
        quietSince quiet: inout [String: Date]
    ) -> GPUReadings {
        var byReservation: [String: [GPUSample]] = [:]
        let unitReadings = units.compactMap { unit -> GPUReadings.Unit? in
            guard let sample = matched[unit.id] else { return nil }
            if let holder = holders[unit.id] { byReservation[holder, default: []].append(sample) }
            return GPUReadings.Unit(id: unit.id, kind: unit.kind, sample: sample)
        }
        let reservations = byReservation.keys.sorted().map { name in
            let samples = byReservation[name]!
            let isQuiet = samples.allSatisfy { $0.utilizationPercent < threshold }
            let since = isQuiet ? (quiet[name] ?? now) : nil
            quiet[name] = since
            return GPUReadings.Reservation(
                name: name,
                gpus: samples.count,
                utilizationPercent: samples.map(\.utilizationPercent).reduce(0, +) / Double(samples.count),
                memoryUsedBytes: samples.map(\.memoryUsedBytes).reduce(0, +),
                idleSeconds: since.map { max(0, now.timeIntervalSince($0)) } ?? 0
            )
        }
        for name in quiet.keys where byReservation[name] == nil { quiet[name] = nil }
        return GPUReadings(units: unitReadings, reservations: reservations)
    }
}

/// What one round of sampling found, as the series show it.
struct GPUReadings: Sendable, Equatable {
    struct Unit: Sendable, Equatable {
        var id: String
        var kind: String
        var sample: GPUSample
    }

    struct Reservation: Sendable, Equatable {
        var name: String
        var gpus: Int
        /// The mean over its GPUs.
        var utilizationPercent: Double
        var memoryUsedBytes: Int64
        /// How long all its GPUs have been under the idle threshold; 0 while any is busy.
        var idleSeconds: Double
    }

    var units: [Unit]
    var reservations: [Reservation]
}

/// Where samples come from: NVML, or nvidia-smi.
public protocol GPUSampleSource: Sendable {
    var name: String { get }
    /// One sample of each unit it can read. Blocks.
    func sample(_ units: [ComputeUnit]) throws -> [GPUSample]
}

/// The configured nvidia-smi, run once per round for every GPU.
public struct NvidiaSMISampleSource: GPUSampleSource {
    public let program: String
    public var name: String { "nvidia-smi (\(program))" }

    public init(program: String) {
        self.program = program
    }

    public func sample(_ units: [ComputeUnit]) throws -> [GPUSample] {
        let resolved = try GPUInventory.resolve(program)
        return try GPUDiscovery.parseTelemetry(try GPUInventory.run(resolved, GPUDiscovery.telemetryArguments))
    }
}

/// NVML, loaded with `dlopen` so berthd neither links against the driver nor needs it: a
/// machine without NVIDIA's library runs the same binary.
public final class NVMLSampleSource: GPUSampleSource, @unchecked Sendable {
    // The C signatures of the few NVML calls used; an NVML handle is an opaque pointer and
    // nvmlReturn_t is an int, 0 on success.
    private typealias Initialize = @convention(c) () -> Int32
    private typealias HandleByUUID = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias HandleByIndex = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    /// nvmlUtilization_t is two unsigned ints: gpu, memory (percent).
    private typealias Utilization = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>) -> Int32
    /// nvmlMemory_t is three unsigned long longs: total, free, used (bytes).
    private typealias Memory = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>) -> Int32

    // Immutable after `load`, and NVML's calls are thread-safe: hence @unchecked Sendable.
    private let library: UnsafeMutableRawPointer
    private let handleByUUID: HandleByUUID
    private let handleByIndex: HandleByIndex
    private let utilization: Utilization
    private let memory: Memory

    public var name: String { "NVML" }

    private init(library: UnsafeMutableRawPointer, handleByUUID: HandleByUUID, handleByIndex: HandleByIndex, utilization: Utilization, memory: Memory)
    {
        self.library = library
        self.handleByUUID = handleByUUID
        self.handleByIndex = handleByIndex
        self.utilization = utilization
        self.memory = memory
    }

    /// NVML, initialised, or nil where the library is absent or will not start (no driver).
    public static func load(path: String = "libnvidia-ml.so.1") -> NVMLSampleSource? {
        guard let library = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(library, name).map { unsafeBitCast($0, to: type) }
        }
        guard let initialize = symbol("nvmlInit_v2", as: Initialize.self),
            let byUUID = symbol("nvmlDeviceGetHandleByUUID", as: HandleByUUID.self),
            let byIndex = symbol("nvmlDeviceGetHandleByIndex_v2", as: HandleByIndex.self),
            let utilization = symbol("nvmlDeviceGetUtilizationRates", as: Utilization.self),
            let memory = symbol("nvmlDeviceGetMemoryInfo", as: Memory.self),
            initialize() == 0
        else {
            dlclose(library)
            return nil
        }
        return NVMLSampleSource(library: library, handleByUUID: byUUID, handleByIndex: byIndex, utilization: utilization, memory: memory)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    public func sample(_ units: [ComputeUnit]) throws -> [GPUSample] {
        var samples: [GPUSample] = []
        var failures: [String] = []
        for unit in units where unit.isGPU {
            var device: OpaquePointer?
            let found =
                if let uuid = unit.uuid { uuid.withCString { handleByUUID($0, &device) } } else { handleByIndex(UInt32(unit.device ?? 0), &device) }
            guard found == 0 else {
                failures.append("\(unit.id): no such device (NVML error \(found))")
                continue
            }
            var rates: [UInt32] = [0, 0]
            var bytes: [UInt64] = [0, 0, 0]
            let read = utilization(device, &rates)
            let held = memory(device, &bytes)
            // A MIG instance has no utilization of its own (NVML answers "not supported"):
            // left out, like nvidia-smi's [N/A].
            guard read == 0, held == 0 else { continue }
            samples.append(GPUSample(index: unit.device, uuid: unit.uuid, utilizationPercent: Double(rates[0]), memoryUsedBytes: Int64(bytes[2])))
        }
        if samples.isEmpty, !failures.isEmpty {
            throw Failure(description: failures.joined(separator: "; "))
        }
        return samples
    }
}
