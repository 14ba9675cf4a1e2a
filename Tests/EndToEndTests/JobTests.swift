import BerthCore
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// Jobs through the real daemon and CLI: submission checks, queues, runner processes.
@Suite("Jobs end to end", .serialized)
struct JobTests {
    static let model = "amazon.nova-micro-v1:0"
    static var examples: String { TemporaryDaemon.examples }

    /// A daemon whose runner is the fake shell runner, with a training reservation `train` of
    /// `units` model units.
    func daemon(units: Int = 2, fake: Bool = true) throws -> (TemporaryDaemon, TemporaryDirectory) {
        let scripts = try TemporaryDirectory(prefix: "berth-fake")
        let runner = fake ? try FakeRunner.install(in: scripts) : nil
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(runner: runner))
        try daemon.start()
        let reserved = try daemon.cli(["reserve", "train", "--model", Self.model, "--units", String(units), "--purpose", "training"])
        #expect(reserved.status == 0, "\(reserved)")
        return (daemon, scripts)
    }

    /// A copy of an example dataset whose name tells the fake runner what to do.
    func dataset(_ dir: TemporaryDirectory, named name: String, from example: String = "fine-tuning.jsonl") throws -> String {
        let path = dir.file(name)
        try FileManager.default.copyItem(atPath: "\(Self.examples)/\(example)", toPath: path)
        chmod(path, 0o644)
        return path
    }

    func submit(
        _ daemon: TemporaryDaemon,
        _ name: String,
        data: String,
        output: String,
        extra: [String] = [],
        as user: TestUser? = nil
    ) throws -> CommandResult {
        try daemon.cli(
            [
                "submit", name, "--reservation", "train", "--kind", "fine-tuning", "--data", data, "--output", output,
                "--model-name", "custom-\(name)",
            ] + extra,
            as: user
        )
    }

    func job(_ daemon: TemporaryDaemon, _ id: Int) throws -> JobView {
        try daemon.jobView(id)
    }

    /// Waits until job `id` reaches one of `statuses`.
    @discardableResult
    /// Alive, and not a zombie waiting for a parent that does not reap (PID 1 in a container).
    func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    func submittedID(_ result: CommandResult) throws -> Int {
        let words = result.stdout.split(separator: " ")
        return try #require(words.count > 2 ? Int(words[2]) : nil, "\(result)")
    }

    @Test("a job runs on its reservation's units, its events reach the ledger and its stray lines the log")
    func runsAndRecords() async throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let out = daemon.directory.file("out-1")
        let result = try submit(daemon, "ft", data: try dataset(daemon.directory, named: "ok.jsonl"), output: out)
        #expect(result.status == 0, "\(result)")
        let id = try submittedID(result)
        let done = try await daemon.jobView(id, reaching: ["completed", "failed"])
        #expect(done.status == "completed")
        #expect(done.progress == 1)
        #expect(done.inputTokens == 100)
        #expect(done.metrics.compactMap(\.trainingLoss) == [9, 8, 7])
        // BERTH_UNITS is a subset of the units the reservation leases.
        let seen = try String(contentsOfFile: scripts.file("\(id).units"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
        let leased = try daemon.reservation("train").leases.map(\.unit)
        #expect(!seen.isEmpty && Set(seen).isSubset(of: Set(leased)))
        let log = try daemon.cli(["logs", String(id)])
        #expect(log.stdout.contains("fake runner: job \(id)"))
        #expect(log.stdout.contains("a line that is not an event"))
        // The custom model is registered with its metrics, and metrics.csv is beside it.
        let model = try daemon.view(ModelView.self, ["models", "custom-ft"])
        #expect(model.custom == true)
        #expect(model.baseModel == Self.model)
        #expect(model.finalMetrics?["validation_loss"] == 4.5)
        let csv = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8)
        #expect(csv.hasPrefix("step,epoch,training_loss,validation_loss\n1,1,9.0,"))
    }

    @Test("a relative --data (with . and empty components) names the file from the caller's directory")
    func relativeData() throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let cwd = FileManager.default.currentDirectoryPath
        try #require(Self.examples.hasPrefix(cwd + "/"), "the tests run from the package's folder")
        let relative = "./" + Self.examples.dropFirst(cwd.count + 1) + "/.//fine-tuning.jsonl"
        let result = try daemon.cli([
            "submit", "rel", "--reservation", "train", "--kind", "fine-tuning", "--data", relative, "--output", daemon.directory.file("rel"),
            "--model-name", "rel",
        ])
        #expect(result.status == 0, "\(result)")
        let job = try daemon.view(JobView.self, ["jobs", String(try submittedID(result))])
        #expect(job.data == Self.examples + "/fine-tuning.jsonl")
    }

    @Test("fine-tuning with the reference runner completes, and its custom model appears with metrics and metrics.csv")
    func referenceFineTuning() async throws {
        let (daemon, scripts) = try daemon(fake: false)
        defer { scripts.remove() }
        let out = daemon.directory.file("nova-ft")
        let result = try daemon.cli([
            "submit", "ft", "--reservation", "train", "--kind", "fine-tuning", "--data", "\(Self.examples)/fine-tuning.jsonl",
            "--validation-data", "\(Self.examples)/fine-tuning-validation.jsonl", "--output", out, "--model-name", "nova-berth",
            "--epochs", "3", "--batch-size", "10",
        ])
        #expect(result.status == 0, "\(result)")
        let id = try submittedID(result)
        let done = try await daemon.jobView(id, reaching: ["completed", "failed"], timeout: 120)
        let log = try daemon.cli(["logs", String(id)]).stdout
        #expect(done.status == "completed", "\(log)")
        let metrics = done.metrics
        // 100 records in batches of 10, for 3 epochs: 30 steps, a validation loss at each epoch's end.
        #expect(metrics.count == 30)
        #expect(metrics.compactMap(\.validationLoss).count == 3)
        let losses = metrics.compactMap(\.trainingLoss)
        #expect(losses.count == 30 && losses.last! < losses.first!)
        let model = try daemon.view(ModelView.self, ["models", "nova-berth"])
        #expect(model.custom == true)
        #expect(model.onDemand == false)
        #expect(model.customization == "fine-tuning")
        #expect(model.artifactDir == (out as NSString).standardizingPath)
        #expect(model.finalMetrics?["training_loss"] != nil)
        let csv = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.first == "step,epoch,training_loss,validation_loss")
        #expect(csv.count == 31)
        #expect(FileManager.default.fileExists(atPath: out + "/model.json"))
    }

    @Test("batch inference with the reference runner writes one output per input record")
    func referenceBatch() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "serve", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        let out = daemon.directory.file("batch-out")
        let result = try daemon.cli([
            "submit", "b", "--reservation", "serve", "--kind", "batch-inference", "--data",
            "\(Self.examples)/batch-inference.jsonl", "--output", out,
        ])
        #expect(result.status == 0, "\(result)")
        let id = try submittedID(result)
        let done = try await daemon.jobView(id, reaching: ["completed", "failed"], timeout: 120)
        #expect(done.status == "completed")
        let inputs = try String(contentsOfFile: "\(Self.examples)/batch-inference.jsonl", encoding: .utf8).split(separator: "\n")
        let outputs = try String(contentsOfFile: out + "/output.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(outputs.count == inputs.count)
        for (input, output) in zip(inputs, outputs) {
            let i = try JSONSerialization.jsonObject(with: Data(input.utf8)) as? [String: Any]
            let o = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            #expect(i?["recordId"] as? String == o?["recordId"] as? String)
            let modelOutput = o?["modelOutput"] as? [String: Any]
            #expect(modelOutput?["text"] is String)
            #expect((modelOutput?["input_tokens"] as? Int ?? 0) > 0)
        }
        #expect(done.inputTokens > 0)
        #expect(done.outputTokens > 0)
    }

    @Test("two jobs on a one-unit reservation run one after the other, in priority order")
    func priorityOrder() async throws {
        let (daemon, scripts) = try daemon(units: 1)
        defer { scripts.remove() }
        let data = try dataset(daemon.directory, named: "ok.jsonl")
        let first = try submittedID(try submit(daemon, "first", data: data, output: daemon.directory.file("o1")))
        let low = try submittedID(try submit(daemon, "low", data: data, output: daemon.directory.file("o2"), extra: ["--priority", "0"]))
        let high = try submittedID(try submit(daemon, "high", data: data, output: daemon.directory.file("o3"), extra: ["--priority", "5"]))
        #expect(try job(daemon, low).status == "queued")
        var jobs: [JobView] = []
        for id in [first, high, low] { jobs.append(try await daemon.jobView(id, reaching: ["completed", "failed"])) }
        #expect(jobs.allSatisfy { $0.status == "completed" })
        // Each starts only after the one before it ended: the unit is never shared.
        #expect((jobs[0].endedAt ?? .distantFuture) <= (jobs[1].startedAt ?? .distantPast))
        #expect((jobs[1].endedAt ?? .distantFuture) <= (jobs[2].startedAt ?? .distantPast))
        #expect(try job(daemon, high).units.count == 1)
    }

    @Test("stop a running job: it ends stopped and its whole process group is gone")
    func stopRunning() async throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let id = try submittedID(
            try submit(daemon, "slow", data: try dataset(daemon.directory, named: "slow.jsonl"), output: daemon.directory.file("o"))
        )
        try await daemon.job(id, reaching: ["running"])
        let childFile = scripts.file("\(id).child")
        _ = eventually(timeout: 10) { FileManager.default.fileExists(atPath: childFile) }
        let pid = try #require(
            Int32(try String(contentsOfFile: scripts.file("\(id).pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        )
        let child = try #require(Int32(try String(contentsOfFile: childFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let stop = try daemon.cli(["stop", String(id)])
        #expect(stop.status == 0, "\(stop)")
        let stopped = try await daemon.jobView(id, reaching: ["stopped", "failed", "completed"], timeout: 15)
        #expect(stopped.status == "stopped")
        #expect(!isAlive(pid), "the runner is still alive")
        #expect(!isAlive(child), "the runner's child is still alive")
        #expect(try daemon.cli(["stop", String(id)]).status == 4)
    }

    @Test("a runner that crashes: failed with its exit code, and its stderr is in the log")
    func crash() async throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let id = try submittedID(
            try submit(daemon, "boom", data: try dataset(daemon.directory, named: "crash.jsonl"), output: daemon.directory.file("o"))
        )
        let failed = try await daemon.jobView(id, reaching: ["failed", "completed"])
        #expect(failed.status == "failed")
        #expect(failed.exitStatus == 3)
        #expect(failed.reason?.contains("exit status 3") == true)
        #expect(try daemon.cli(["logs", String(id)]).stdout.contains("failing on purpose"))
        #expect(try daemon.cli(["models", "custom-boom"]).status == 3)
    }

    @Test("releasing a reservation stops its jobs first")
    func releaseStopsJobs() async throws {
        let (daemon, scripts) = try daemon(units: 1)
        defer { scripts.remove() }
        let data = try dataset(daemon.directory, named: "slow.jsonl")
        let running = try submittedID(try submit(daemon, "run", data: data, output: daemon.directory.file("o1")))
        let queued = try submittedID(try submit(daemon, "wait", data: data, output: daemon.directory.file("o2")))
        try await daemon.job(running, reaching: ["running"])
        #expect(try daemon.cli(["release", "train"]).status == 0)
        let stopped = try await daemon.jobView(running, reaching: ["stopped", "failed"], timeout: 15)
        #expect(stopped.reason == "reservation-ended")
        #expect(try await daemon.jobView(queued, reaching: ["stopped"]).reason == "reservation-ended")
        // The unit stayed with the released reservation until its runner was gone.
        let lease = try #require(try daemon.reservation("train").leases.first)
        #expect(lease.end == stopped.endedAt)
        #expect(try daemon.units().allSatisfy { $0.holder == nil })
    }

    @Test("berth logs --follow prints a job's log as it comes and ends with the job; with berthd gone it exits 6")
    func logsFollow() async throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let quick = try dataset(daemon.directory, named: "quick.jsonl")
        let id = try submittedID(try submit(daemon, "quick", data: quick, output: daemon.directory.file("q")))
        let followed = try daemon.cli(["logs", "--follow", String(id)])
        #expect(followed.status == 0, "\(followed)")
        #expect(followed.stdout.hasPrefix("fake runner: job \(id) on "), "\(followed)")
        #expect(try job(daemon, id).status == "completed")

        // A job that runs on: following it waits, until berthd goes away.
        let slowData = try dataset(daemon.directory, named: "slow.jsonl")
        let slow = try submittedID(try submit(daemon, "slow", data: slowData, output: daemon.directory.file("s")))
        try await daemon.job(slow, reaching: ["running"])
        let out = daemon.directory.file("follow.out")
        let err = daemon.directory.file("follow.err")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let follower = try Launch.start(
            Products.path("berth"),
            ["logs", "-f", String(slow)],
            environment: ["BERTH_SOCKET": daemon.socket],
            stdout: try FileHandle(forWritingTo: URL(fileURLWithPath: out)),
            stderr: try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        )
        defer { if follower.isRunning { follower.signal(SIGKILL) } }
        #expect(eventually(timeout: 10) { ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("fake runner: job \(slow) on ") })
        #expect(follower.isRunning)
        daemon.kill9()
        #expect(eventually(timeout: 10) { !follower.isRunning })
        #expect(follower.wait() == 6)
        #expect(((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").hasPrefix("berth: unreachable: "))
        // The next berthd stops the runner it left behind.
        try daemon.start()
        #expect(try job(daemon, slow).reason == "daemon-restart")
    }

    @Test("after a restart queued jobs are still queued, and a running job whose berthd died is failed daemon-restart")
    func restart() async throws {
        let (daemon, scripts) = try daemon(units: 1)
        defer { scripts.remove() }
        let data = try dataset(daemon.directory, named: "slow.jsonl")
        let running = try submittedID(try submit(daemon, "run", data: data, output: daemon.directory.file("o1")))
        let queued = try submittedID(try submit(daemon, "next", data: data, output: daemon.directory.file("o2"), extra: ["--priority=-1"]))
        try await daemon.job(running, reaching: ["running"])
        let pidFile = scripts.file("\(running).pid")
        _ = eventually(timeout: 10) { FileManager.default.fileExists(atPath: pidFile) }
        let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        daemon.kill9()
        try daemon.start()
        let failed = try job(daemon, running)
        #expect(failed.status == "failed")
        #expect(failed.reason == "daemon-restart")
        // The orphaned runner was found by its BERTH_JOB_ID and killed.
        #expect(eventually(timeout: 5) { !isAlive(pid) })
        // The queued one was not lost: with the unit free again it runs now.
        let next = try job(daemon, queued)
        #expect(["queued", "running"].contains(next.status))
    }

    @Test("a clean stop leaves no runner behind: its job ends failed with daemon-stop")
    func cleanStop() async throws {
        let (daemon, scripts) = try daemon()
        defer { scripts.remove() }
        let id = try submittedID(
            try submit(daemon, "run", data: try dataset(daemon.directory, named: "slow.jsonl"), output: daemon.directory.file("o1"))
        )
        try await daemon.job(id, reaching: ["running"])
        let childFile = scripts.file("\(id).child")
        _ = eventually(timeout: 10) { FileManager.default.fileExists(atPath: childFile) }
        let child = try #require(Int32(try String(contentsOfFile: childFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(daemon.stop() == 0)
        #expect(!isAlive(child))
        try daemon.start()
        let shown = try job(daemon, id)
        #expect(shown.status == "failed")
        #expect(shown.reason == "daemon-stop")
    }

    @Test("a clean stop leaves the job queued behind a running one queued, not running with nothing running it")
    func cleanStopKeepsQueue() async throws {
        let (daemon, scripts) = try daemon(units: 1)
        defer { scripts.remove() }
        let slow = try dataset(daemon.directory, named: "slow.jsonl")
        let running = try submittedID(try submit(daemon, "first", data: slow, output: daemon.directory.file("o1")))
        try await daemon.job(running, reaching: ["running"])
        let queued = try submittedID(try submit(daemon, "second", data: slow, output: daemon.directory.file("o2")))
        #expect(try job(daemon, queued).status == "queued")
        // Stopping the first runner frees the unit: a scheduler still at work would start the
        // second job while the supervisor is already gone.
        #expect(daemon.stop() == 0)
        let ledger = try LedgerContents.read(databaseAt: daemon.database)
        #expect(ledger.job(id: Int64(running))?.status == "failed")
        #expect(ledger.job(id: Int64(running))?.reason == "daemon-stop")
        #expect(ledger.job(id: Int64(queued))?.status == "queued")
        #expect(LedgerInvariants.violations(in: ledger) == [])
    }
}
