public import BerthConfig
public import BerthCore
import BerthExecutors
import Dispatch
import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The GPUs `nvidia-smi` lists, as units: for `berthd discover-units`, and for
/// `[discovery] gpus = "nvidia"` at start-up and on SIGHUP.
public enum GPUInventory {
    /// How long nvidia-smi may take: a wedged driver makes it hang, and berthd must start.
    static let timeout: Double = 15

    /// The GPUs, with their MIG instances. A missing or failing nvidia-smi, or one that finds
    /// no GPU, is an error that says which and what to do.
    public static func discover(nvidiaSMI: String) throws(GPUDiscoveryError) -> [DiscoveredGPU] {
        let program = try resolve(nvidiaSMI)
        let inventory = try run(program, GPUDiscovery.inventoryArguments)
        // MIG instances are only in -L's output; if it fails, the whole GPUs are still right.
        let list = try? run(program, GPUDiscovery.listArguments)
        let gpus = try GPUDiscovery.parse(inventory: inventory, list: list)
        guard !gpus.isEmpty else {
            throw GPUDiscoveryError("nvidia-smi at \(program) listed no GPU; check that the driver sees the GPUs (`nvidia-smi`)")
        }
        return gpus
    }

    /// The config's units and the GPUs discovered for it. Discovery that fails is logged and
    /// leaves the configured units alone: berthd still starts, without GPU units. A discovered
    /// unit whose id or UUID the config already lists is left to the config.
    public static func units(for config: DaemonConfig, logger: Logger) -> [ComputeUnit] {
        guard config.discovery.gpus != nil else { return config.units }
        let gpus: [DiscoveredGPU]
        do {
            gpus = try discover(nvidiaSMI: config.discovery.nvidiaSMI)
        } catch {
            logger.warning(
                "GPU discovery ([discovery] gpus) found no GPU units: \(error); berthd runs with the [[units]] of the config",
                metadata: ["nvidia_smi": "\(config.discovery.nvidiaSMI)"]
            )
            return config.units
        }
        let ids = Set(config.units.map(\.id))
        let uuids = Set(config.units.compactMap(\.uuid))
        var units = config.units
        for unit in GPUDiscovery.units(gpus, pool: config.discovery.pool) {
            if ids.contains(unit.id) || unit.uuid.map(uuids.contains) == true {
                logger.notice(
                    "discovered GPU left to the config's [[units]], which already lists it",
                    metadata: ["unit": "\(unit.id)", "uuid": "\(unit.uuid ?? "-")"]
                )
                continue
            }
            units.append(unit)
        }
        logger.info(
            "GPUs discovered",
            metadata: [
                "units": "\(units.count - config.units.count)", "kinds": "\(Set(units.filter(\.isGPU).map(\.kind)).sorted().joined(separator: ","))",
            ]
        )
        return units
    }

    /// The program itself: a path as given, or a name looked up in `PATH`.
    static func resolve(_ program: String) throws(GPUDiscoveryError) -> String {
        if program.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: program) else {
                throw GPUDiscoveryError(
                    "nvidia-smi not found at \(program) (or not executable); install the NVIDIA driver, or set [discovery] nvidia_smi (--nvidia-smi) to its path"
                )
            }
            return program
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(folder)/\(program)") {
            return "\(folder)/\(program)"
        }
        throw GPUDiscoveryError(
            "\(program) not found in PATH (\(path)); install the NVIDIA driver, or set [discovery] nvidia_smi (--nvidia-smi) to its path"
        )
    }

    /// Runs `program` and returns its standard output, or an error with what it printed when
    /// it fails, hangs or cannot start. Blocks: call it off the cooperative pool.
    static func run(_ program: String, _ arguments: [String]) throws(GPUDiscoveryError) -> String {
        let result: (status: Int32?, out: Data, err: Data)
        do {
            result = try ChildProcess.output(program, arguments, timeout: timeout)
        } catch {
            throw GPUDiscoveryError("cannot run \(program): \(error); check [discovery] nvidia_smi (--nvidia-smi)")
        }
        guard let code = result.status else {
            throw GPUDiscoveryError(
                "\(program) \(arguments.joined(separator: " ")) did not answer within \(Int(timeout)) s; the driver may be wedged (check `dmesg`)"
            )
        }
        let stdout = String(decoding: result.out, as: UTF8.self)
        guard code == 0 else {
            let said = (String(decoding: result.err, as: UTF8.self) + stdout).trimmingCharacters(in: .whitespacesAndNewlines)
            let status = code > 128 ? "signal \(code - 128)" : "exit \(code)"
            if said.localizedCaseInsensitiveContains("No devices were found") {
                throw GPUDiscoveryError(
                    "nvidia-smi found no GPU (\(status): No devices were found); check that the driver sees the GPUs (`nvidia-smi`), or remove [discovery] gpus"
                )
            }
            let first = said.split(whereSeparator: \.isNewline).first.map(String.init) ?? "no message"
            throw GPUDiscoveryError("\(program) failed (\(status)): \(first); check the NVIDIA driver (`nvidia-smi` as root)")
        }
        return stdout
    }
}
