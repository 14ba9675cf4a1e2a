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

    /// Started with posix_spawn, not Foundation's `Process`: munged and slurmd close the
    /// descriptors they inherit, and `Process` takes that for their end and waits for them,
    /// which stalls its reaping of every later child (the CLIs the tests run). They get only
    /// stdin, stdout and stderr.
    private func spawn(_ program: String, _ arguments: [String], log: String) throws {
        let path = Self.which(program) ?? "/usr/sbin/\(program)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environment = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { environment.forEach { free($0) } }
        // Nothing else the test process has open: a descriptor `Process` keeps to learn that
        // another child ended would stay open in slurmd, and that child's end never be seen.
        // (glibc ignores a close of a descriptor that was closed meanwhile.) No `Process` starts
        // meanwhile, so none has a descriptor open that this list would miss.
        let pid = try Launch.exclusively { () throws -> pid_t in
            let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for fd in open.compactMap({ Int32($0) }) where fd > 2 {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
            var pid: pid_t = 0
            let status = posix_spawn(&pid, path, &actions, nil, argv, environment)
            guard status == 0 else { throw Failure(description: "cannot start \(path): \(String(cString: strerror(status)))") }
            return pid
        }
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
