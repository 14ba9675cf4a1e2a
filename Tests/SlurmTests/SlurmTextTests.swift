import BerthConfig
import BerthCore
import BerthExecutors
import BerthTestSupport
import Foundation
import Testing

/// What berthd sends Slurm and how it reads the answers, without a cluster.
@Suite("Slurm's words")
struct SlurmTextTests {
    @Test(
        "Slurm states map onto berth's; only COMPLETED is success",
        arguments: [
            ("PENDING", "Resources", "queued", Int32(1)),
            ("CONFIGURING", "None", "queued", 1),
            ("RUNNING", "None", "running", 1),
            ("COMPLETING", "None", "running", 1),
            ("COMPLETED", "None", "completed", 0),
            ("CANCELLED by 0", "None", "cancelled", 143),
            ("FAILED", "NonZeroExitCode", "failed", 1),
            ("TIMEOUT", "TimeLimit", "failed", 1),
            ("NODE_FAIL", "None", "failed", 1),
            ("OUT_OF_MEMORY", "OutOfMemory", "failed", 1),
            ("BOOT_FAIL", "None", "failed", 1),
            ("SOMETHING_NEW", "None", "unknown", 1),
        ]
    )
    func states(state: String, reason: String, expected: String, exit: Int32) {
        let mapped = SlurmJobState(state: state, reason: reason)
        let kind: String
        switch mapped {
        case .queued: kind = "queued"
        case .running: kind = "running"
        case .completed: kind = "completed"
        case .failed: kind = "failed"
        case .cancelled: kind = "cancelled"
        case .unknown: kind = "unknown"
        }
        #expect(kind == expected)
        #expect(mapped.hasEnded == !["queued", "running"].contains(expected))
        #expect(mapped.exitStatus == exit)
        if expected == "failed" {
            #expect(mapped.verdict(jobID: "7") == .failed("slurm job 7 ended \(state)\(reason == "None" ? "" : " (\(reason))"); see its log"))
        }
        if expected == "unknown" {
            guard case .failed(let why) = mapped.verdict(jobID: "7") else {
                Issue.record("an unknown state must fail the job, never pass as done")
                return
            }
            #expect(why.contains("SOMETHING_NEW"))
        }
    }

    @Test("a job gone from squeue with no sacct record fails: its end is unknown")
    func unknownIsFailure() {
        let state = SlurmJobState.unknown("gone from squeue, and sacct has no record of it")
        #expect(state.hasEnded && state.exitStatus != 0)
        #expect(state.verdict(jobID: "9") == .failed("slurm job 9: gone from squeue, and sacct has no record of it"))
    }

    @Test("squeue, sacct and sbatch answers are read as they print them")
    func answers() throws {
        let line = try #require(SlurmText.queueLine("12|PENDING|Reservation|0|berth-ab12cd34-job-5|65534|"))
        #expect(line.id == "12" && line.name == "berth-ab12cd34-job-5" && line.state == .queued("PENDING: Reservation"))
        #expect(line.uid == 65534)
        #expect(SlurmText.queueLine("") == nil)
        // squeue's exit_code is the wait status: exit 3, and a SIGKILL.
        #expect(SlurmText.queueLine("13|FAILED|NonZeroExitCode|768|j|")?.state.exitStatus == 3)
        #expect(SlurmText.queueLine("14|FAILED|None|9|j|")?.state.exitStatus == 137)
        let accounted = try #require(SlurmText.accountingLine("12|FAILED|3:0"))
        #expect(accounted.state == .failed(state: "FAILED", reason: "", exitCode: 3))
        #expect(accounted.state.exitStatus == 3)
        #expect(SlurmText.submittedID("4711\n") == "4711")
        #expect(SlurmText.submittedID("4711;cluster-b\n") == "4711")
        #expect(SlurmText.submittedID("sbatch: error: Batch job submission failed") == nil)
        let reservation = try #require(
            SlurmText.reservationLine("ReservationName=berth-x-r3 StartTime=2026-12-04T19:00:00 Nodes=gpu[1-2] NodeCnt=2 Users=berth")
        )
        #expect(reservation.name == "berth-x-r3" && reservation.nodes == "gpu[1-2]")
        let naming = SlurmNaming(token: "ab12cd34")
        #expect(naming.reservation(3) == "berth-ab12cd34-r3")
        #expect(naming.reservationID("berth-ab12cd34-r3") == 3)
        #expect(naming.reservationID("berth-ffffffff-r3") == nil)
        #expect(SlurmNaming(ledgerPath: "/a/berth.db") == SlurmNaming(ledgerPath: "/a/berth.db"))
        #expect(SlurmNaming(ledgerPath: "/a/berth.db") != SlurmNaming(ledgerPath: "/b/berth.db"))
    }

    @Test("the batch script runs the argv word for word: nothing in it is expanded, split or run")
    func batchScriptQuotes() throws {
        let dir = try TemporaryDirectory(prefix: "berth-script")
        defer { dir.remove() }
        let words = ["$HOME", "it's", "a b; touch \(dir.file("pwned"))", "`id`", "$(id)", "*", "\"quoted\"", "back\\slash", ""]
        let script = SlurmText.batchScript(
            argv: ["/usr/bin/printf", "<%s>\\n"] + words,
            environment: ["BERTH_UNITS": "u-1,u-2", "ODD": "x'$HOME\"y", "BAD-NAME": "left out"],
            gpus: false,
            addressFile: nil,
            port: nil
        )
        let path = dir.file("run.sh")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try Products.run("/bin/sh", [path])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == words.map { "<\($0)>\n" }.joined(), "\(result)\n\(script)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("pwned")))
        // The environment is set word for word too, and a name that is not a variable's is left out.
        let env = SlurmText.batchScript(
            argv: ["/bin/sh", "-c", "printf '%s|%s|%s' \"$ODD\" \"$BERTH_UNITS\" \"$CUDA_VISIBLE_DEVICES\""],
            environment: ["BERTH_UNITS": "u-1,u-2", "ODD": "x'$HOME\"y", "BAD-NAME": "left out"],
            gpus: false,
            addressFile: nil,
            port: nil
        )
        try env.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Products.run("/bin/sh", [path]).stdout == "x'$HOME\"y|u-1,u-2|")
        #expect(!env.contains("BAD-NAME"))
    }

    @Test("a serve job leaves its host and port before it runs; a GPU job's devices are the ones Slurm gave it")
    func serveAddressAndDevices() throws {
        let dir = try TemporaryDirectory(prefix: "berth-script")
        defer { dir.remove() }
        let script = SlurmText.batchScript(
            argv: ["/bin/sh", "-c", "echo \"$BERTH_DEVICES\""],
            environment: [:],
            gpus: true,
            addressFile: dir.file("address"),
            port: 4242
        )
        let path = dir.file("run.sh")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try Products.run("/bin/sh", [path], environment: ["CUDA_VISIBLE_DEVICES": "2,3"])
        #expect(result.stdout == "2,3\n", "\(result)")
        let address = try String(contentsOfFile: dir.file("address"), encoding: .utf8)
        #expect(address.hasSuffix(" 4242\n") && !address.hasPrefix(" "), "\(address)")
    }

    @Test("sbatch is asked for the units' nodes and, per node, the most GPUs any one node holds")
    func placement() {
        let units = [
            ComputeUnit(id: "a0", kind: "h200", device: 0, pool: .dedicated, node: "a"),
            ComputeUnit(id: "a1", kind: "h200", device: 1, pool: .dedicated, node: "a"),
            ComputeUnit(id: "b0", kind: "h200", device: 0, pool: .dedicated, node: "b"),
        ]
        let placed = SlurmText.placement(units)
        #expect(placed.nodes == ["a", "b"] && placed.gpusPerNode == 2 && placed.cpusPerTask == nil)
        let cpus = SlurmText.placement([ComputeUnit(id: "c", kind: "cpu", pool: .dedicated, cpus: "0-3", node: "c1")])
        #expect(cpus.nodes == ["c1"] && cpus.gpusPerNode == 0 && cpus.cpusPerTask == 4)
    }

    @Test("discover-units --slurm: one unit per GPU of each node's GRES, CPU nodes in core groups, one partition's nodes")
    func nodeUnits() {
        let output = """
            NodeName=gpu-1 Arch=x86_64 CoresPerSocket=32 CPUTot=64 Gres=gpu:a100:2(S:0-1) Partitions=gpu,all State=IDLE
            NodeName=gpu-2 Arch=x86_64 CPUTot=64 Gres=gpu:2,shard:8 Partitions=gpu State=IDLE
            NodeName=cpu-1 Arch=x86_64 CPUTot=10 Gres=(null) Partitions=cpu,all State=IDLE

            """
        let units = SlurmText.nodeUnits(output, coresPerUnit: 4, partition: nil, pool: .dedicated)
        #expect(units.map(\.id) == ["gpu-1-gpu-0", "gpu-1-gpu-1", "gpu-2-gpu-0", "gpu-2-gpu-1", "cpu-1-cpu-0", "cpu-1-cpu-1"])
        #expect(units.map(\.kind) == ["a100", "a100", "gpu", "gpu", "cpu", "cpu"])
        #expect(units.map(\.node) == ["gpu-1", "gpu-1", "gpu-2", "gpu-2", "cpu-1", "cpu-1"])
        #expect(units[5].cpus == "4-7" && units[1].device == 1)
        #expect(SlurmText.nodeUnits(output, coresPerUnit: nil, partition: "cpu", pool: .dedicated).map(\.cpus) == ["0-9"])
        // The TOML it prints reads back as the same units.
        let toml = GPUDiscovery.toml(units)
        #expect(toml.contains("executor = \"slurm\"\nnode = \"gpu-1\""))
    }
}

/// `[executors.slurm]` and units on nodes, checked with their key paths.
@Suite("Slurm config")
struct SlurmConfigTests {
    static let base = """
        [[models]]
        id = "m"
        provider = "P"
        input_modalities = ["text"]
        output_modalities = ["text"]
        max_tokens = 100
        on_demand = false
        units_per_model_unit = 1
        tokens_per_minute = 100
        [models.price]
        model_unit_hour = 1.0

        [runners]
        train = ["t"]
        batch = ["b"]
        serve = ["s", "{port}"]

        """

    func problems(_ toml: String) -> [String] {
        do {
            _ = try DaemonConfig.parse(Self.base + toml)
            return []
        } catch {
            return error.problems.map { "\($0.keyPath): \($0.message)" }
        }
    }

    @Test("a Slurm unit names its node, and the config says how to reach the cluster")
    func valid() throws {
        let config = try DaemonConfig.parse(
            Self.base + """
                [executors.slurm]
                partition = "gpu"
                shared_folder = "/shared/berth"
                account = "ml"
                sbatch = "/opt/slurm/bin/sbatch"
                poll_seconds = 2

                [[units]]
                id = "n1-gpu-0"
                kind = "h200"
                device = 0
                pool = "dedicated"
                executor = "slurm"
                node = "n1"

                [[units]]
                id = "cpu-0"
                kind = "cpu"
                pool = "dedicated"
                executor = "local"
                """
        )
        let slurm = try #require(config.slurm)
        #expect(slurm.partition == "gpu" && slurm.sharedFolder == "/shared/berth" && slurm.account == "ml")
        #expect(slurm.sbatch == "/opt/slurm/bin/sbatch" && slurm.squeue == "squeue" && slurm.pollSeconds == 2)
        #expect(config.units.map(\.node) == ["n1", nil])
    }

    @Test(
        "bad executors and nodes are refused with the key and the fix",
        arguments: [
            (
                "[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\nexecutor = \"slurm\"\nnode = \"n1\"\n",
                "units[0].executor: a Slurm unit needs [executors.slurm]"
            ),
            (
                "[executors.slurm]\npartition = \"p\"\nshared_folder = \"/s\"\n[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\nexecutor = \"slurm\"\n",
                "units[0].node: a Slurm unit needs its node"
            ),
            ("[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\nnode = \"n1\"\n", "units[0].node: only a unit with executor = \"slurm\""),
            ("[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\nexecutor = \"k8s\"\n", "units[0].executor: unknown executor 'k8s'"),
            (
                "[executors.slurm]\nshared_folder = \"/s\"\n[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\n",
                "executors.slurm.partition: missing required key"
            ),
            (
                "[executors.slurm]\npartition = \"p\"\nshared_folder = \"shared\"\n[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\n",
                "executors.slurm.shared_folder: 'shared' must be an absolute path"
            ),
            (
                "[executors.slurm]\npartition = \"p\"\nshared_folder = \"/s\"\nqueue = \"x\"\n[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\n",
                "executors.slurm.queue"
            ),
            (
                "[executors.kubernetes]\n[[units]]\nid = \"u\"\nkind = \"cpu\"\npool = \"dedicated\"\n",
                "executors.kubernetes"
            ),
        ]
    )
    func refused(toml: String, problem: String) {
        let found = problems(toml)
        #expect(found.contains { $0.hasPrefix(problem) }, "\(found)")
    }
}

/// One reservation, one executor: the planner never mixes this host's units with Slurm's.
@Suite("Placement by executor")
struct PlacementTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func reservation(_ id: Int64, units: Int, status: ReservationStatus = .pending) -> Reservation {
        Reservation(
            id: id,
            name: "r\(id)",
            owner: "alice",
            model: "m",
            purpose: .training,
            modelUnits: units,
            units: units,
            commitment: .none,
            start: now,
            end: now.addingTimeInterval(3600),
            duration: 3600,
            status: status,
            waiting: false,
            spillover: false,
            createdAt: now
        )
    }

    func activated(_ plan: Plan) -> [Int64: [String]] {
        var placed: [Int64: [String]] = [:]
        for step in plan.steps {
            switch step {
            case .activate(let id, _, _, let units, _): placed[id, default: []] += units
            case .grow(let id, let units, _): placed[id, default: []] += units
            default: break
            }
        }
        return placed
    }

    @Test("a reservation takes the units of the first executor that has them all, never some of each")
    func oneExecutor() {
        let snapshot = Snapshot(
            dedicatedUnits: ["local-0", "local-1", "n1-0", "n1-1", "n1-2"],
            reservations: [reservation(1, units: 1), reservation(2, units: 3), reservation(3, units: 2)],
            heldLeases: [],
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm", "n1-2": "slurm"]
        )
        let placed = activated(Planner.plan(snapshot, now: now))
        #expect(placed[1] == ["local-0"])
        // Three units: only Slurm has three.
        #expect(placed[2] == ["n1-0", "n1-1", "n1-2"])
        // Two units: one local left and no Slurm unit; never local-1 with a Slurm unit.
        #expect(placed[3] == nil)
    }

    @Test("an advance reservation starts on the executor it was admitted on, though another has room first")
    func startsOnItsExecutor() {
        var later = reservation(1, units: 2)
        later.executor = "slurm"
        let snapshot = Snapshot(
            dedicatedUnits: ["local-0", "local-1", "n1-0", "n1-1"],
            reservations: [later],
            heldLeases: [],
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm"]
        )
        #expect(activated(Planner.plan(snapshot, now: now))[1] == ["n1-0", "n1-1"])
    }

    @Test("pools: a reservation counts where it holds units, else where it was admitted, else in the first pool with room")
    func pools() {
        var onSlurm = reservation(2, units: 2)
        onSlurm.executor = "slurm"
        let legacy = reservation(3, units: 2)
        let snapshot = Snapshot(
            dedicatedUnits: ["local-0", "local-1", "n1-0", "n1-1", "n1-2"],
            reservations: [reservation(1, units: 1, status: .active), onSlurm, legacy],
            heldLeases: [Lease(unit: "n1-2", reservationID: 1, start: now, end: nil)],
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm", "n1-2": "slurm"]
        )
        let pools = snapshot.pools
        #expect(pools.map(\.executor) == ["", "slurm"])
        #expect(pools.map(\.calendar.total) == [2, 3])
        #expect(pools[1].calendar.bookings.map(\.reservationID).sorted() == [1, 2])
        // Recorded nowhere: the first pool with room over its window, this host's.
        #expect(pools[0].calendar.bookings.map(\.reservationID) == [3])
        // A fourth of 1 unit fits nowhere: 0 free here, 0 on Slurm, though the pool has 5.
        let (admission, executor, _) = Planner.admit(
            units: 1,
            start: now,
            commitment: .none,
            duration: 3600,
            wait: false,
            snapshot: snapshot,
            now: now
        )
        #expect(executor == nil)
        guard case .refuse(let refusal) = admission else {
            Issue.record("admitted: \(admission)")
            return
        }
        #expect(refusal.free == 0 && refusal.total == 3)
        // With --wait it queues; the waiting one starts on the first executor that frees up.
        #expect(Planner.admit(units: 1, start: now, commitment: .none, duration: 3600, wait: true, snapshot: snapshot, now: now).admission == .queue)
    }

    @Test("units added to an active reservation come from its own executor")
    func growsWithinItsExecutor() {
        var grown = reservation(1, units: 2, status: .active)
        grown.modelUnits = 2
        let snapshot = Snapshot(
            dedicatedUnits: ["local-0", "n1-0", "n1-1"],
            reservations: [grown],
            heldLeases: [Lease(unit: "n1-0", reservationID: 1, start: now, end: nil)],
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm"]
        )
        #expect(activated(Planner.plan(snapshot, now: now))[1] == ["n1-1"])
    }

    /// Two Slurm nodes of two units each, after one local unit.
    func cluster(_ reservations: [Reservation], held: [Lease] = []) -> Snapshot {
        Snapshot(
            dedicatedUnits: ["local-0", "n1-0", "n1-1", "n2-0", "n2-1"],
            reservations: reservations,
            heldLeases: held,
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm", "n2-0": "slurm", "n2-1": "slurm"]
        )
    }

    func admit(_ units: Int, at start: Date, for seconds: TimeInterval, in snapshot: Snapshot) -> (Admission, String?, [String]) {
        let decided = Planner.admit(units: units, start: start, commitment: .none, duration: seconds, wait: false, snapshot: snapshot, now: now)
        return (decided.admission, decided.executor, decided.pinned)
    }

    @Test("admission pins Slurm units free for the whole window, skipping those held past its start; this host's stay unpinned")
    func pinsAtAdmission() {
        var running = reservation(1, units: 1, status: .active)
        running.end = now.addingTimeInterval(7200)
        let snapshot = cluster([running], held: [Lease(unit: "n1-0", reservationID: 1, start: now, end: nil)])
        // Tomorrow, two units: n1-0 is held until two hours from now, so not it.
        let (admission, executor, pinned) = admit(2, at: now.addingTimeInterval(3600), for: 3600, in: snapshot)
        #expect(admission == .admit(start: now.addingTimeInterval(3600), end: now.addingTimeInterval(7200)))
        #expect(executor == "slurm" && pinned == ["n1-1", "n2-0"])
        // After the holder's end, n1-0 is free again.
        #expect(admit(2, at: now.addingTimeInterval(7200), for: 3600, in: snapshot).2 == ["n1-0", "n1-1"])
        // One unit fits on this host first: nothing is pinned there.
        let local = admit(1, at: now, for: 3600, in: snapshot)
        #expect(local.1 == "" && local.2.isEmpty)
    }

    @Test("when the count fits but no Slurm units are free for the whole window, admission is refused with the earliest start that fits")
    func pinsMustCoverTheWindow() {
        // 4 Slurm units: two held until +1h, two pinned from +1h to +2h. Two more units from
        // now to +90 min fit by count (2 free now, 2 free in +1h..+90min), but no unit is
        // free over the whole window.
        var running = reservation(1, units: 2, status: .active)
        running.end = now.addingTimeInterval(3600)
        var later = reservation(2, units: 2)
        later.start = now.addingTimeInterval(3600)
        later.end = now.addingTimeInterval(7200)
        later.executor = "slurm"
        later.pinnedUnits = ["n2-0", "n2-1"]
        let snapshot = Snapshot(
            dedicatedUnits: ["n1-0", "n1-1", "n2-0", "n2-1"],
            reservations: [running, later],
            heldLeases: [Lease(unit: "n1-0", reservationID: 1, start: now, end: nil), Lease(unit: "n1-1", reservationID: 1, start: now, end: nil)],
            unitExecutors: ["n1-0": "slurm", "n1-1": "slurm", "n2-0": "slurm", "n2-1": "slurm"]
        )
        #expect(snapshot.pools[0].calendar.minFree(from: now, to: now.addingTimeInterval(5400)) == 2)
        let (admission, _, pinned) = admit(2, at: now, for: 5400, in: snapshot)
        #expect(pinned.isEmpty)
        #expect(admission == .refuse(CapacityRefusal(needed: 2, free: 0, total: 4, earliestStart: now.addingTimeInterval(3600))))
        // Ending when the pinned one starts, it fits, on the pinned units.
        #expect(admit(2, at: now, for: 3600, in: snapshot).2 == ["n2-0", "n2-1"])
    }

    @Test("a pinned reservation starts on its pinned units; others are placed around units pinned over their window")
    func startsOnItsPins() {
        var pinned = reservation(1, units: 2)
        pinned.executor = "slurm"
        pinned.pinnedUnits = ["n2-0", "n2-1"]
        var unpinned = reservation(2, units: 2)
        unpinned.executor = "slurm"
        let plan = Planner.plan(cluster([pinned, unpinned]), now: now)
        #expect(activated(plan)[1] == ["n2-0", "n2-1"])
        #expect(activated(plan)[2] == ["n1-0", "n1-1"])

        // Pinned from +1h: a reservation starting now and ending before then may use those units.
        pinned.start = now.addingTimeInterval(3600)
        pinned.end = now.addingTimeInterval(7200)
        var short = reservation(3, units: 2, status: .active)
        short.end = now.addingTimeInterval(3600)
        var long = reservation(4, units: 2, status: .active)
        long.end = now.addingTimeInterval(5400)
        let snapshot = cluster(
            [pinned, short, long],
            held: [Lease(unit: "n1-0", reservationID: 4, start: now, end: nil), Lease(unit: "n1-1", reservationID: 4, start: now, end: nil)]
        )
        // The active ones short of units grow: the short one into the pinned units (it ends in
        // time), the long one nowhere else (it holds what it has).
        #expect(activated(Planner.plan(snapshot, now: now))[3] == ["n2-0", "n2-1"])
        var overlapping = short
        overlapping.end = now.addingTimeInterval(3601)
        let blocked = Planner.plan(cluster([pinned, overlapping], held: snapshot.heldLeases), now: now)
        #expect(activated(blocked)[3] == nil)
        #expect(blocked.deferred.map(\.reservationID) == [3])
    }

    @Test("a pinned reservation whose units are still held waits for them instead of taking others")
    func waitsForItsPins() {
        var pinned = reservation(1, units: 1)
        pinned.executor = "slurm"
        pinned.pinnedUnits = ["n1-0"]
        let ended = Lease(unit: "n1-0", reservationID: 9, start: now.addingTimeInterval(-60), end: nil)
        let plan = Planner.plan(cluster([pinned], held: [ended]), now: now)
        #expect(activated(plan)[1] == nil)
        #expect(plan.deferred.first?.reason.contains("n1-0") == true)
    }

    @Test("growth of a pinned reservation not started yet pins more units free over its window; refused when none are")
    func pinnedGrowth() {
        var pinned = reservation(1, units: 1)
        pinned.start = now.addingTimeInterval(3600)
        pinned.end = now.addingTimeInterval(7200)
        pinned.executor = "slurm"
        pinned.pinnedUnits = ["n1-0"]
        var other = reservation(2, units: 2)
        other.start = now.addingTimeInterval(1800)
        other.end = now.addingTimeInterval(5400)
        other.executor = "slurm"
        other.pinnedUnits = ["n1-1", "n2-0"]
        let snapshot = cluster([pinned, other])
        #expect(Planner.admitPinnedGrowth(pinned, to: 2, snapshot: snapshot, now: now) == .admit(pinned: ["n1-0", "n2-1"]))
        #expect(
            Planner.admitPinnedGrowth(pinned, to: 3, snapshot: snapshot, now: now)
                == .refuse(CapacityRefusal(needed: 2, free: 1, total: 4, earliestStart: nil))
        )
        // This host's reservations have nothing pinned, and the count alone decides.
        var local = reservation(3, units: 1)
        local.executor = ""
        #expect(Planner.admitPinnedGrowth(local, to: 4, snapshot: snapshot, now: now) == .admit(pinned: []))
    }
}
