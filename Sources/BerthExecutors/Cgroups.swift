import CBerthSpawn
public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What one runner may use, from its units and the config.
public struct RunnerBounds: Sendable, Equatable {
    /// The CPUs it may run on, in `cpuset.cpus` syntax (`"2-3"`), when its units name cores.
    public var cpus: String?
    /// Memory it may hold, in bytes; the kernel kills it past that.
    public var memoryBytes: Int64?
    /// Processes and threads it may have at once.
    public var maxTasks: Int?
    /// Character devices it may not open: the GPUs of units it does not hold.
    public var deniedDevices: [DeviceNumber]
    /// Cores' worth of CPU time it gets per period, when its units are slices smaller than a
    /// core (`cpu.cfs_quota_us`, `cpu.max`).
    public var cpuQuota: Double?

    public init(
        cpus: String? = nil,
        memoryBytes: Int64? = nil,
        maxTasks: Int? = nil,
        deniedDevices: [DeviceNumber] = [],
        cpuQuota: Double? = nil
    ) {
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.maxTasks = maxTasks
        self.deniedDevices = deniedDevices
        self.cpuQuota = cpuQuota
    }

    /// The CFS period the quota is a share of, in microseconds (the kernel's default).
    public static let cpuPeriodMicroseconds = 100_000

    /// The quota in microseconds per period; the kernel takes no less than 1 ms.
    public var cpuQuotaMicroseconds: Int? {
        cpuQuota.map { max(1000, Int(($0 * Double(Self.cpuPeriodMicroseconds)).rounded())) }
    }
}

/// A character device's major and minor number.
public struct DeviceNumber: Sendable, Hashable {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// `/dev/nvidiaN` is character device 195, minor N.
    public static func nvidiaGPU(_ index: Int) -> DeviceNumber { DeviceNumber(major: 195, minor: index) }
    /// The minors of major 195 that are GPUs; 254 is `/dev/nvidia-modeset` and 255
    /// `/dev/nvidiactl`, which CUDA needs whatever GPU it uses.
    public static let nvidiaGPUMinors = 0...253
}

/// What the kernel lets berthd confine runners with, as found at start-up.
public struct ConfinementSupport: Sendable, Equatable, CustomStringConvertible {
    public var cpu: Bool
    public var memory: Bool
    public var devices: Bool
    public var tasks: Bool
    /// Why some control is missing, when one is.
    public var reason: String?

    public init(cpu: Bool, memory: Bool, devices: Bool, tasks: Bool, reason: String?) {
        self.cpu = cpu
        self.memory = memory
        self.devices = devices
        self.tasks = tasks
        self.reason = reason
    }

    public static func none(_ reason: String) -> ConfinementSupport {
        ConfinementSupport(cpu: false, memory: false, devices: false, tasks: false, reason: reason)
    }

    /// For `berth status` and the log: `cpu yes, memory yes, devices no — not root`.
    public var description: String {
        let parts = [("cpu", cpu), ("memory", memory), ("devices", devices), ("tasks", tasks)]
            .map { "\($0.0) \($0.1 ? "yes" : "no")" }.joined(separator: ", ")
        return reason.map { "\(parts) — \($0)" } ?? parts
    }
}

/// The cgroups berthd makes for its runners: under its own cgroup, in a folder of its own
/// (`berthd-PID`), one group per runner. Version 1 keeps one hierarchy per controller; version
/// 2 one tree, where berthd first moves itself into a leaf of its own (a cgroup with
/// controllers enabled for its children may hold no process), as systemd's `Delegate=yes`
/// expects.
public final class CgroupTree: Sendable {
    enum Layout: Sendable {
        /// Controller name → berthd's folder in that controller's hierarchy.
        case v1([String: String])
        case v2(String)
    }

    let layout: Layout
    public let support: ConfinementSupport

    init(layout: Layout, support: ConfinementSupport) {
        self.layout = layout
        self.support = support
    }

    /// The v1 controllers berthd uses, and what each is for.
    static let v1Controllers = ["cpuset", "cpu", "cpuacct", "memory", "devices", "pids", "freezer"]

    /// Finds the cgroups this process may use and makes its folder in them; `nil` with the
    /// reason when none can be used. Nothing here fails start-up.
    public static func open(tag: String = "berthd-\(getpid())") -> (tree: CgroupTree?, support: ConfinementSupport) {
        #if os(Linux)
        let mounts = CgroupMounts.read()
        let own = CgroupMounts.ownGroups()
        if !mounts.v1.isEmpty {
            return openV1(mounts: mounts.v1, own: own, tag: tag)
        }
        if let unified = mounts.v2 {
            return openV2(mount: unified, own: own[""] ?? "/", tag: tag)
        }
        return (nil, .none("no cgroup file system is mounted"))
        #else
        return (nil, .none("cgroups are Linux's"))
        #endif
    }

    private static func openV1(mounts: [String: String], own: [String: String], tag: String) -> (CgroupTree?, ConfinementSupport) {
        var folders: [String: String] = [:]
        var failure: String?
        for controller in v1Controllers {
            guard let mount = mounts[controller] else { continue }
            let parent = mount + (own[controller].map { $0 == "/" ? "" : $0 } ?? "")
            sweep(parent, controller: controller)
            let folder = parent + "/" + tag
            if mkdir(folder, 0o755) != 0 && errno != EEXIST {
                failure = Self.refusal(errno, folder, unprivileged: "not root")
                continue
            }
            if controller == "cpuset" {
                // A new cpuset has no CPUs and no memory nodes until given some: its parent's.
                let parent = (folder as NSString).deletingLastPathComponent
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let value = CgroupFile.read(parent + "/" + file) ?? ""
                    _ = CgroupFile.write(folder + "/" + file, value)
                }
            }
            folders[controller] = folder
        }
        guard !folders.isEmpty else { return (nil, .none(failure ?? "no usable cgroup controller")) }
        // Accounting and quotas are extras: without them the rest still confines.
        let missing = v1Controllers.filter { folders[$0] == nil && $0 != "cpuacct" && $0 != "cpu" }
        let support = ConfinementSupport(
            cpu: folders["cpuset"] != nil,
            memory: folders["memory"] != nil,
            devices: folders["devices"] != nil,
            tasks: folders["pids"] != nil,
            reason: missing.isEmpty ? nil : failure ?? "no \(missing.joined(separator: ", ")) hierarchy"
        )
        return (CgroupTree(layout: .v1(folders), support: support), support)
    }

    static func openV2(mount: String, own: String, tag: String) -> (CgroupTree?, ConfinementSupport) {
        let base = mount + (own == "/" ? "" : own)
        let available = Set((CgroupFile.read(base + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init))
        // berthd leaves its own group for a leaf, so that group may enable controllers for the
        // runners' groups beside it.
        let leaf = base + "/daemon"
        if mkdir(leaf, 0o755) != 0 && errno != EEXIST {
            return (nil, .none(Self.refusal(errno, leaf, unprivileged: "not root and not delegated")))
        }
        guard CgroupFile.write(leaf + "/cgroup.procs", "\(getpid())") else {
            return (nil, .none("cannot move berthd into \(leaf): \(String(cString: strerror(errno)))"))
        }
        let wanted = ["cpuset", "cpu", "memory", "pids"].filter(available.contains)
        _ = CgroupFile.write(base + "/cgroup.subtree_control", wanted.map { "+" + $0 }.joined(separator: " "))
        sweep(base, controller: nil)
        let folder = base + "/" + tag
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            return (nil, .none("cannot create \(folder): \(String(cString: strerror(errno)))"))
        }
        _ = CgroupFile.write(folder + "/cgroup.subtree_control", wanted.map { "+" + $0 }.joined(separator: " "))
        let enabled = Set((CgroupFile.read(folder + "/cgroup.subtree_control") ?? "").split(separator: " ").map(String.init))
        let devicesRefused = DeviceFilter.refusal()
        let support = ConfinementSupport(
            cpu: enabled.contains("cpuset"),
            memory: enabled.contains("memory"),
            devices: devicesRefused == nil,
            tasks: enabled.contains("pids"),
            reason: devicesRefused
        )
        return (CgroupTree(layout: .v2(folder), support: support), support)
    }

    /// Removes the folders a berthd killed without a clean stop left under `parent`
    /// (`berthd-PID` whose process is gone), and their runners' groups, killing what is still
    /// in them: its runners were found and killed by their `BERTH_LEDGER` already, or belong to
    /// no ledger any more.
    /// `controller` names the version 1 hierarchy `parent` is in; `nil` is version 2.
    static func sweep(_ parent: String, controller: String?) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for entry in entries where entry.hasPrefix("berthd-") {
            guard let pid = Int32(entry.dropFirst("berthd-".count)), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            let folder = parent + "/" + entry
            let groups = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { name in
                var info = stat()
                return stat(folder + "/" + name, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
            }
            for name in groups {
                let path = folder + "/" + name
                let group = RunnerCgroup(layout: controller.map { .v1([$0: path]) } ?? .v2(path))
                group.killAll()
                group.remove()
            }
            rmdir(folder)
        }
    }

    /// Makes the group of one runner, with its bounds written, ready for it to join.
    public func makeGroup(_ name: String, bounds: RunnerBounds) throws -> RunnerCgroup {
        switch layout {
        case .v1(let folders):
            var made: [String: String] = [:]
            for (controller, parent) in folders {
                let folder = parent + "/" + name
                if mkdir(folder, 0o755) != 0 && errno != EEXIST {
                    let failure = Self.failure("create", folder)
                    RunnerCgroup(layout: .v1(made)).remove()
                    throw failure
                }
                made[controller] = folder
            }
            let group = RunnerCgroup(layout: .v1(made))
            do {
                try Self.write(bounds, to: group, made: made, parents: folders)
            } catch {
                group.remove()
                throw error
            }
            return group
        case .v2(let parent):
            let folder = parent + "/" + name
            if mkdir(folder, 0o755) != 0 && errno != EEXIST { throw Self.failure("create", folder) }
            let group = RunnerCgroup(layout: .v2(folder))
            do {
                if let cpus = bounds.cpus, support.cpu { try group.set(folder + "/cpuset.cpus", cpus) }
                if let bytes = bounds.memoryBytes, support.memory {
                    try group.set(folder + "/memory.max", String(bytes))
                    // No swap to run into instead: past the cap, the kernel's OOM killer acts.
                    _ = CgroupFile.write(folder + "/memory.swap.max", "0")
                }
                if let tasks = bounds.maxTasks, support.tasks { try group.set(folder + "/pids.max", String(tasks)) }
                if support.devices, !bounds.deniedDevices.isEmpty { try DeviceFilter.deny(bounds.deniedDevices, inGroup: folder) }
                if let quota = bounds.cpuQuotaMicroseconds, FileManager.default.fileExists(atPath: folder + "/cpu.max") {
                    try group.set(folder + "/cpu.max", "\(quota) \(RunnerBounds.cpuPeriodMicroseconds)")
                }
            } catch {
                group.remove()
                throw error
            }
            return group
        }
    }

    private static func write(_ bounds: RunnerBounds, to group: RunnerCgroup, made: [String: String], parents folders: [String: String]) throws {
        if let folder = made["cpuset"], let parent = folders["cpuset"] {
            try group.set(folder + "/cpuset.cpus", bounds.cpus ?? CgroupFile.read(parent + "/cpuset.cpus") ?? "")
            try group.set(folder + "/cpuset.mems", CgroupFile.read(parent + "/cpuset.mems") ?? "")
        }
        if let folder = made["memory"], let bytes = bounds.memoryBytes {
            try group.set(folder + "/memory.limit_in_bytes", String(bytes))
            // Where swap is accounted, the cap covers it too: past it the OOM killer acts,
            // rather than the runner swapping the machine to a crawl.
            _ = CgroupFile.write(folder + "/memory.memsw.limit_in_bytes", String(bytes))
        }
        if let folder = made["cpu"], let quota = bounds.cpuQuotaMicroseconds {
            try group.set(folder + "/cpu.cfs_period_us", String(RunnerBounds.cpuPeriodMicroseconds))
            try group.set(folder + "/cpu.cfs_quota_us", String(quota))
        }
        if let folder = made["pids"], let tasks = bounds.maxTasks {
            try group.set(folder + "/pids.max", String(tasks))
        }
        if let folder = made["devices"] {
            for device in bounds.deniedDevices {
                try group.set(folder + "/devices.deny", "c \(device.major):\(device.minor) rwm")
            }
        }
    }

    /// Removes berthd's folders, once its runners' groups are gone (at a clean stop).
    public func remove() {
        switch layout {
        case .v1(let folders): for folder in folders.values { rmdir(folder) }
        case .v2(let folder): rmdir(folder)
        }
    }

    /// Why a folder could not be made in a cgroup hierarchy, as `berth status` says it.
    static func refusal(_ error: Int32, _ folder: String, unprivileged: String) -> String {
        switch error {
        case EACCES, EPERM: unprivileged
        // What systemd's ProtectControlGroups=yes does to a service; Delegate=yes is the way.
        case EROFS: "the cgroup file system is read-only here (under systemd: Delegate=yes, not ProtectControlGroups=yes)"
        default: "cannot create \(folder): \(String(cString: strerror(error)))"
        }
    }

    static func failure(_ what: String, _ path: String) -> RunnerProcess.SpawnError {
        RunnerProcess.SpawnError(description: "cannot \(what) the runner's cgroup \(path): \(String(cString: strerror(errno)))")
    }
}

/// Device rules under cgroup version 2, which has no `devices.deny`: a BPF device program
/// attached to the runner's group refuses the devices it names, as systemd does for
/// `DeviceAllow=`.
public enum DeviceFilter {
    /// Whether this process may load one: `nil`, or why not.
    public static func refusal() -> String? {
        let result = berth_device_filter_probe()
        guard result < 0 else { return nil }
        return result == -EPERM
            ? "loading a BPF device program needs root (CAP_BPF or CAP_SYS_ADMIN)"
            : "cannot load a BPF device program: \(String(cString: strerror(-result)))"
    }

    /// Attaches to the version 2 group at `folder` a program refusing `devices` (character
    /// devices) to every process in it; the rest stays allowed.
    public static func deny(_ devices: [DeviceNumber], inGroup folder: String) throws {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupTree.failure("open", folder) }
        defer { close(fd) }
        var log = [CChar](repeating: 0, count: 4096)
        let majors = devices.map { Int32($0.major) }
        let minors = devices.map { Int32($0.minor) }
        let result = berth_deny_devices(fd, majors, minors, Int32(devices.count), &log, UInt32(log.count))
        guard result == 0 else {
            let words = log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            let verifier = String(decoding: words, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw RunnerProcess.SpawnError(
                description: "cannot attach the device rules to \(folder): \(String(cString: strerror(-result)))"
                    + (verifier.isEmpty ? "" : " (\(verifier))")
            )
        }
    }
}

/// The cgroup of one runner: it joins before it execs, and everything it starts stays in it.
public final class RunnerCgroup: Sendable {
    let layout: CgroupTree.Layout

    init(layout: CgroupTree.Layout) {
        self.layout = layout
    }

    private var folders: [String] {
        switch layout {
        case .v1(let folders): Array(folders.values)
        case .v2(let folder): [folder]
        }
    }

    func set(_ path: String, _ value: String) throws {
        guard CgroupFile.write(path, value) else {
            let reason = String(cString: strerror(errno))
            throw RunnerProcess.SpawnError(description: "cannot write '\(value)' to \(path): \(reason)")
        }
    }

    /// `cgroup.procs` of each folder, open for writing, for the child to join with.
    func joinDescriptors() throws -> [Int32] {
        var descriptors: [Int32] = []
        for folder in folders {
            let fd = open(folder + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                descriptors.forEach { close($0) }
                throw CgroupTree.failure("join", folder)
            }
            descriptors.append(fd)
        }
        return descriptors
    }

    /// The processes in the group now.
    var members: Set<Int32> {
        Set(folders.flatMap { (CgroupFile.read($0 + "/cgroup.procs") ?? "").split(separator: "\n").compactMap { Int32($0) } })
    }

    /// Kills every process in the group, however it left its process group or session.
    /// Version 2 has `cgroup.kill`; in version 1 the group is frozen first, so nothing in it
    /// can fork while its members are killed one by one.
    public func killAll() {
        switch layout {
        case .v2(let folder):
            if CgroupFile.write(folder + "/cgroup.kill", "1") { return }
            for pid in members { kill(pid, SIGKILL) }
        case .v1(let folders):
            let freezer = folders["freezer"].map { $0 + "/freezer.state" }
            for _ in 0..<50 {
                let pids = members
                if pids.isEmpty { return }
                if let freezer { _ = CgroupFile.write(freezer, "FROZEN") }
                for pid in pids { kill(pid, SIGKILL) }
                if let freezer { _ = CgroupFile.write(freezer, "THAWED") }
                usleep(2_000)
            }
        }
    }

    /// Removes the group once its members are gone (the last may take a moment to be reaped).
    public func remove() {
        for folder in folders {
            for _ in 0..<100 {
                if rmdir(folder) == 0 || errno == ENOENT { break }
                usleep(10_000)
            }
        }
    }

    /// Whether the kernel's OOM killer killed a process of this group for its memory cap.
    public var killedForMemory: Bool {
        let events: String?
        switch layout {
        case .v1(let folders): events = folders["memory"].flatMap { CgroupFile.read($0 + "/memory.oom_control") }
        case .v2(let folder): events = CgroupFile.read(folder + "/memory.events")
        }
        guard let events else { return false }
        for line in events.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "oom_kill", let count = Int(fields[1]) { return count > 0 }
        }
        return false
    }

    /// CPU seconds the group used and the most memory it held, where the kernel counts them.
    public var usage: (cpuSeconds: Double?, peakMemoryBytes: Int64?) {
        switch layout {
        case .v1(let folders):
            let cpu = folders["cpuacct"].flatMap { CgroupFile.read($0 + "/cpuacct.usage") }.flatMap { Double($0) }.map { $0 / 1e9 }
            let peak = folders["memory"].flatMap { CgroupFile.read($0 + "/memory.max_usage_in_bytes") }.flatMap { Int64($0) }
            return (cpu, peak)
        case .v2(let folder):
            let stat = CgroupFile.read(folder + "/cpu.stat") ?? ""
            let micros = stat.split(separator: "\n").first { $0.hasPrefix("usage_usec ") }
                .flatMap { Double($0.split(separator: " ")[1]) }
            return (micros.map { $0 / 1e6 }, CgroupFile.read(folder + "/memory.peak").flatMap { Int64($0) })
        }
    }
}

/// The cgroup mounts and this process's groups, from /proc.
enum CgroupMounts {
    /// Version 1 controller → mount point, and the version 2 mount point if it is the only one
    /// with controllers.
    static func read() -> (v1: [String: String], v2: String?) {
        var v1: [String: String] = [:]
        var v2: String?
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let mountPoint = String(fields[4])
            switch tail[0] {
            case "cgroup":
                for option in tail[2].split(separator: ",") where v1Names.contains(String(option)) {
                    v1[String(option)] = mountPoint
                }
            case "cgroup2":
                let controllers = CgroupFile.read(mountPoint + "/cgroup.controllers") ?? ""
                if v2 == nil || !controllers.isEmpty { v2 = mountPoint }
            default:
                continue
            }
        }
        // A hybrid system's cgroup2 mount carries no controllers: the v1 hierarchies are the ones.
        return (v1, v1.isEmpty ? v2 : nil)
    }

    static let v1Names: Set<String> = ["cpuset", "cpu", "cpuacct", "memory", "devices", "pids", "freezer"]

    /// This process's group in each hierarchy: controller → path ("" for version 2).
    static func ownGroups() -> [String: String] {
        var groups: [String: String] = [:]
        let text = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            for controller in fields[1].split(separator: ",", omittingEmptySubsequences: false) {
                groups[String(controller)] = String(fields[2])
            }
        }
        return groups
    }
}

/// Reading and writing the small files of a cgroup folder.
enum CgroupFile {
    static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One write(2) of `value`: each is one command to the kernel. False with errno set.
    @discardableResult
    static func write(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
