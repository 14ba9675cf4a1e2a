import BerthClient
import BerthCore
import BerthTestSupport
import BerthWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// GPUs without a GPU: `nvidia-smi` is a script printing output recorded on GPU machines.
/// `berthd discover-units` prints units from it; `[discovery] gpus = "nvidia"` takes them at
/// start-up and on SIGHUP; runners are handed their GPUs by UUID; telemetry reaches /metrics.
@Suite("GPUs", .serialized)
struct GPUTests {
    static let model = "amazon.nova-micro-v1:0"
    static let gpu0 = "GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b70"
    static let gpu1 = "GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b71"

    func discoverUnits(_ arguments: [String]) throws -> CommandResult {
        try Products.run(Products.path("berthd"), ["discover-units"] + arguments)
    }

    @Test("discover-units prints one [[units]] table per GPU of an eight-GPU box, and CPU slices")
    func discoverEight() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let smi = try FakeNvidiaSMI(in: dir, inventory: FakeNvidiaSMI.eightH200)
        let result = try discoverUnits(["--gpus", "nvidia", "--nvidia-smi", smi.path, "--cpus", "0-9", "--cores-per-unit", "4"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(separator: "\n").filter { $0 == "[[units]]" }.count == 10, "\(result)")
        #expect(
            result.stdout.contains(
                "id = \"gpu-7\"\nkind = \"h200\"\ndevice = 7\nuuid = \"GPU-3b5c1d2e-8f41-4a7b-9c60-1d2e3f4a5b77\"\nmemory_mib = 143771\npool = \"dedicated\""
            )
        )
        #expect(result.stdout.contains("id = \"cpu-1\"\nkind = \"cpu\"\ncpus = \"4-7\""))
        #expect(result.stdout.contains("# cores 8-9 are left over"))
    }

    @Test("discover-units gives MIG instances units of their own")
    func discoverMIG() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let smi = try FakeNvidiaSMI(in: dir, inventory: FakeNvidiaSMI.migInventory, list: FakeNvidiaSMI.migList)
        let result = try discoverUnits(["--gpus", "nvidia", "--nvidia-smi", smi.path, "--pool", "shared"])
        #expect(result.status == 0, "\(result)")
        #expect(
            result.stdout.contains(
                "id = \"gpu-0-mig-0\"\nkind = \"a100-80gb-3g.40gb\"\ndevice = 0\nuuid = \"MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f\"\npool = \"shared\""
            )
        )
        #expect(result.stdout.contains("id = \"gpu-1\""))
        #expect(!result.stdout.contains("id = \"gpu-0\"\n"), "a GPU in MIG mode is not a unit itself")
    }

    @Test("discover-units without a GPU, or without nvidia-smi, fails with a message that says what to check")
    func discoverNothing() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let smi = try FakeNvidiaSMI(in: dir, inventory: FakeNvidiaSMI.noDevices, status: 6)
        let none = try discoverUnits(["--gpus", "nvidia", "--nvidia-smi", smi.path])
        #expect(none.status == 1, "\(none)")
        #expect(none.stderr.contains("found no GPU (exit 6: No devices were found)"), "\(none)")
        #expect(none.stdout.isEmpty)

        let missing = try discoverUnits(["--gpus", "nvidia", "--nvidia-smi", dir.file("no-such-nvidia-smi")])
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderr.contains("nvidia-smi not found at \(dir.file("no-such-nvidia-smi"))"), "\(missing)")
        #expect(missing.stderr.contains("install the NVIDIA driver"))

        let nothing = try discoverUnits([])
        #expect(nothing.status != 0)
        #expect(nothing.stderr.contains("--gpus nvidia"), "\(nothing)")
    }

    /// A runner that writes its environment beside itself, then ends as a fine-tuning job.
    static func envRunner(in dir: TemporaryDirectory) throws -> [String] {
        let path = dir.file("env-runner.sh")
        try """
        #!/bin/sh
        env > "$(dirname "$0")/job-$BERTH_JOB_ID.env"
        echo '{"event":"progress","fraction":1.0}'
        exit 0
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return ["/bin/sh", path, "{spec}"]
    }

    /// A daemon whose dedicated units are the GPUs `smi` lists.
    static func daemon(smi: FakeNvidiaSMI, runner: [String]) throws -> TemporaryDaemon {
        try TemporaryDaemon(
            config: TemporaryDaemon.config(
                dedicated: 0,
                runner: runner,
                extra: """

                    [discovery]
                    gpus = "nvidia"
                    nvidia_smi = "\(smi.path)"
                    sample_seconds = 0.2

                    """
            )
        )
    }

    static func units(_ daemon: TemporaryDaemon) throws -> [String: UnitView] {
        Dictionary(try daemon.units().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func environment(_ path: String) -> [String: String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return Dictionary(
            text.split(separator: "\n").compactMap { line in
                line.firstIndex(of: "=").map { (String(line[..<$0]), String(line[line.index(after: $0)...])) }
            },
            uniquingKeysWith: { a, _ in a }
        )
    }

    func runJob(_ daemon: TemporaryDaemon, reservation: String, name: String) throws -> Int {
        let submitted = try daemon.cli([
            "submit", name, "--reservation", reservation, "--kind", "fine-tuning", "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
            "--output", daemon.directory.file("out-\(name)"), "--model-name", "m-\(name)",
        ])
        #expect(submitted.status == 0, "\(submitted)")
        let words = submitted.stdout.split(separator: " ")
        let id = try #require(words.count > 2 ? Int(words[2]) : nil, "\(submitted)")
        let ended = try eventually(timeout: 60) {
            ["completed", "failed"].contains(try daemon.jobView(id).status)
        }
        #expect(ended, "job \(id) never ended\n\(daemon.log)")
        return id
    }

    @Test("discovered GPUs are units; a job sees exactly its GPU by UUID; a GPU gone while leased is kept and shown lost")
    func discoveredGPUsEndToEnd() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let smi = try FakeNvidiaSMI(in: dir, inventory: Array(FakeNvidiaSMI.eightH200.split(separator: "\n").prefix(2)).joined(separator: "\n"))
        let daemon = try Self.daemon(smi: smi, runner: try Self.envRunner(in: dir))
        try daemon.start()
        defer { daemon.stop() }

        let units = try Self.units(daemon)
        #expect(units["gpu-0"]?.kind == "h200")
        #expect(units["gpu-1"]?.device == 1)
        #expect(units["gpu-0"]?.state == .present)

        let reserved = try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"])
        #expect(reserved.status == 0, "\(reserved)")
        let id = try runJob(daemon, reservation: "train", name: "env")
        let env = environment(dir.file("job-\(id).env"))
        #expect(env["CUDA_VISIBLE_DEVICES"] == Self.gpu0, "\(env)")
        #expect(env["NVIDIA_VISIBLE_DEVICES"] == Self.gpu0)
        #expect(env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID")
        #expect(env["BERTH_UNITS"] == "gpu-0")
        #expect(env["BERTH_DEVICES"] == "0")

        // gpu-0 falls off the bus while leased: the reload keeps it, held, and says it is lost.
        try smi.record(inventory: FakeNvidiaSMI.eightH200.split(separator: "\n")[1] + "\n")
        let before = daemon.log.components(separatedBy: "config reloaded").count
        kill(try #require(daemon.pid), SIGHUP)
        _ = eventually(timeout: 15) { daemon.log.components(separatedBy: "config reloaded").count > before }
        let after = try Self.units(daemon)
        #expect(after["gpu-0"]?.state == .lost, "\(after)\n\(daemon.log)")
        #expect(after["gpu-0"]?.holder == "train")
        #expect(after["gpu-1"]?.state == .present)
        let table = try daemon.cli(["units"])
        #expect(table.stdout.split(separator: "\n").contains { $0.hasPrefix("gpu-0") && $0.contains("lost") }, "\(table)")

        // Its next job is still handed the GPU by the UUID it had.
        let again = try runJob(daemon, reservation: "train", name: "again")
        #expect(environment(dir.file("job-\(again).env"))["CUDA_VISIBLE_DEVICES"] == Self.gpu0)
    }

    @Test("a job on no GPU is shown none, not every GPU of the host")
    func cpuJobSeesNoGPU() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(dedicated: 2, runner: try Self.envRunner(in: dir)))
        try daemon.start()
        defer { daemon.stop() }
        #expect(try daemon.cli(["reserve", "cpu", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        let id = try runJob(daemon, reservation: "cpu", name: "cpu")
        let env = environment(dir.file("job-\(id).env"))
        #expect(env["BERTH_UNITS"] == "cpu-0", "\(env)")
        #expect(env["CUDA_VISIBLE_DEVICES"] == "")
        #expect(env["NVIDIA_VISIBLE_DEVICES"] == "void")
    }

    @Test("with [discovery] gpus and no GPU (exit 6) or no nvidia-smi, berthd starts on its configured units and says why")
    func daemonStartsWithoutGPUs() throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let smi = try FakeNvidiaSMI(in: dir, inventory: FakeNvidiaSMI.noDevices, status: 6)
        for (path, said) in [(smi.path, "found no GPU"), (dir.file("missing/nvidia-smi"), "not found at")] {
            let daemon = try TemporaryDaemon(
                config: TemporaryDaemon.config(
                    dedicated: 2,
                    extra: """

                        [discovery]
                        gpus = "nvidia"
                        nvidia_smi = "\(path)"

                        """
                )
            )
            try daemon.start()
            let units = try Self.units(daemon)
            #expect(units.keys.sorted() == ["cpu-0", "cpu-1", "cpu-shared-0", "cpu-shared-1"])
            #expect(daemon.log.contains("GPU discovery ([discovery] gpus) found no GPU units"), "\(daemon.log)")
            #expect(daemon.log.contains(said), "\(daemon.log)")
            #expect(daemon.stop() == 0)
        }
    }

    @Test("GPU utilization and memory reach /metrics per unit and per reservation, with how long a reservation's GPUs sat idle")
    func telemetry() async throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let inventory = Array(FakeNvidiaSMI.eightH200.split(separator: "\n").prefix(2)).joined(separator: "\n")
        let smi = try FakeNvidiaSMI(
            in: dir,
            inventory: inventory,
            telemetry: "0, \(Self.gpu0), 2, 1024\n1, \(Self.gpu1), 93, 70000\n"
        )
        let daemon = try Self.daemon(smi: smi, runner: try Self.envRunner(in: dir))
        try daemon.start()
        defer { daemon.stop() }
        #expect(try daemon.cli(["reserve", "quiet", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
        #expect(try daemon.cli(["reserve", "busy", "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)

        // Sampling runs on its own every 0.2 s: wait for a round that saw both reservations.
        var text = ""
        _ = try await eventuallyAwaiting(timeout: 30, every: 0.1) {
            let answer = try await SocketClient(socketPath: daemon.socket).send(method: "GET", path: "/metrics")
            text = String(decoding: answer.body, as: UTF8.self)
            return text.contains("berth_reservation_gpu_idle_seconds{reservation=\"busy\"}") && text.contains("reservation=\"quiet\"")
        }
        let lines = text.split(separator: "\n").map(String.init)
        func value(_ prefix: String) -> Double? {
            lines.first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect(value("berth_gpu_utilization_ratio{unit=\"gpu-0\",kind=\"h200\"}") == 0.02, "\(text)")
        #expect(value("berth_gpu_utilization_ratio{unit=\"gpu-1\",kind=\"h200\"}") == 0.93)
        #expect(value("berth_gpu_memory_used_bytes{unit=\"gpu-1\",kind=\"h200\"}").map { $0 / 1_048_576 } == 70000)
        #expect(value("berth_reservation_gpu_utilization_ratio{reservation=\"quiet\"}") == 0.02)
        #expect(value("berth_reservation_gpu_memory_used_bytes{reservation=\"busy\"}").map { $0 / 1_048_576 } == 70000)
        #expect(value("berth_reservation_gpu_idle_seconds{reservation=\"busy\"}") == 0, "a busy GPU is never idle")
        #expect(value("berth_reservation_gpu_idle_seconds{reservation=\"quiet\"}") != nil)
    }

    @Test("the usage report flags a reservation idle while its job ran on GPUs that sat under the threshold, and not one whose GPUs worked")
    func quietGPUsAreIdle() async throws {
        let dir = try TemporaryDirectory(prefix: "gpu")
        defer { dir.remove() }
        let inventory = Array(FakeNvidiaSMI.eightH200.split(separator: "\n").prefix(2)).joined(separator: "\n")
        let smi = try FakeNvidiaSMI(
            in: dir,
            inventory: inventory,
            telemetry: "0, \(Self.gpu0), 2, 1024\n1, \(Self.gpu1), 93, 70000\n"
        )
        // Each job holds its GPU for 3 s; spells over 1 s are flagged.
        let runner = dir.file("slow-runner.sh")
        try "#!/bin/sh\nsleep 3\necho '{\"event\":\"progress\",\"fraction\":1.0}'\n".write(toFile: runner, atomically: true, encoding: .utf8)
        chmod(runner, 0o755)
        let config = TemporaryDaemon.config(
            dedicated: 0,
            runner: ["/bin/sh", runner, "{spec}"],
            extra: "\n[discovery]\ngpus = \"nvidia\"\nnvidia_smi = \"\(smi.path)\"\nsample_seconds = 0.2\n"
        )
        let daemon = try TemporaryDaemon(
            config: config.replacingOccurrences(of: "stop_grace_seconds = 2", with: "stop_grace_seconds = 2\nidle_threshold_seconds = 1")
        )
        try daemon.start()
        defer { daemon.stop() }
        var jobs: [String: Int] = [:]
        for name in ["quiet", "busy"] {
            #expect(try daemon.cli(["reserve", name, "--model", Self.model, "--units", "1", "--purpose", "training"]).status == 0)
            let submitted = try daemon.cli([
                "submit", "\(name)-job", "--reservation", name, "--kind", "fine-tuning", "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
                "--output", dir.file("out-\(name)"), "--model-name", "m-\(name)",
            ])
            #expect(submitted.status == 0, "\(submitted)")
            jobs[name] = submitted.stdout.split(separator: " ").dropFirst(2).first.flatMap { Int($0) }
        }
        var shown: [String: JobView] = [:]
        for (name, id) in jobs { shown[name] = try await daemon.jobView(id, reaching: ["completed"]) }
        #expect(shown.count == 2, "\(shown)\n\(daemon.log)")
        let idle = try daemon.view(UsageReportView.self, ["usage", "--from", "-1h"]).idle
        func periods(_ name: String) -> [(Date, Date)] {
            (idle.first { $0.reservation == name }?.periods ?? []).map { ($0.start, $0.end) }
        }
        func during(_ name: String) -> Bool {
            guard let job = shown[name], let started = job.startedAt, let ended = job.endedAt else { return false }
            // An idle spell that covers the middle of the job's run.
            let middle = started.addingTimeInterval(ended.timeIntervalSince(started) / 2)
            return periods(name).contains { $0.0 <= middle && middle < $0.1 }
        }
        #expect(during("quiet"), "the job on the quiet GPU counts as idle: \(idle)")
        #expect(!during("busy"), "the job on the working GPU keeps its reservation busy: \(idle)")
    }
}
