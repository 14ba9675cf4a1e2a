import BerthCore
import BerthTestSupport
import Testing

/// nvidia-smi's output, as recorded on GPU machines, read into units; and the kinds, CPU
/// slices and TOML made from them.
@Suite("GPU discovery")
struct GPUDiscoveryTests {
    @Test("one H200 is one unit with its device, UUID and memory")
    func oneH200() throws {
        let gpus = try GPUDiscovery.parse(inventory: FakeNvidiaSMI.oneH200, list: nil)
        #expect(
            GPUDiscovery.units(gpus, pool: .dedicated) == [
                ComputeUnit(
                    id: "gpu-0",
                    kind: "h200",
                    device: 0,
                    pool: .dedicated,
                    uuid: "GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b6c",
                    memoryMiB: 143771
                )
            ]
        )
    }

    @Test("an eight-GPU box is eight units, gpu-0 to gpu-7, in index order")
    func eightGPUs() throws {
        let shuffled = FakeNvidiaSMI.eightH200.split(separator: "\n").reversed().joined(separator: "\n")
        let units = GPUDiscovery.units(try GPUDiscovery.parse(inventory: shuffled, list: nil), pool: .shared)
        #expect(units.map(\.id) == (0..<8).map { "gpu-\($0)" })
        #expect(units.map(\.device) == Array(0..<8))
        #expect(Set(units.map(\.uuid)).count == 8)
        #expect(units.allSatisfy { $0.kind == "h200" && $0.pool == .shared && $0.memoryMiB == 143771 })
    }

    @Test("a GPU in MIG mode gives one unit per MIG instance, handed over by the instance's UUID")
    func mig() throws {
        let units = GPUDiscovery.units(try GPUDiscovery.parse(inventory: FakeNvidiaSMI.migInventory, list: FakeNvidiaSMI.migList), pool: .dedicated)
        #expect(units.map(\.id) == ["gpu-0-mig-0", "gpu-0-mig-1", "gpu-0-mig-2", "gpu-1"])
        #expect(units.map(\.kind) == ["a100-80gb-3g.40gb", "a100-80gb-2g.20gb", "a100-80gb-1g.10gb", "a100-80gb"])
        #expect(units[0].uuid == "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f")
        #expect(units[0].device == 0)
        #expect(units[3].uuid == "GPU-9a1e6f20-4b3c-11ee-8c99-0242ac120002")
    }

    @Test("no GPU is an error that says what to check")
    func noGPU() {
        #expect(throws: GPUDiscoveryError.self) { try GPUDiscovery.parseInventory(FakeNvidiaSMI.noDevices) }
        do {
            _ = try GPUDiscovery.parseInventory(FakeNvidiaSMI.noDevices)
        } catch {
            #expect(error.description.contains("found no GPU"))
            #expect(error.description.contains("[discovery] gpus"))
        }
    }

    @Test("a line that is not index, uuid, name, memory is an error naming the line")
    func badLine() {
        do {
            _ = try GPUDiscovery.parseInventory("0, GPU-1, NVIDIA H200\n")
            Issue.record("a three-field line was read")
        } catch {
            #expect(error.description.contains("'0, GPU-1, NVIDIA H200'"))
        }
    }

    @Test("memory the driver cannot tell leaves memory_mib out")
    func memoryNotAvailable() throws {
        let gpus = try GPUDiscovery.parseInventory("0, GPU-1, NVIDIA H200, [N/A]\n")
        #expect(gpus.first?.memoryMiB == nil)
    }

    @Test(
        "a GPU's kind comes from its name",
        arguments: [
            ("NVIDIA H200", "h200"),
            ("NVIDIA H200 NVL", "h200-nvl"),
            ("NVIDIA H100 80GB HBM3", "h100-80gb"),
            ("NVIDIA H100 PCIe", "h100"),
            ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
            ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
            ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
            ("NVIDIA A100 80GB PCIe", "a100-80gb"),
            ("Tesla V100-SXM2-16GB", "v100-16gb"),
            ("Tesla T4", "t4"),
            ("NVIDIA L40S", "l40s"),
            ("NVIDIA A10G", "a10g"),
            ("NVIDIA GeForce RTX 4090", "rtx-4090"),
            ("NVIDIA RTX A6000", "rtx-a6000"),
            ("NVIDIA B200", "b200"),
            ("NVIDIA GH200 480GB", "gh200-480gb"),
            ("NVIDIA", "gpu"),
        ]
    )
    func kinds(name: String, kind: String) {
        #expect(GPUDiscovery.kind(forName: name) == kind)
    }

    @Test("CPU units are slices of cores, the rest named apart")
    func cpuSlices() throws {
        let (units, rest) = try GPUDiscovery.cpuUnits(cores: "0-9", coresPerUnit: 4, pool: .dedicated)
        #expect(
            units == [
                ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated, cpus: "0-3"),
                ComputeUnit(id: "cpu-1", kind: "cpu", pool: .dedicated, cpus: "4-7"),
            ]
        )
        #expect(rest == [8, 9])
        let (scattered, _) = try GPUDiscovery.cpuUnits(cores: "0,2,4-5", coresPerUnit: 2, pool: .shared)
        #expect(scattered.map(\.cpus) == ["0,2", "4-5"])
        #expect(throws: GPUDiscoveryError.self) { try GPUDiscovery.cpuUnits(cores: "4-1", coresPerUnit: 1, pool: .dedicated) }
        #expect(throws: GPUDiscoveryError.self) { try GPUDiscovery.cpuUnits(cores: "0-3", coresPerUnit: 0, pool: .dedicated) }
    }

    @Test("the TOML has every key of each unit")
    func toml() throws {
        let units =
            GPUDiscovery.units(try GPUDiscovery.parse(inventory: FakeNvidiaSMI.oneH200, list: nil), pool: .dedicated)
            + [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated, cpus: "0-3")]
        #expect(
            GPUDiscovery.toml(units) == """
                [[units]]
                id = "gpu-0"
                kind = "h200"
                device = 0
                uuid = "GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b6c"
                memory_mib = 143771
                pool = "dedicated"

                [[units]]
                id = "cpu-0"
                kind = "cpu"
                cpus = "0-3"
                pool = "dedicated"

                """
        )
    }

    @Test("telemetry is read per GPU and matched to units by UUID, else by index; [N/A] is left out")
    func telemetry() throws {
        let samples = try GPUDiscovery.parseTelemetry(
            """
            0, GPU-a, 87, 40960
            1, GPU-b, 0, 0
            2, GPU-c, [N/A], [N/A]

            """
        )
        #expect(samples.count == 2)
        #expect(samples[0] == GPUSample(index: 0, uuid: "GPU-a", utilizationPercent: 87, memoryUsedBytes: 40960 * 1_048_576))
        let units = [
            ComputeUnit(id: "by-uuid", kind: "h200", device: 7, pool: .dedicated, uuid: "GPU-b"),
            ComputeUnit(id: "by-index", kind: "h200", device: 0, pool: .dedicated),
            ComputeUnit(id: "gone", kind: "h200", device: 1, pool: .dedicated, uuid: "GPU-z"),
            ComputeUnit(id: "cpu", kind: "cpu", device: 1, pool: .dedicated),
        ]
        let matched = GPUDiscovery.match(samples, to: units)
        #expect(matched["by-uuid"]?.utilizationPercent == 0)
        #expect(matched["by-index"]?.utilizationPercent == 87)
        #expect(matched["gone"] == nil)
        #expect(matched["cpu"] == nil)
    }
}
