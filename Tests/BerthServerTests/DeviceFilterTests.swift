import BerthExecutors
import BerthTestSupport
import Foundation
import Testing

@testable import BerthExecutors

#if canImport(Glibc)
import Glibc
#endif

/// Device rules under cgroup version 2, on the real kernel: a cgroup2 hierarchy of the test's
/// own is mounted (it needs no controller: device rules there are BPF programs), and a shell in
/// a group with the rules tries to open GPU nodes made with mknod.
@Suite("Device rules under cgroup v2", .serialized, .enabled(if: geteuid() == 0))
struct DeviceFilterTests {
    @Test("a BPF device program on a v2 group refuses the GPUs it names with EPERM and lets the others through to the driver")
    func deniesNamedGPUs() throws {
        let dir = try TemporaryDirectory(prefix: "berth-cg2")
        defer { dir.remove() }
        let hierarchy = dir.file("cgroup2")
        #expect(mkdir(hierarchy, 0o755) == 0)
        try #require(mount("none", hierarchy, "cgroup2", 0, nil) == 0, "mount cgroup2: \(String(cString: strerror(errno)))")
        defer { umount2(hierarchy, Int32(MNT_DETACH)) }
        let group = hierarchy + "/runner"
        #expect(mkdir(group, 0o755) == 0)
        defer { rmdir(group) }
        for minor in [0, 1, 7] {
            #expect(mknod(dir.file("nvidia\(minor)"), S_IFCHR | 0o666, dev_t((195 << 8) | minor)) == 0)
        }

        try DeviceFilter.deny([DeviceNumber.nvidiaGPU(1), DeviceNumber.nvidiaGPU(7)], inGroup: group)

        let shell = try ChildProcess.output(
            "/bin/sh",
            ["-c", "echo $$ > '\(group)/cgroup.procs' && for n in 0 1 7; do ( : < '\(dir.path)/nvidia'$n ) 2> '\(dir.path)/open-'$n; done; true"],
            timeout: 30
        )
        let said = String(decoding: shell.err, as: UTF8.self)
        #expect(shell.status == 0, "\(said)")
        func opened(_ minor: Int) -> String { (try? String(contentsOfFile: dir.file("open-\(minor)"), encoding: .utf8)) ?? "" }
        // No driver is behind these nodes: a node the rules let through fails in the driver.
        #expect(opened(0).contains("No such device"), "\(opened(0))")
        #expect(opened(1).contains("Operation not permitted"), "\(opened(1))")
        #expect(opened(7).contains("Operation not permitted"), "\(opened(7))")
    }

    @Test("root may load a device program; the probe says so")
    func probe() {
        #expect(DeviceFilter.refusal() == nil)
    }

    @Test("a runner's group under v2: berthd in a leaf beside it, the device rules attached, and ending it kills all it holds")
    func versionTwoTree() throws {
        let dir = try TemporaryDirectory(prefix: "berth-cg2")
        defer { dir.remove() }
        let hierarchy = dir.file("cgroup2")
        #expect(mkdir(hierarchy, 0o755) == 0)
        try #require(mount("none", hierarchy, "cgroup2", 0, nil) == 0, "mount cgroup2: \(String(cString: strerror(errno)))")
        defer {
            // This process was moved into the leaf: back to the top, so the folders can go.
            _ = try? "\(getpid())".write(toFile: hierarchy + "/cgroup.procs", atomically: false, encoding: .utf8)
            rmdir(hierarchy + "/daemon")
            umount2(hierarchy, Int32(MNT_DETACH))
        }
        let (opened, support) = CgroupTree.openV2(mount: hierarchy, own: "/", tag: "berthd-test")
        let tree = try #require(opened, "\(support)")
        #expect(support.devices, "\(support)")
        #expect(((try? String(contentsOfFile: hierarchy + "/daemon/cgroup.procs", encoding: .utf8)) ?? "").contains("\(getpid())"))
        #expect(mknod(dir.file("nvidia1"), S_IFCHR | 0o666, dev_t((195 << 8) | 1)) == 0)

        let group = try tree.makeGroup("job-1", bounds: RunnerBounds(deniedDevices: [.nvidiaGPU(1)]))
        let folder = hierarchy + "/berthd-test/job-1"
        // A shell that joins, tries the GPU it does not hold, then leaves a child in a new session.
        let shell = try ChildProcess(
            "/bin/sh",
            [
                "-c",
                "echo $$ > '\(folder)/cgroup.procs' && ( : < '\(dir.path)/nvidia1' ) 2> '\(dir.path)/open-1'; setsid sleep 300 & echo $! > '\(dir.path)/child'; wait",
            ]
        )
        var child: Int32 = 0
        _ = eventually(timeout: 2, every: 0.02) {
            child =
                Int32(((try? String(contentsOfFile: dir.file("child"), encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            return child > 0
        }
        try #require(child > 0)
        #expect(((try? String(contentsOfFile: dir.file("open-1"), encoding: .utf8)) ?? "").contains("Operation not permitted"))

        group.killAll()
        shell.wait()
        #expect(eventually(timeout: 2, every: 0.02) { kill(child, 0) != 0 }, "the child in a session of its own outlived the group")
        group.remove()
        tree.remove()
        #expect(!FileManager.default.fileExists(atPath: folder))
    }
}
