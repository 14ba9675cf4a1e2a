import FoundationEssentials

/// One GPU as `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`
/// prints it: `0, GPU-5c89852c-…, NVIDIA H200, 143771`.
public struct DiscoveredGPU: Sendable, Equatable {
    public var index: Int
    public var uuid: String
    public var name: String
    public var memoryMiB: Int?
    /// Its MIG instances, from `nvidia-smi -L`; a GPU in MIG mode runs work only on these.
    public var migInstances: [MIGInstance]

    public init(index: Int, uuid: String, name: String, memoryMiB: Int?, migInstances: [MIGInstance] = []) {
        self.index = index
        self.uuid = uuid
        self.name = name
        self.memoryMiB = memoryMiB
        self.migInstances = migInstances
    }
}

/// A MIG instance as `nvidia-smi -L` lists it under its GPU:
/// `  MIG 3g.40gb     Device  0: (UUID: MIG-…)`.
public struct MIGInstance: Sendable, Equatable {
    /// The profile: `3g.40gb` (3 compute slices, 40 GB).
    public var profile: String
    /// Its number on its GPU.
    public var device: Int
    public var uuid: String

    public init(profile: String, device: Int, uuid: String) {
        self.profile = profile
        self.device = device
        self.uuid = uuid
    }
}

/// Why the GPUs could not be read; each says what to do.
public struct GPUDiscoveryError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Reading what `nvidia-smi` prints, and turning GPUs and cores into units. Pure: running the
/// program is the caller's, so every case is tested from recorded output.
public enum GPUDiscovery {
    /// The arguments of the inventory query.
    public static let inventoryArguments = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]
    /// The arguments that list MIG instances.
    public static let listArguments = ["-L"]

    /// The GPUs in the inventory query's output, in index order. A line that is not four
    /// fields with a numeric index is an error naming it: a silent skip would drop a GPU.
    public static func parseInventory(_ output: String) throws(GPUDiscoveryError) -> [DiscoveredGPU] {
        var gpus: [DiscoveredGPU] = []
        for line in output.split(whereSeparator: \.isNewline) {
            let text = line.trimmingBlanks()
            guard !text.isEmpty else { continue }
            if text.lowercased().contains("no devices were found") {
                throw GPUDiscoveryError(
                    "nvidia-smi found no GPU (\"No devices were found\"); check that the driver sees the GPUs (`nvidia-smi`), or remove [discovery] gpus"
                )
            }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() }
            guard fields.count == 4, let index = Int(fields[0]), index >= 0, !fields[1].isEmpty, !fields[2].isEmpty else {
                throw GPUDiscoveryError(
                    "cannot read nvidia-smi's line '\(text)': expected 'index, uuid, name, memory.total'; run `nvidia-smi \(inventoryArguments.joined(separator: " "))` to see what it prints"
                )
            }
            // "[N/A]" where the driver cannot tell: the unit simply has no memory_mib.
            gpus.append(DiscoveredGPU(index: index, uuid: fields[1], name: fields[2], memoryMiB: Int(fields[3])))
        }
        return gpus.sorted { $0.index < $1.index }
    }

    /// The MIG instances `nvidia-smi -L` lists, by their GPU's UUID. Lines of other kinds
    /// (GPUs, blank lines, what a newer driver adds) are passed over: only MIG lines matter.
    public static func parseMIG(_ output: String) -> [String: [MIGInstance]] {
        var byGPU: [String: [MIGInstance]] = [:]
        var gpu: String?
        for line in output.split(whereSeparator: \.isNewline) {
            let text = line.trimmingBlanks()
            if text.hasPrefix("GPU ") {
                gpu = uuid(in: text)
            } else if text.hasPrefix("MIG "), let gpu, let uuid = uuid(in: text) {
                // MIG 3g.40gb     Device  0: (UUID: MIG-…)
                let words = text.split(separator: " ", omittingEmptySubsequences: true)
                guard words.count >= 4, words[2] == "Device", let device = Int(words[3].trimming { $0 == ":" })
                else {
                    continue
                }
                byGPU[gpu, default: []].append(MIGInstance(profile: String(words[1]), device: device, uuid: uuid))
            }
        }
        return byGPU
    }

    /// The GPUs of the inventory, each with the MIG instances `-L` lists for it.
    public static func parse(inventory: String, list: String?) throws(GPUDiscoveryError) -> [DiscoveredGPU] {
        let mig = list.map(parseMIG) ?? [:]
        return try parseInventory(inventory).map { gpu in
            var gpu = gpu
            gpu.migInstances = mig[gpu.uuid] ?? []
            return gpu
        }
    }

    private static func uuid(in line: String) -> String? {
        guard let start = line.firstRange(of: "(UUID: ") else { return nil }
        let rest = line[start.upperBound...]
        guard let end = rest.firstIndex(of: ")") else { return nil }
        let uuid = rest[..<end].trimmingBlanks()
        return uuid.isEmpty ? nil : uuid
    }

    /// The unit kind for a marketing name: `NVIDIA H200` is `h200`, `NVIDIA A100-SXM4-80GB`
    /// is `a100-80gb`. The vendor and product-line words and the form factor (SXM, PCIe, HBM)
    /// go, since a reservation cares what the GPU can hold, not how it is mounted; the memory
    /// size stays where the name gives one, since two A100s of different sizes are not
    /// interchangeable.
    public static func kind(forName name: String) -> String {
        let dropped: Set<String> = ["nvidia", "tesla", "geforce", "quadro", "pcie", "pci", "oam"]
        func isFormFactor(_ word: String) -> Bool {
            for prefix in ["sxm", "hbm"] where word.hasPrefix(prefix) {
                return word.dropFirst(prefix.count).allSatisfy { $0.isNumber || $0 == "e" }
            }
            return false
        }
        let words = name.split(whereSeparator: { $0 == " " || $0 == "-" || $0 == "_" }).map { $0.lowercased() }
        let kept = words.filter { !dropped.contains($0) && !isFormFactor($0) }
        let kind = kept.joined(separator: "-")
        return kind.isEmpty ? "gpu" : kind
    }

    /// One unit per GPU (`gpu-0`, with its device, UUID and memory), or one per MIG instance
    /// of a GPU in MIG mode (`gpu-0-mig-1`, kind `a100-80gb-3g.40gb`, handed over by its UUID).
    public static func units(_ gpus: [DiscoveredGPU], pool: UnitPool) -> [ComputeUnit] {
        gpus.flatMap { gpu -> [ComputeUnit] in
            let kind = kind(forName: gpu.name)
            guard !gpu.migInstances.isEmpty else {
                return [ComputeUnit(id: "gpu-\(gpu.index)", kind: kind, device: gpu.index, pool: pool, uuid: gpu.uuid, memoryMiB: gpu.memoryMiB)]
            }
            return gpu.migInstances.map { instance in
                ComputeUnit(
                    id: "gpu-\(gpu.index)-mig-\(instance.device)",
                    kind: "\(kind)-\(instance.profile.lowercased())",
                    device: gpu.index,
                    pool: pool,
                    uuid: instance.uuid
                )
            }
        }
    }

    /// CPU units of `coresPerUnit` cores each from `cores` (`"0-15"`), numbered from
    /// `firstID`; cores left over (fewer than a unit) are returned apart, to be named.
    public static func cpuUnits(
        cores: String,
        coresPerUnit: Int,
        pool: UnitPool,
        firstID: Int = 0
    ) throws(GPUDiscoveryError) -> (units: [ComputeUnit], leftOver: [Int]) {
        guard let list = CPUList.cores(cores) else {
            throw GPUDiscoveryError("--cpus '\(cores)' is not a list of CPUs; write numbers and ranges such as \"0-15\" or \"0,2,4-7\"")
        }
        guard coresPerUnit >= 1 else {
            throw GPUDiscoveryError("--cores-per-unit must be at least 1, found \(coresPerUnit)")
        }
        var units: [ComputeUnit] = []
        var rest = list[...]
        while rest.count >= coresPerUnit {
            let slice = Array(rest.prefix(coresPerUnit))
            rest = rest.dropFirst(coresPerUnit)
            units.append(ComputeUnit(id: "cpu-\(firstID + units.count)", kind: "cpu", pool: pool, cpus: CPUList.text(slice)))
        }
        return (units, Array(rest))
    }

    /// `[[units]]` tables ready to paste into the config.
    public static func toml(_ units: [ComputeUnit]) -> String {
        units.map { unit in
            var lines = ["[[units]]", "id = \(quoted(unit.id))", "kind = \(quoted(unit.kind))"]
            if let device = unit.device { lines.append("device = \(device)") }
            if let uuid = unit.uuid { lines.append("uuid = \(quoted(uuid))") }
            if let memory = unit.memoryMiB { lines.append("memory_mib = \(memory)") }
            if let cpus = unit.cpus { lines.append("cpus = \(quoted(cpus))") }
            if let node = unit.node { lines += ["executor = \"slurm\"", "node = \(quoted(node))"] }
            lines.append("pool = \(quoted(unit.pool.rawValue))")
            return lines.joined(separator: "\n") + "\n"
        }.joined(separator: "\n")
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

extension CPUList {
    /// The cores a list names, in order, each once; nil if it is not a list.
    public static func cores(_ text: String) -> [Int]? {
        guard isValid(text) else { return nil }
        var seen = Set<Int>()
        var cores: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            for core in bounds[0]...(bounds.last ?? bounds[0]) where seen.insert(core).inserted {
                cores.append(core)
            }
        }
        return cores
    }

    /// The shortest way to write `cores`: runs as ranges (`4-7`), others by comma.
    public static func text(_ cores: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < cores.count {
            var j = i
            while j + 1 < cores.count, cores[j + 1] == cores[j] + 1 { j += 1 }
            parts.append(j > i ? "\(cores[i])-\(cores[j])" : "\(cores[i])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}

/// One GPU's load at one moment: from NVML, or from `nvidia-smi --query-gpu=index,uuid,
/// utilization.gpu,memory.used --format=csv,noheader,nounits` (`0, GPU-…, 87, 40960`).
public struct GPUSample: Sendable, Equatable {
    public var index: Int?
    public var uuid: String?
    /// Percent of the last sample period a kernel ran, 0 to 100.
    public var utilizationPercent: Double
    public var memoryUsedBytes: Int64

    public init(index: Int?, uuid: String?, utilizationPercent: Double, memoryUsedBytes: Int64) {
        self.index = index
        self.uuid = uuid
        self.utilizationPercent = utilizationPercent
        self.memoryUsedBytes = memoryUsedBytes
    }
}

extension GPUDiscovery {
    /// The arguments of the telemetry query.
    public static let telemetryArguments = ["--query-gpu=index,uuid,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]

    /// The samples in the telemetry query's output. A GPU whose figures read `[N/A]` (a GPU in
    /// MIG mode has no whole-GPU utilization) is left out: no figure is better than a made-up 0.
    public static func parseTelemetry(_ output: String) throws(GPUDiscoveryError) -> [GPUSample] {
        var samples: [GPUSample] = []
        for line in output.split(whereSeparator: \.isNewline) {
            let text = line.trimmingBlanks()
            guard !text.isEmpty else { continue }
            let fields = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() }
            guard fields.count == 4, let index = Int(fields[0]) else {
                throw GPUDiscoveryError("cannot read nvidia-smi's line '\(text)': expected 'index, uuid, utilization.gpu, memory.used'")
            }
            guard let utilization = Double(fields[2]), let memory = Double(fields[3]) else { continue }
            samples.append(
                GPUSample(
                    index: index,
                    uuid: fields[1].isEmpty ? nil : fields[1],
                    utilizationPercent: utilization,
                    memoryUsedBytes: Int64(memory * 1_048_576)
                )
            )
        }
        return samples
    }

    /// Each GPU unit's sample: matched by UUID where both have one, else by device index.
    public static func match(_ samples: [GPUSample], to units: [ComputeUnit]) -> [String: GPUSample] {
        let byUUID = Dictionary(samples.compactMap { s in s.uuid.map { ($0, s) } }, uniquingKeysWith: { a, _ in a })
        let byIndex = Dictionary(samples.compactMap { s in s.index.map { ($0, s) } }, uniquingKeysWith: { a, _ in a })
        var matched: [String: GPUSample] = [:]
        for unit in units where unit.isGPU {
            if let uuid = unit.uuid {
                if let sample = byUUID[uuid] { matched[unit.id] = sample }
            } else if let device = unit.device, let sample = byIndex[device] {
                matched[unit.id] = sample
            }
        }
        return matched
    }
}
