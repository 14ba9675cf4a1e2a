import BerthClient
import BerthCore
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// Runners confined by the kernel: each job runs in a cgroup of its own with its units' cores,
/// its memory cap and only its own GPUs, and nothing it starts outlives it. These need root and
/// cgroup v1 hierarchies, which this project's CI machines have.
enum CgroupHost {
    static var usable: Bool {
        geteuid() == 0 && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpuset/cpuset.cpus")
    }
}

@Suite("Runners confined by cgroups", .serialized, .enabled(if: CgroupHost.usable))
struct ConfinementTests {
    static let model = "amazon.nova-micro-v1:0"

    /// The runner of every job here: records what it sees into `job-<id>/` beside itself, then
    /// does what `behaviour` says.
    static func runner(in dir: TemporaryDirectory, behaviour: String) throws -> [String] {
        let path = dir.file("runner.sh")
        try """
        #!/bin/sh
        here="$(dirname "$0")"
        out="$here/job-$BERTH_JOB_ID"
        mkdir -p "$out"
        echo "$BERTH_UNITS" > "$out/units"
        grep Cpus_allowed_list /proc/self/status | tr -d ' \\t' | cut -d: -f2 > "$out/cpus"
        for n in 0 1 7; do ( : < "$here/nvidia$n" ) 2> "$out/open-$n"; done
        \(behaviour)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return ["/bin/sh", path, "{spec}"]
    }

    /// Two dedicated units, each naming one core, as GPUs when `gpus` (devices 0 and 1).
    static func config(runner: [String], gpus: Bool = false, extra: String = "") -> String {
        var toml = TemporaryDaemon.config(dedicated: 2, runner: runner, extra: extra)
        for (index, core) in [(0, 1), (1, 0)] {
            toml = toml.replacingOccurrences(
                of: "id = \"cpu-\(index)\"\nkind = \"cpu\"\ndevice = \(index)\npool = \"dedicated\"\n",
                with: "id = \"cpu-\(index)\"\nkind = \"\(gpus ? "h200" : "cpu")\"\ndevice = \(index)\npool = \"dedicated\"\ncpus = \"\(core)\"\n"
            )
        }
        return toml
    }

    func submit(_ daemon: TemporaryDaemon, name: String) throws -> Int {
        let data = "\(TemporaryDaemon.examples)/fine-tuning.jsonl"
        let result = try daemon.cli([
            "submit", name, "--reservation", "train", "--kind", "fine-tuning", "--data", data,
            "--output", daemon.directory.file("out-\(name)"), "--model-name", "m-\(name)",
        ])
        #expect(result.status == 0, "\(result)")
        let words = result.stdout.split(separator: " ")
        return try #require(words.count > 2 ? Int(words[2]) : nil, "\(result)")
    }

    func read(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Processes still running that were started for job `id` of this daemon.
    func leftovers(_ daemon: TemporaryDaemon, job id: Int) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return variables.contains("BERTH_JOB_ID=\(id)") && variables.contains("BERTH_LEDGER=\(daemon.database)")
        }
    }

    @Test("a job on one CPU unit sees only that unit's cores; berth status says what confinement is in force")
    func cpuSet() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: "exit 0")))
        try daemon.start()
        let status = try daemon.view(HealthView.self, ["status"])
        #expect(status.confinement == "cpu yes, memory yes, devices yes, tasks yes", "\(status)")

        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "cores")
        let job = try await daemon.jobView(id, reaching: ["completed", "failed"])
        // What the runner used, as its cgroup counted it, is kept with the job.
        #expect(job.cpuSeconds.map { $0 >= 0 } == true, "\(job)")
        #expect(job.peakMemoryBytes.map { $0 > 0 } == true, "\(job)")
        #expect(try daemon.cli(["jobs", String(id)]).stdout.contains("peak memory"))
        let unit = read(scripts.file("job-\(id)/units"))
        #expect(["cpu-0", "cpu-1"].contains(unit))
        #expect(read(scripts.file("job-\(id)/cpus")) == (unit == "cpu-0" ? "1" : "0"), "\(daemon.log)")
    }

    @Test("a unit smaller than a core is a CPU quota: a job on a quarter-core unit gets a quarter of a core's time")
    func cpuQuota() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        // The quota the runner's group has, then a second and a half of busy looping.
        let behaviour = """
            group=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ { print $3 }' /proc/self/cgroup)
            for root in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct; do
                [ -f "$root$group/cpu.cfs_quota_us" ] && cat "$root$group/cpu.cfs_quota_us" > "$out/quota" && break
            done
            end=$(($(date +%s) + 2)); while [ "$(date +%s)" -lt "$end" ]; do :; done
            exit 0
            """
        var config = TemporaryDaemon.config(dedicated: 2, runner: try Self.runner(in: scripts, behaviour: behaviour))
        for index in 0..<2 {
            config = config.replacingOccurrences(
                of: "id = \"cpu-\(index)\"\nkind = \"cpu\"\ndevice = \(index)\npool = \"dedicated\"\n",
                with: "id = \"cpu-\(index)\"\nkind = \"cpu\"\ndevice = \(index)\npool = \"dedicated\"\ncpu_share = 0.25\n"
            )
        }
        let daemon = try TemporaryDaemon(config: config)
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "quarter")
        let job = try await daemon.jobView(id, reaching: ["completed", "failed"])
        #expect(job.status == "completed", "\(job)\n\(daemon.log)")
        #expect(read(scripts.file("job-\(id)/quota")) == "25000", "the group's cpu.cfs_quota_us")
        // The kernel held it to a quarter of a core while it spun: far under its wall time.
        let started = try #require(job.startedAt)
        let ended = try #require(job.endedAt)
        let cpu = try #require(job.cpuSeconds, "\(job)")
        #expect(cpu < 0.6 * ended.timeIntervalSince(started), "\(cpu) s of CPU in \(ended.timeIntervalSince(started)) s")
    }

    @Test("what a confined job used reaches berth jobs, the usage report and /metrics; a job under a second is busy for its milliseconds")
    func usageToTheMillisecond() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        // A fraction of a second of CPU, then done.
        let burn = "i=0; while [ $i -lt 60000 ]; do i=$((i + 1)); done; exit 0"
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: burn)))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "burn")
        let job = try await daemon.jobView(id, reaching: ["completed", "failed"])
        #expect(job.status == "completed", "\(job)\n\(daemon.log)")
        let cpu = try #require(job.cpuSeconds, "\(job)")
        #expect(cpu > 0, "\(job)")

        // Times to the millisecond: the run lasted what its start and end say, and kept its unit busy that long.
        let started = try #require(job.startedAt, "\(job)")
        let ended = try #require(job.endedAt, "\(job)")
        let busy = job.busyUnitSeconds
        #expect(ended > started, "\(job)")
        #expect(abs(busy - ended.timeIntervalSince(started)) < 0.002, "\(job)")

        // The usage report to now holds the job's CPU time next to the unit-hours it held.
        let report = try daemon.view(UsageReportView.self, ["usage", "--from", "-1h"])
        let row = try #require(report.rows.first { $0.key == "train" }, "\(report)")
        #expect(abs(row.cpuSeconds - cpu) < 0.000_01, "\(row) vs \(cpu)")
        #expect(row.busyUnitHours > 0, "\(row)")
        #expect(try daemon.cli(["usage", "--from", "-1h"]).stdout.contains("CPU S"))

        // And /metrics, per reservation.
        let response = try await SocketClient(socketPath: daemon.socket).send(method: "GET", path: "/metrics")
        let exposition = try Exposition(parsing: String(decoding: response.body, as: UTF8.self))
        let scraped = try #require(exposition.value("berth_reservation_runner_cpu_seconds", ["reservation": "train"]))
        #expect(abs(scraped - cpu) < 0.000_01, "\(scraped) vs \(cpu)")
        let peak = try #require(exposition.value("berth_reservation_runner_peak_memory_bytes", ["reservation": "train"]))
        #expect(peak == Double(job.peakMemoryBytes ?? -1))
    }

    @Test("what a confined serve process used is kept with its reservation when it ends, and shown in berth reservations NAME")
    func serveProcessUsage() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: "exit 0")))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "chat", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        #expect(try daemon.cli(["invoke", "chat", "--prompt", "what does the ledger keep", "--max-tokens", "16"]).status == 0)
        #expect(try daemon.cli(["release", "chat"]).status == 0)
        // The serve process ends after the release; what it used is written then.
        let kept = try eventually(timeout: 30) {
            try daemon.reservation("chat").servePeakMemoryBytes.map { $0 > 0 } ?? false
        }
        let shown = try daemon.reservation("chat")
        #expect(kept, "\(shown)\n\(daemon.log)")
        #expect(shown.serveCpuSeconds.map { $0 > 0 } == true, "\(shown)")
        #expect(try daemon.cli(["reservations", "chat"]).stdout.contains("serve peak memory"))
    }

    @Test("a job opens its own GPU's device node, and the cgroup refuses the other GPU's with EPERM")
    func deviceRules() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        // 7 is a GPU the config does not name: refused all the same.
        for minor in [0, 1, 7] {
            // Character nodes of major 195 like /dev/nvidia0 and /dev/nvidia1; no driver is
            // behind them, so an open the cgroup lets through fails with ENXIO instead.
            #expect(mknod(scripts.file("nvidia\(minor)"), S_IFCHR | 0o666, dev_t((195 << 8) | minor)) == 0)
        }
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: "exit 0"), gpus: true))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "gpu")
        _ = try await daemon.job(id, reaching: ["completed", "failed"])
        let held = read(scripts.file("job-\(id)/units")) == "cpu-0" ? 0 : 1
        let own = read(scripts.file("job-\(id)/open-\(held)"))
        let other = read(scripts.file("job-\(id)/open-\(1 - held)"))
        #expect(!own.contains("Operation not permitted"), "own GPU refused: \(own)")
        #expect(own.contains("No such device"), "\(own)")
        #expect(other.contains("Operation not permitted"), "other GPU: \(other)")
        let unnamed = read(scripts.file("job-\(id)/open-7"))
        #expect(unnamed.contains("Operation not permitted"), "a GPU outside the config: \(unnamed)")
    }

    @Test("a job over its memory cap is killed by the kernel and fails with out-of-memory")
    func outOfMemory() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        // tail keeps the whole of a line without a newline: 256 MiB of zeros, over a 32 MiB cap.
        let runner = try Self.runner(in: scripts, behaviour: "head -c 268435456 /dev/zero | tail > /dev/null\nexit $?")
        let daemon = try TemporaryDaemon(config: Self.config(runner: runner, extra: "\n[confinement]\nmemory_per_unit_mib = 32\n"))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "hungry")
        let job = try await daemon.jobView(id, reaching: ["completed", "failed"])
        #expect(job.status == "failed")
        #expect(job.reason == "out-of-memory", "\(job)")
    }

    @Test("a runner that double-forks a child into a new session: berth stop leaves no process behind")
    func doubleFork() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        let runner = try Self.runner(
            in: scripts,
            behaviour: """
                setsid sh -c 'sleep 300' < /dev/null > /dev/null 2>&1 &
                touch "$out/forked"
                sleep 300
                """
        )
        let daemon = try TemporaryDaemon(config: Self.config(runner: runner))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "forker")
        _ = try await daemon.job(id, reaching: ["running"])
        _ = await eventuallyAwaiting(timeout: 20) {
            FileManager.default.fileExists(atPath: scripts.file("job-\(id)/forked")) && leftovers(daemon, job: id).count >= 3
        }
        #expect(leftovers(daemon, job: id).count >= 3, "the runner, its sleep and the escaped sleep")
        #expect(try daemon.cli(["stop", String(id)]).status == 0)
        let job = try await daemon.jobView(id, reaching: ["stopped", "failed", "completed"])
        #expect(job.status == "stopped")
        _ = await eventuallyAwaiting(timeout: 5) { leftovers(daemon, job: id).isEmpty }
        #expect(leftovers(daemon, job: id).isEmpty, "left behind: \(leftovers(daemon, job: id))")
    }

    @Test("after kill -9 of berthd, the next one removes the cgroups it left and kills what ran in them")
    func leftoversAfterKill() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: "sleep 300")))
        try daemon.start()
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try submit(daemon, name: "sleeper")
        _ = try await daemon.job(id, reaching: ["running"])
        let first = try #require(daemon.pid)
        let folder = "/sys/fs/cgroup/cpuset/berthd-\(first)"
        #expect(FileManager.default.fileExists(atPath: folder))
        daemon.kill9()
        try daemon.start()
        #expect(!FileManager.default.fileExists(atPath: folder), "left behind: \(folder)")
        #expect(leftovers(daemon, job: id).isEmpty)
    }

    @Test("a berthd that cannot make cgroups says so in berth status and still runs jobs")
    func withoutCgroups() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-confine")
        defer { scripts.remove() }
        chmod(scripts.path, 0o777)
        let daemon = try TemporaryDaemon(config: Self.config(runner: try Self.runner(in: scripts, behaviour: "exit 0")), as: .nobody)
        try daemon.start()
        let status = try daemon.view(HealthView.self, ["status"])
        #expect(status.confinement?.hasSuffix("— not root") == true, "\(status)")
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let plain = try submit(daemon, name: "plain")
        let job = try await daemon.jobView(plain, reaching: ["completed", "failed"])
        #expect(job.status == "completed", "\(job)\n\(daemon.log)")
        #expect(job.peakMemoryBytes == nil, "an unconfined runner has no cgroup to count it")
    }
}
