import BerthCore
import BerthWire
import Foundation
import Testing

@testable import BerthExecutors
@testable import BerthServer

/// What a runner is shown of the GPUs, and what telemetry makes of their samples.
@Suite("GPUs for runners")
struct GPURunnerTests {
    static let executor = LocalExecutor(runnerFolders: [], ledgerPath: "/var/lib/berth/berth.db")

    static func environment(_ units: [ComputeUnit]) -> [String: String] {
        executor.environment(for: RunnerLaunch(argv: ["runner"], units: units, identity: nil, logPath: "/dev/null"), path: "/usr/bin")
    }

    static func h200(_ index: Int) -> ComputeUnit {
        ComputeUnit(id: "gpu-\(index)", kind: "h200", device: index, pool: .dedicated, uuid: "GPU-000\(index)", memoryMiB: 143771)
    }

    @Test("GPUs go over by UUID to CUDA and the container runtime, in PCI order, and the count agrees with BERTH_DEVICES")
    func byUUID() {
        let env = Self.environment([Self.h200(3), Self.h200(5)])
        #expect(env["CUDA_VISIBLE_DEVICES"] == "GPU-0003,GPU-0005")
        #expect(env["NVIDIA_VISIBLE_DEVICES"] == "GPU-0003,GPU-0005")
        #expect(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID")
        #expect(env["BERTH_DEVICES"] == "3,5")
        #expect(env["BERTH_UNITS"] == "gpu-3,gpu-5")
        #expect(env["CUDA_VISIBLE_DEVICES"]?.split(separator: ",").count == env["BERTH_DEVICES"]?.split(separator: ",").count)
    }

    @Test("a GPU without a UUID goes over by its index")
    func byIndex() {
        let env = Self.environment([ComputeUnit(id: "g", kind: "a100-80gb", device: 2, pool: .dedicated)])
        #expect(env["CUDA_VISIBLE_DEVICES"] == "2")
        #expect(env["NVIDIA_VISIBLE_DEVICES"] == "2")
    }

    @Test("a runner on CPU units is shown no GPU at all, not the host's")
    func cpuOnly() {
        let env = Self.environment([ComputeUnit(id: "cpu-0", kind: "cpu", device: 0, pool: .dedicated, cpus: "0-3")])
        #expect(env["CUDA_VISIBLE_DEVICES"] == "")
        #expect(env["NVIDIA_VISIBLE_DEVICES"] == "void")
        #expect(env["CUDA_DEVICE_ORDER"] == nil)
    }

    @Test("a MIG instance goes over by its MIG UUID")
    func mig() {
        let env = Self.environment([ComputeUnit(id: "gpu-0-mig-1", kind: "a100-80gb-2g.20gb", device: 0, pool: .dedicated, uuid: "MIG-abc")])
        #expect(env["CUDA_VISIBLE_DEVICES"] == "MIG-abc")
    }

    @Test("a runner's units take UUID and memory from the config, also after the config dropped a unit that is still leased")
    func unitsFromTheDirectory() {
        var settings = JobSettings(
            runners: .init(train: [], batch: [], serve: []),
            limits: .init(),
            logDirectory: "/tmp",
            stopGrace: .seconds(1)
        )
        settings.confinement.enabled = false
        settings.hardware.replace(with: [Self.h200(0), Self.h200(1)])
        let catalog = [0, 1].map { (i: Int) in ComputeUnit(id: "gpu-\(i)", kind: "h200", device: i, pool: .dedicated) }
        #expect(settings.units(["gpu-1"], in: catalog).first?.uuid == "GPU-0001")
        #expect(settings.hardware.state(of: catalog[0]) == .present)
        settings.hardware.replace(with: [Self.h200(1)])
        #expect(settings.hardware.state(of: catalog[0]) == .lost)
        #expect(settings.units(["gpu-0"], in: catalog).first?.uuid == "GPU-0000", "a lost GPU keeps its UUID")
        #expect(settings.hardware.state(of: catalog[1]) == .present)
    }

    @Test("before the config is known, no unit is lost")
    func nothingLostBeforeTheConfig() {
        #expect(UnitDirectory().state(of: Self.h200(0)) == .present)
    }

    @Test("telemetry: per unit, per reservation, and idle time that starts when all its GPUs go quiet and resets when one works")
    func readings() {
        let units = [Self.h200(0), Self.h200(1), Self.h200(2)]
        let start = Date(timeIntervalSince1970: 1_000_000)
        var quiet: [String: Date] = [:]
        func round(_ percents: [Double], at seconds: Double) -> GPUReadings {
            let samples = Dictionary(
                uniqueKeysWithValues: percents.enumerated().map { i, percent in
                    ("gpu-\(i)", GPUSample(index: i, uuid: "GPU-000\(i)", utilizationPercent: percent, memoryUsedBytes: Int64(i) << 30))
                }
            )
            return GPUTelemetry.readings(
                samples,
                units: units,
                holders: ["gpu-0": "a", "gpu-1": "a", "gpu-2": "b"],
                now: start.addingTimeInterval(seconds),
                idleBelow: 5,
                quietSince: &quiet
            )
        }
        let first = round([1, 3, 80], at: 0)
        #expect(first.units.map(\.id) == ["gpu-0", "gpu-1", "gpu-2"])
        #expect(first.reservations.map(\.name) == ["a", "b"])
        #expect(first.reservations[0].utilizationPercent == 2)
        #expect(first.reservations[0].memoryUsedBytes == 1 << 30)
        #expect(first.reservations.map(\.idleSeconds) == [0, 0])
        #expect(round([0, 4.9, 80], at: 60).reservations.map(\.idleSeconds) == [60, 0])
        #expect(round([0, 5, 0], at: 90).reservations.map(\.idleSeconds) == [0, 0], "one GPU at the threshold is busy")
        #expect(round([0, 0, 0], at: 100).reservations.map(\.idleSeconds) == [0, 10])
        #expect(round([0, 0, 0], at: 130).reservations.map(\.idleSeconds) == [30, 40])
    }
}
