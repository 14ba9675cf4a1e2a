public import BerthCore

/// A Slurm job's state as berth reads it. Only the states Slurm documents as the end of a job
/// end it here; a job berthd can no longer find is `unknown`, never done.
public enum SlurmJobState: Sendable, Equatable {
    /// Waiting on the cluster (PENDING, CONFIGURING, ...), with Slurm's reason: shown as
    /// `queued-on-slurm`.
    case queued(String)
    case running(String)
    case completed
    /// FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, ...: the state and Slurm's reason.
    case failed(state: String, reason: String, exitCode: Int32?)
    case cancelled(String)
    /// Gone from `squeue` with no record in `sacct`: how it ended is not known.
    case unknown(String)

    /// Reads a state as `squeue -o %T` or `sacct -o State` prints it (`CANCELLED by 0`).
    public init(state text: String, reason: String, exitCode: Int32? = nil) {
        let state = text.split(separator: " ").first.map(String.init)?.uppercased() ?? ""
        let shown = reason.isEmpty || reason == "None" ? state : "\(state): \(reason)"
        switch state {
        case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "POWER_UP_NODE":
            self = .queued(shown)
        case "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING", "UPDATE_DB":
            self = .running(shown)
        case "COMPLETED":
            self = .completed
        case "CANCELLED":
            self = .cancelled(shown)
        case "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT", "REVOKED":
            self = .failed(state: state, reason: reason == "None" ? "" : reason, exitCode: exitCode)
        default:
            self = .unknown("Slurm showed the state '\(text)', which berth does not know")
        }
    }

    public var hasEnded: Bool {
        switch self {
        case .queued, .running: false
        case .completed, .failed, .cancelled, .unknown: true
        }
    }

    /// What `berth jobs ID` shows of it.
    public var shown: String {
        switch self {
        case .queued(let text), .running(let text): text
        case .completed: "COMPLETED"
        case .failed(let state, let reason, _): reason.isEmpty ? state : "\(state): \(reason)"
        case .cancelled(let text): text
        case .unknown: "UNKNOWN"
        }
    }

    /// The exit status berth records: 0 only for COMPLETED.
    public var exitStatus: Int32 {
        switch self {
        case .completed: 0
        case .failed(_, _, let code): code.map { $0 == 0 ? 1 : $0 } ?? 1
        case .cancelled: 128 + 15
        case .queued, .running, .unknown: 1
        }
    }

    /// How the job's end is recorded beyond its exit status.
    public func verdict(jobID: String) -> RunnerVerdict? {
        switch self {
        case .queued, .running, .completed: nil
        case .failed(let state, let reason, _):
            .failed("slurm job \(jobID) ended \(state)\(reason.isEmpty ? "" : " (\(reason))"); see its log")
        case .cancelled(let text): .cancelled("cancelled on Slurm (\(text)); slurm job \(jobID)")
        case .unknown(let why): .failed("slurm job \(jobID): \(why)")
        }
    }
}

/// Pure pieces of talking to Slurm: what berthd sends and how it reads the answers.
public enum SlurmText {
    /// One line of `squeue -h -O JobID:|,State:|,Reason:|,exit_code:|,Name:|,UserID:|`: the job
    /// id, its state, its name and the uid it runs as. `exit_code` is the batch script's wait status as the kernel
    /// gives it (768 for exit 3): read as an exit status, or 128 + the signal.
    public static func queueLine(_ line: Substring) -> QueuedJob? {
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count >= 5, !fields[0].isEmpty else { return nil }
        let code = Int32(fields[3]).map { raw in raw & 0x7f != 0 ? 128 + (raw & 0x7f) : (raw >> 8) & 0xff }
        return QueuedJob(
            id: fields[0],
            state: SlurmJobState(state: fields[1], reason: fields[2], exitCode: code),
            name: fields[4],
            uid: fields.count > 5 ? UInt32(fields[5]) : nil
        )
    }

    /// One job as `squeue` lists it.
    public struct QueuedJob: Sendable {
        public var id: String
        public var state: SlurmJobState
        public var name: String
        /// The user it runs as; `nil` where squeue did not say.
        public var uid: UInt32?
    }

    /// One line of `sacct -n -P -X -o JobID,State,ExitCode`: `12|FAILED|3:0`.
    public static func accountingLine(_ line: Substring) -> (id: String, state: SlurmJobState)? {
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 3, !fields[0].isEmpty else { return nil }
        let code = fields[2].split(separator: ":").first.flatMap { Int32($0) }
        return (fields[0], SlurmJobState(state: fields[1], reason: "", exitCode: code))
    }

    /// `sbatch --parsable` prints `id` or, on a multi-cluster setup, `id;cluster`.
    public static func submittedID(_ output: String) -> String? {
        let first = output.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let id = first.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return !id.isEmpty && id.allSatisfy(\.isNumber) ? id : nil
    }

    /// A word for `sh`, quoted so that nothing in it is expanded: `'it'\''s'`.
    public static func quoted(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The batch script of one runner: its environment set word by word, then `exec` of its
    /// argv with every argument quoted, so the shell runs the argv exactly and interprets
    /// nothing in it. With `gpus`, the devices Slurm handed the job (`CUDA_VISIBLE_DEVICES`) are
    /// also its `BERTH_DEVICES`; without, it sees no GPU. A serve process first leaves `host port`
    /// in `addressFile`, written whole (a rename), so berthd never reads half an address.
    public static func batchScript(argv: [String], environment: [String: String], gpus: Bool, addressFile: String?, port: Int?) -> String {
        var lines = [
            "#!/bin/sh",
            "# Written by berthd: one runner, its argv quoted word by word; nothing in it is expanded.",
        ]
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) where isVariableName(key) {
            lines.append("\(key)=\(quoted(value)); export \(key)")
        }
        if gpus {
            lines.append("BERTH_DEVICES=\"${CUDA_VISIBLE_DEVICES-}\"; export BERTH_DEVICES")
        } else {
            lines.append("CUDA_VISIBLE_DEVICES=''; export CUDA_VISIBLE_DEVICES")
            lines.append("NVIDIA_VISIBLE_DEVICES=void; export NVIDIA_VISIBLE_DEVICES")
        }
        if let addressFile, let port {
            let temporary = quoted(addressFile + ".new")
            lines.append("printf '%s %s\\n' \"$(hostname)\" \(port) > \(temporary) && mv -f \(temporary) \(quoted(addressFile))")
        }
        lines.append("exec " + argv.map(quoted).joined(separator: " "))
        return lines.joined(separator: "\n") + "\n"
    }

    static func isVariableName(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return key.unicodeScalars.allSatisfy { $0 == "_" || ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    /// What `sbatch` is asked for the runner on `units`: their nodes, and per node as many GPUs
    /// as the most any one of them holds there (or their cores, for CPU units).
    public static func placement(_ units: [ComputeUnit]) -> (nodes: [String], gpusPerNode: Int, cpusPerTask: Int?) {
        var nodes: [String] = []
        var gpus: [String: Int] = [:]
        var cores: [String: Int] = [:]
        for unit in units {
            guard let node = unit.node else { continue }
            if !nodes.contains(node) { nodes.append(node) }
            if unit.isGPU {
                gpus[node, default: 0] += 1
            } else {
                cores[node, default: 0] += unit.cpus.flatMap(CPUList.cores)?.count ?? 1
            }
        }
        let perNode = gpus.values.max() ?? 0
        return (nodes, perNode, cores.values.max())
    }

    /// One `scontrol show reservation --oneliner` line: its name and nodes.
    public static func reservationLine(_ line: Substring) -> (name: String, nodes: String)? {
        var name: String?
        var nodes = ""
        for field in line.split(separator: " ") {
            if field.hasPrefix("ReservationName=") { name = String(field.dropFirst("ReservationName=".count)) }
            if field.hasPrefix("Nodes=") { nodes = String(field.dropFirst("Nodes=".count)) }
        }
        return name.map { ($0, nodes) }
    }
}

extension SlurmText {
    /// `berthd discover-units --slurm`: the units of the nodes `scontrol show nodes --oneliner`
    /// lists, one per GPU of each node's `gpu` GRES (`Gres=gpu:4`, `Gres=gpu:a100:8(S:0-1)`,
    /// the type as the kind), else its cores in groups of `coresPerUnit` (all of them in one
    /// unit without it). Nodes outside `partition`, when one is given, are left out.
    public static func nodeUnits(_ output: String, coresPerUnit: Int?, partition: String?, pool: UnitPool) -> [ComputeUnit] {
        var units: [ComputeUnit] = []
        for line in output.split(whereSeparator: \.isNewline) {
            var fields: [String: String] = [:]
            for field in line.split(separator: " ") {
                guard let equals = field.firstIndex(of: "=") else { continue }
                fields[String(field[..<equals])] = String(field[field.index(after: equals)...])
            }
            guard let node = fields["NodeName"] else { continue }
            if let partition, !(fields["Partitions"] ?? "").split(separator: ",").contains(Substring(partition)) { continue }
            var gpus = 0
            var kind = "gpu"
            for gres in (fields["Gres"] ?? "").split(separator: ",") {
                let parts = gres.split(separator: "(").first?.split(separator: ":").map(String.init) ?? []
                guard parts.first == "gpu", let count = parts.last.flatMap({ Int($0) }) else { continue }
                if parts.count == 3 { kind = parts[1] }
                gpus += count
            }
            if gpus > 0 {
                for index in 0..<gpus {
                    units.append(ComputeUnit(id: "\(node)-gpu-\(index)", kind: kind, device: index, pool: pool, node: node))
                }
                continue
            }
            let cores = Int(fields["CPUTot"] ?? "") ?? 1
            let size = min(max(coresPerUnit ?? cores, 1), cores)
            for group in 0..<(cores / size) {
                let first = group * size
                let cpus = size == 1 ? "\(first)" : "\(first)-\(first + size - 1)"
                units.append(ComputeUnit(id: "\(node)-cpu-\(group)", kind: "cpu", pool: pool, cpus: cpus, node: node))
            }
        }
        return units
    }
}
