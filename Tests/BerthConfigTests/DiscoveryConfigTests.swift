import BerthCore
import BerthTestSupport
import Testing

@testable import BerthConfig

/// `[discovery]` and the GPU keys of `[[units]]`.
@Suite("Discovery config")
struct DiscoveryConfigTests {
    @Test("what discover-units prints pastes into a valid config, UUIDs and memory included")
    func discoveredTOMLParses() throws {
        let units =
            GPUDiscovery.units(try GPUDiscovery.parse(inventory: FakeNvidiaSMI.migInventory, list: FakeNvidiaSMI.migList), pool: .dedicated)
            + (try GPUDiscovery.cpuUnits(cores: "0-7", coresPerUnit: 4, pool: .shared)).units
        let config = try DaemonConfig.parse(ConfigFixture.config(units: GPUDiscovery.toml(units)))
        #expect(config.units == units)
    }

    @Test("a config with [discovery] gpus needs no [[units]], and its models are not held to a pool not yet found")
    func discoveryAloneIsValid() throws {
        let toml = ConfigFixture.config(
            daemon:
                "[discovery]\ngpus = \"nvidia\"\nnvidia_smi = \"bin/nvidia-smi\"\nsample_seconds = 0.5\nidle_gpu_percent = 10\npool = \"shared\"\n",
            units: ""
        )
        let config = try DaemonConfig.parse(toml, sourcePath: "/etc/berth/berthd.toml")
        #expect(config.units.isEmpty)
        #expect(config.discovery.gpus == .nvidia)
        #expect(config.discovery.nvidiaSMI == "/etc/berth/bin/nvidia-smi")
        #expect(config.discovery.sampleSeconds == 0.5)
        #expect(config.discovery.idleGPUPercent == 10)
        #expect(config.discovery.pool == .shared)
    }

    @Test("without [discovery], nvidia-smi is looked up in PATH and idle means under 5 %")
    func defaults() throws {
        let config = try DaemonConfig.parse(ConfigFixture.valid)
        #expect(config.discovery.gpus == nil)
        #expect(config.discovery.nvidiaSMI == "nvidia-smi")
        #expect(config.discovery.idleGPUPercent == 5)
    }
}
