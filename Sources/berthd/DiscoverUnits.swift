// Public: a conformance of a public type to a public protocol is public itself.
public import ArgumentParser
public import BerthCore
import BerthExecutors
import BerthServer
import Foundation

extension UnitPool: ExpressibleByArgument {}

/// `berthd discover-units`: the machine's GPUs and CPU slices as `[[units]]` tables to paste
/// into the config. It reads and prints only; the daemon's config is not touched.
struct DiscoverUnits: ParsableCommand {
    enum Vendor: String, ExpressibleByArgument, CaseIterable {
        case nvidia
    }

    static let configuration = CommandConfiguration(
        commandName: "discover-units",
        abstract: "Print [[units]] TOML for this machine's GPUs (and CPU slices), ready to paste into the config.",
        discussion: """
            GPUs come from `nvidia-smi --query-gpu=index,uuid,name,memory.total`, one unit each \
            (gpu-0, gpu-1, ...) with its device index, UUID and memory; a GPU in MIG mode gives one \
            unit per MIG instance instead (from `nvidia-smi -L`). With --cpus and --cores-per-unit, \
            CPU units are slices of those cores. Instead of pasting, the config may say \
            [discovery] gpus = "nvidia" to take the GPUs at every start and reload. With --slurm, \
            the units are a Slurm cluster's, from `scontrol show nodes`: one per GPU of each \
            node's gpu GRES, or each CPU node's cores in groups of --cores-per-unit, each with \
            executor = "slurm" and its node.
            """
    )

    @Option(name: .long, help: "Look for these GPUs.")
    var gpus: Vendor?

    @Option(name: .long, help: ArgumentHelp("Cores to slice into CPU units, such as 0-15.", valueName: "list"))
    var cpus: String?

    @Option(name: .long, help: ArgumentHelp("Cores in each CPU unit (with --cpus).", valueName: "n"))
    var coresPerUnit: Int?

    @Flag(name: .long, help: "Print the units of a Slurm cluster's nodes instead of this machine's.")
    var slurm = false

    @Option(name: .long, help: ArgumentHelp("With --slurm: only the nodes of this partition.", valueName: "name"))
    var partition: String?

    @Option(name: .long, help: ArgumentHelp("With --slurm: the scontrol to run, a path or a name looked up in PATH.", valueName: "path"))
    var scontrol: String = "scontrol"

    @Option(name: .long, help: "The pool the units join.")
    var pool: UnitPool = .dedicated

    @Option(name: .long, help: ArgumentHelp("The nvidia-smi to run: a path, or a name looked up in PATH.", valueName: "path"))
    var nvidiaSmi: String = "nvidia-smi"

    func validate() throws {
        if slurm {
            if gpus != nil || cpus != nil {
                throw ValidationError("--slurm reads the cluster's nodes; leave out --gpus and --cpus (use --cores-per-unit for CPU nodes)")
            }
            return
        }
        if partition != nil { throw ValidationError("--partition needs --slurm") }
        if gpus == nil, cpus == nil {
            throw ValidationError("nothing to discover; give --gpus nvidia, or --cpus 0-15 --cores-per-unit 4, or both")
        }
        if cpus != nil, coresPerUnit == nil {
            throw ValidationError("--cpus needs --cores-per-unit N: how many cores each CPU unit gets")
        }
        if cpus == nil, coresPerUnit != nil {
            throw ValidationError("--cores-per-unit needs --cpus, such as --cpus 0-15")
        }
    }

    func run() throws {
        if slurm { return try runSlurm() }
        var units: [ComputeUnit] = []
        var notes: [String] = []
        do {
            if gpus != nil {
                units += GPUDiscovery.units(try GPUInventory.discover(nvidiaSMI: nvidiaSmi), pool: pool)
            }
            if let cpus, let coresPerUnit {
                let slices = try GPUDiscovery.cpuUnits(cores: cpus, coresPerUnit: coresPerUnit, pool: pool)
                units += slices.units
                if !slices.leftOver.isEmpty {
                    notes.append("# cores \(CPUList.text(slices.leftOver)) are left over: fewer than --cores-per-unit \(coresPerUnit)")
                }
            }
        } catch {
            FileHandle.standardError.write(Data("berthd discover-units: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let header = ["# [[units]] found by berthd discover-units; paste into the config (or use [discovery] gpus = \"nvidia\")"] + notes
        print(header.joined(separator: "\n") + "\n\n" + GPUDiscovery.toml(units), terminator: "")
    }

    private func runSlurm() throws {
        let commands = SlurmCommands(sbatch: "sbatch", scancel: "scancel", squeue: "squeue", sacct: "sacct", scontrol: scontrol, sinfo: "sinfo")
        let output: String
        do {
            output = try commands.run(scontrol, ["show", "nodes", "--oneliner"])
        } catch {
            FileHandle.standardError.write(Data("berthd discover-units: \(error); check that Slurm's controller answers (scontrol ping)\n".utf8))
            throw ExitCode(1)
        }
        let units = SlurmText.nodeUnits(output, coresPerUnit: coresPerUnit, partition: partition, pool: pool)
        guard !units.isEmpty else {
            FileHandle.standardError.write(
                Data("berthd discover-units: scontrol lists no node\(partition.map { " in partition \($0)" } ?? ""); check sinfo -N\n".utf8)
            )
            throw ExitCode(1)
        }
        let header = [
            "# [[units]] of a Slurm cluster found by berthd discover-units --slurm; paste into the config",
            "# beside [executors.slurm] with partition and shared_folder (see config/slurm.example.toml)",
        ]
        print(header.joined(separator: "\n") + "\n\n" + GPUDiscovery.toml(units), terminator: "")
    }
}
