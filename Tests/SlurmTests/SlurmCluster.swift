import BerthExecutors
import BerthTestSupport
import Foundation
import Synchronization
import Testing

/// A private single-node Slurm from Debian's packages (munge, slurmctld, slurmd), configured
/// under a temporary folder and started as background processes, stopped by PID: one for the
/// whole target. Its node has four GPUs in its GRES, over character devices made with `mknod`
/// (major 195), which slurmd accepts without a driver; no slurmdbd, so no accounting.
final class SlurmCluster: Sendable {
    let directory: TemporaryDirectory
    /// The one node, named as this host is (`hostname -s`), at 127.0.0.1.
    let node: String
    /// Seen by berthd and the node alike (they are one machine): specs, events, logs.
    var sharedFolder: String { directory.file("shared") }
    var configPath: String { directory.file("slurm/slurm.conf") }
    private let pids: Mutex<[Int32]>

    static let current = Mutex<SlurmCluster?>(nil)

    /// The cluster the target's suite started.
    static var shared: SlurmCluster {
        get throws { try #require(current.withLock { $0 }, "the Slurm cluster is not running: run the tests of SlurmTests as one suite") }
    }

    private init(directory: TemporaryDirectory, node: String) {
        self.directory = directory
        self.node = node
        pids = Mutex([])
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func start() throws -> SlurmCluster {
        for program in ["munged", "slurmctld", "slurmd", "sbatch", "scontrol"] where which(program) == nil {
            throw Failure(description: "\(program) is not installed; scripts/install-deps.sh installs munge, slurmctld, slurmd and slurm-client")
        }
        let directory = try TemporaryDirectory(prefix: "berth-slurm")
        // Every node reads its files by path: the temporary folder must be traversable.
        chmod(directory.path, 0o755)
        let node = try run("/bin/hostname", ["-s"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let cluster = SlurmCluster(directory: directory, node: node)
        do {
            try cluster.boot()
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    private func boot() throws {
        let fm = FileManager.default
        for folder in ["munge", "run", "slurm/state", "slurm/spool", "dev", "shared"] {
            try fm.createDirectory(atPath: directory.file(folder), withIntermediateDirectories: true)
        }
        chmod(directory.file("munge"), 0o700)
        chmod(directory.file("shared"), 0o755)
        var key = [UInt8](repeating: 0, count: 1024)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }
        try Data(key).write(to: URL(fileURLWithPath: directory.file("munge/munge.key")))
        chmod(directory.file("munge/munge.key"), 0o400)
        let socket = directory.file("run/munge.sock")
        try spawn(
            "munged",
            [
                "--foreground", "--socket=\(socket)", "--key-file=\(directory.file("munge/munge.key"))",
                "--pid-file=\(directory.file("run/munged.pid"))", "--seed-file=\(directory.file("munge/munged.seed"))",
                "--log-file=\(directory.file("munge/munged.log"))",
            ],
            log: directory.file("munge/munged.out")
        )
        guard eventually(timeout: 10, { fm.fileExists(atPath: socket) }) else { throw Failure(description: "munged did not start") }
        // The GPUs slurmd counts: character devices of NVIDIA's major number, no driver behind.
        for index in 0..<4 {
            let path = directory.file("dev/nvidia\(index)")
            guard mknod(path, S_IFCHR | 0o666, dev_t((195 << 8) | index)) == 0 else {
                throw Failure(description: "mknod \(path): \(String(cString: strerror(errno))); the tests run as root")
            }
        }
        let (controllerPort, nodePort) = (try Self.freePort(), try Self.freePort())
        let conf = """
            ClusterName=berthtest
            SlurmctldHost=\(node)(127.0.0.1)
            SlurmctldPort=\(controllerPort)
            SlurmdPort=\(nodePort)
            SlurmUser=root
            SlurmdUser=root
            AuthType=auth/munge
            CredType=cred/munge
            AuthInfo=socket=\(socket)
            StateSaveLocation=\(directory.file("slurm/state"))
            SlurmdSpoolDir=\(directory.file("slurm/spool"))
            SlurmctldPidFile=\(directory.file("run/slurmctld.pid"))
            SlurmdPidFile=\(directory.file("run/slurmd.pid"))
            SlurmctldLogFile=\(directory.file("slurm/slurmctld.log"))
            SlurmdLogFile=\(directory.file("slurm/slurmd.log"))
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            JobAcctGatherType=jobacct_gather/none
            AccountingStorageType=accounting_storage/none
            JobCompType=jobcomp/none
            MpiDefault=none
            ReturnToService=2
            SchedulerType=sched/backfill
            SchedulerParameters=batch_sched_delay=0
            SelectType=select/cons_tres
            SelectTypeParameters=CR_Core
            MailProg=/bin/true
            GresTypes=gpu
            NodeName=\(node) NodeAddr=127.0.0.1 CPUs=\(ProcessInfo.processInfo.activeProcessorCount) Gres=gpu:4 State=UNKNOWN
            PartitionName=berth Nodes=ALL Default=YES MaxTime=INFINITE State=UP

            """
        try conf.write(toFile: configPath, atomically: true, encoding: .utf8)
        try "NodeName=\(node) Name=gpu File=\(directory.file("dev/nvidia"))[0-3]\n".write(
            toFile: directory.file("slurm/gres.conf"),
            atomically: true,
            encoding: .utf8
        )
        try spawn("slurmctld", ["-D", "-f", configPath], log: directory.file("slurm/slurmctld.out"))
        try spawn("slurmd", ["-D", "-f", configPath], log: directory.file("slurm/slurmd.out"))
        let idle = eventually(timeout: 60) {
            (try? slurm("sinfo", ["-h", "-N", "-o", "%T"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == "idle"
        }
        guard idle else {
            throw Failure(description: "the node never became idle: \(log("slurm/slurmctld.log"))\n\(log("slurm/slurmd.log"))")
        }
    }

    /// Cancels what still runs, then stops slurmd, slurmctld and munged: TERM, then KILL.
    func stop() {
        if pids.withLock({ !$0.isEmpty }) {
            _ = try? slurm("scancel", ["--user=root"])
            _ = eventually(timeout: 10) { (try? slurm("squeue", ["-h", "-o", "%i"]).stdout.isEmpty) ?? true }
        }
        for pid in pids.withLock({ $0 }).reversed() {
            kill(pid, SIGTERM)
            let gone = eventually(timeout: 10) { waitpid(pid, nil, WNOHANG) == pid }
            if !gone {
                kill(pid, SIGKILL)
                waitpid(pid, nil, 0)
            }
        }
        pids.withLock { $0 = [] }
        directory.remove()
    }

    func log(_ name: String) -> String {
        String(((try? String(contentsOfFile: directory.file(name), encoding: .utf8)) ?? "").suffix(3000))
    }

    /// A Slurm client command against this cluster.
    func slurm(_ program: String, _ arguments: [String]) throws -> CommandResult {
        try Self.run(Self.which(program) ?? "/usr/bin/\(program)", arguments, environment: ["SLURM_CONF": configPath])
    }

    /// Started with `ChildProcess` (no descriptor of the test process but stdin, stdout and
    /// stderr), stopped by pid.
    private func spawn(_ program: String, _ arguments: [String], log: String) throws {
        let path = Self.which(program) ?? "/usr/sbin/\(program)"
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot open \(log): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let pid = try ChildProcess(path, arguments, stdout: fd, stderr: fd).pid
        pids.withLock { $0.append(pid) }
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try Products.run(executable, arguments, environment: environment, timeout: 30)
    }

    static func which(_ program: String) -> String? {
        for folder in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        where FileManager.default.isExecutableFile(atPath: "\(folder)/\(program)") {
            return "\(folder)/\(program)"
        }
        return nil
    }

    /// A TCP port no one listens on now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw Failure(description: "no free port") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Starts the cluster before the suite it marks and stops it after, once for all its tests.
struct SlurmClusterTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let cluster = try SlurmCluster.start()
        SlurmCluster.current.withLock { $0 = cluster }
        defer {
            SlurmCluster.current.withLock { $0 = nil }
            cluster.stop()
        }
        let berth = try SlurmBerth(cluster: cluster)
        SlurmBerth.current.withLock { $0 = berth }
        defer {
            SlurmBerth.current.withLock { $0 = nil }
            berth.stop()
        }
        try await function()
    }
}

extension Trait where Self == SlurmClusterTrait {
    /// A private Slurm for the suite's tests.
    static var slurmCluster: Self { Self() }
}
