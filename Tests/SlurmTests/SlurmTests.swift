import BerthTestSupport
import Foundation
import Synchronization
import Testing

/// One berthd for the whole suite on the cluster's four GPUs (`slurm-gpu-0` to `-3`, each
/// `executor = "slurm"` on the node), with a runner script in a folder the node reads.
final class SlurmBerth: Sendable {
    let daemon: TemporaryDaemon
    let work: TemporaryDirectory

    static let current = Mutex<SlurmBerth?>(nil)

    init(cluster: SlurmCluster) throws {
        work = try TemporaryDirectory(prefix: "berth-slurm-work")
        chmod(work.path, 0o755)
        // The runner: a "slow" dataset keeps it running until it is stopped, a "paced" one
        // reports its steps over a few seconds; anything else is the reference runner itself.
        let runner = work.file("runner.sh")
        try """
        #!/bin/sh
        spec="$1"
        data=$(sed -n 's/.*"data_path" *: *"\\([^"]*\\)".*/\\1/p' "$spec")
        echo "runner on $(hostname) units $BERTH_UNITS devices $BERTH_DEVICES slurm job $SLURM_JOB_ID" >&2
        case "$data" in
        *slow*)
            echo '{"event":"progress","fraction":0.1}'
            sleep 120 & wait ;;
        *crash*)
            echo "failing on purpose" >&2
            exit 3 ;;
        *paced*)
            for i in 1 2 3 4 5 6 7 8; do
                echo "{\\"event\\":\\"metric\\",\\"name\\":\\"train_loss\\",\\"step\\":$i,\\"epoch\\":1,\\"value\\":$((20 - i))}"
                echo "{\\"event\\":\\"progress\\",\\"fraction\\":0.$i}"
                sleep 1
            done
            exit 0 ;;
        esac
        exec \(Products.path("berth-runner")) train --spec "$spec"

        """.write(toFile: runner, atomically: true, encoding: .utf8)
        chmod(runner, 0o755)
        var units = ""
        for index in 0..<4 {
            units += """

                [[units]]
                id = "slurm-gpu-\(index)"
                kind = "gpu"
                device = \(index)
                pool = "dedicated"
                executor = "slurm"
                node = "\(cluster.node)"

                """
        }
        let extra =
            units + """

                [executors.slurm]
                partition = "berth"
                shared_folder = "\(cluster.sharedFolder)"
                poll_seconds = 0.5

                """
        // SLURM_CONF goes to this daemon alone: a setenv here would race every thread of the test
        // process that reads the environment (a Process start copies it).
        daemon = try TemporaryDaemon(
            config: TemporaryDaemon.config(
                dedicated: 0,
                runner: ["/bin/sh", runner, "{spec}"],
                serve: ["berth-runner", "serve", "--model-dir", "{model_dir}", "--port", "{port}", "--model-id", "{model}", "--host", "{host}"],
                extra: extra
            ),
            environment: ["SLURM_CONF": cluster.configPath]
        )
        try daemon.start()
    }

    func stop() {
        daemon.stop()
        work.remove()
    }
}

/// berth on a real single-node Slurm: reservations made there with berth's, jobs through
/// sbatch, their events from the shared folder, stop, a `kill -9` of berthd while a job runs,
/// and a serve process as a Slurm job. One cluster and one berthd for all of it.
@Suite("Slurm executor", .serialized, .slurmCluster)
struct SlurmTests {
    static let model = "amazon.nova-micro-v1:0"
    let cluster: SlurmCluster
    let daemon: TemporaryDaemon
    let work: TemporaryDirectory

    init() throws {
        cluster = try SlurmCluster.shared
        let berth = try #require(SlurmBerth.current.withLock { $0 })
        daemon = berth.daemon
        work = berth.work
    }

    // MARK: - Helpers

    /// An RFC 3339 time as the API writes it, with or without milliseconds.
    static func time(_ text: String) -> Date? {
        let precise = ISO8601DateFormatter()
        precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// Our Slurm reservations, by name: their `scontrol show reservation --oneliner` fields.
    func slurmReservations() throws -> [String: [String: String]] {
        let output = try cluster.slurm("scontrol", ["show", "reservation", "--oneliner"]).stdout
        var found: [String: [String: String]] = [:]
        for line in output.split(whereSeparator: \.isNewline) {
            var fields: [String: String] = [:]
            for field in line.split(separator: " ") {
                let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            if let name = fields["ReservationName"], name.hasPrefix("berth-") { found[name] = fields }
        }
        return found
    }

    func dataset(_ name: String, from example: String = "fine-tuning.jsonl") throws -> String {
        let path = work.file(name)
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.copyItem(atPath: "\(TemporaryDaemon.examples)/\(example)", toPath: path)
        }
        chmod(path, 0o644)
        return path
    }

    func submit(_ name: String, data: String, reservation: String = "ft") throws -> Int {
        let result = try daemon.cli([
            "submit", name, "--reservation", reservation, "--kind", "fine-tuning", "--data", data, "--output", work.file("out-\(name)"),
            "--model-name", "custom-\(name)", "--units", "1",
        ])
        #expect(result.status == 0, "\(result)")
        let words = result.stdout.split(separator: " ")
        return try #require(words.count > 2 ? Int(words[2]) : nil, "\(result)")
    }

    @discardableResult
    func wait(_ id: Int, for statuses: Set<String>, timeout: TimeInterval = 90) throws -> [String: Any] {
        var shown: [String: Any] = [:]
        let reached = try eventually(timeout: timeout) {
            shown = try daemon.json(["jobs", String(id)])
            return (shown["status"] as? String).map(statuses.contains) ?? false
        }
        if !reached {
            Issue.record("job \(id) never reached \(statuses): \(shown)\n\(daemon.log.suffix(4000))\n\(cluster.log("slurm/slurmctld.log"))")
        }
        return shown
    }

    /// The berth reservation `name` as the API shows it.
    func reservation(_ name: String) throws -> [String: Any] {
        try daemon.json(["reservations", name])
    }

    func reserve(_ name: String, units: Int, purpose: String = "training") throws -> CommandResult {
        try daemon.cli(["reserve", name, "--model", Self.model, "--units", String(units), "--purpose", purpose, "--duration", "2h"])
    }

    // MARK: - Tests

    @Test("reservations are Slurm's too: made with the right nodes and window, refused with Slurm's reason, deleted on release")
    func reservations() throws {
        // Slurm refuses: an admin holds the node. berth refuses with Slurm's reason and keeps nothing.
        let hold = try cluster.slurm(
            "scontrol",
            ["create", "reservation", "ReservationName=admin-hold", "Nodes=\(cluster.node)", "StartTime=now", "Duration=10", "Users=root"]
        )
        #expect(hold.status == 0, "\(hold)")
        let refused = try reserve("held", units: 1)
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stderr.contains("Slurm refused") && refused.stderr.contains("overlaps"), "\(refused)")
        #expect(try daemon.cli(["reservations", "held"]).status == 3)
        #expect(try slurmReservations().isEmpty)
        #expect(try cluster.slurm("scontrol", ["delete", "ReservationName=admin-hold"]).status == 0)

        // Over berth's capacity: refused before Slurm is asked; nothing made on either side.
        let tooBig = try reserve("too-big", units: 5)
        #expect(tooBig.status == 4, "\(tooBig)")
        #expect(try slurmReservations().isEmpty)

        // Admitted: the Slurm reservation has the node and the same window, for berthd's user.
        let made = try reserve("ft", units: 2)
        #expect(made.status == 0, "\(made)")
        let shown = try reservation("ft")
        let slurm = try slurmReservations()
        #expect(slurm.count == 1, "\(slurm)")
        let fields = try #require(slurm.values.first)
        #expect(fields["Nodes"] == cluster.node)
        #expect(fields["Users"] == "root")
        let end = try #require((shown["end"] as? String).flatMap(Self.time))
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_US_POSIX")
        local.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        let slurmEnd = try #require(fields["EndTime"].flatMap(local.date(from:)), "\(fields)")
        let slurmStart = try #require(fields["StartTime"].flatMap(local.date(from:)), "\(fields)")
        let start = try #require((shown["start"] as? String).flatMap(Self.time))
        // Slurm counts from its own "now" at the admission: the same instants to a few seconds.
        #expect(abs(slurmEnd.timeIntervalSince(end)) < 60, "berth ends \(end), Slurm \(slurmEnd)")
        #expect(abs(slurmStart.timeIntervalSince(start)) < 60, "berth starts \(start), Slurm \(slurmStart)")

        // A second reservation on the same node shares it; released, it is gone from Slurm.
        #expect(try reserve("extra", units: 1).status == 0)
        #expect(try slurmReservations().count == 2)
        #expect(try daemon.cli(["release", "extra"]).status == 0)
        #expect(try eventually(timeout: 30) { try slurmReservations().count == 1 }, "\((try? slurmReservations()) ?? [:])")
    }

    @Test("a fine-tuning job runs through sbatch inside the reservation, its events arrive, it completes and registers its model")
    func fineTuning() throws {
        try ensureReservation()
        let id = try submit("tune", data: try dataset("tune.jsonl"))
        let done = try wait(id, for: ["completed", "failed"])
        #expect(done["status"] as? String == "completed", "\(done)\n\(daemon.log.suffix(3000))")
        let slurmID = try #require(done["slurm_job_id"] as? String, "\(done)")
        #expect((done["progress"] as? Double) == 1)
        #expect(!((done["metrics"] as? [Any]) ?? []).isEmpty, "\(done)")
        // The custom model is in the catalog, and metrics.csv beside it.
        #expect(try daemon.cli(["models", "custom-tune"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: work.file("out-tune/metrics.csv")))
        // Slurm ran it in berth's reservation, on the node, with the GPUs asked for.
        let job = try cluster.slurm("scontrol", ["show", "job", slurmID, "--oneliner"]).stdout
        let reservationName = try #require(try slurmReservations().keys.first)
        #expect(job.contains("Reservation=\(reservationName)"), "\(job)")
        #expect(job.contains("JobState=COMPLETED"), "\(job)")
        #expect(job.contains("gres/gpu=1") || job.contains("gpu:1"), "\(job)")
        // berth jobs ID shows the Slurm job, and the runner's stderr reached the job's log.
        let detail = try daemon.cli(["jobs", String(id)])
        #expect(detail.stdout.contains("slurm job") && detail.stdout.contains(slurmID), "\(detail)")
        let log = try daemon.cli(["logs", String(id)])
        #expect(log.stdout.contains("slurm job \(slurmID)") && log.stdout.contains("devices 0"), "\(log)")
    }

    @Test("a job another user submits runs on Slurm as that user, in a Slurm reservation that lets them in")
    func runsAsSubmitter() throws {
        // Their own folder, for their dataset and their job's output.
        let theirs = work.file("nobody")
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: true)
        chown(theirs, TestUser.nobody.uid, 65534)
        let data = theirs + "/tune.jsonl"
        try FileManager.default.copyItem(atPath: "\(TemporaryDaemon.examples)/fine-tuning.jsonl", toPath: data)
        chmod(data, 0o644)
        let before = Set(try slurmReservations().keys)
        let made = try daemon.cli(
            ["reserve", "theirs", "--model", Self.model, "--units", "1", "--purpose", "training", "--duration", "2h"],
            as: .nobody
        )
        #expect(made.status == 0, "\(made)")
        let onSlurm = try slurmReservations()
        let slurmName = try #require(onSlurm.keys.first { !before.contains($0) }, "\(onSlurm)")
        #expect(onSlurm[slurmName]?["Users"] == "root,nobody", "\(onSlurm)")

        let submitted = try daemon.cli(
            [
                "submit", "theirs-tune", "--reservation", "theirs", "--kind", "fine-tuning", "--data", data, "--output", theirs + "/out",
                "--model-name", "custom-theirs", "--units", "1",
            ],
            as: .nobody
        )
        #expect(submitted.status == 0, "\(submitted)")
        let id = try #require(Int(submitted.stdout.split(separator: " ").dropFirst(2).first ?? ""), "\(submitted)")
        let done = try wait(id, for: ["completed", "failed"])
        #expect(done["status"] as? String == "completed", "\(done)\n\(daemon.log.suffix(3000))")
        // Slurm ran it as them, and what it wrote is theirs.
        let slurmID = try #require(done["slurm_job_id"] as? String, "\(done)")
        let job = try cluster.slurm("scontrol", ["show", "job", slurmID, "--oneliner"]).stdout
        #expect(job.contains("UserId=nobody(65534)"), "\(job)")
        #expect(job.contains("Reservation=\(slurmName)"), "\(job)")
        let written = try FileManager.default.attributesOfItem(atPath: theirs + "/out/metrics.csv")
        #expect((written[.ownerAccountID] as? NSNumber)?.uint32Value == TestUser.nobody.uid, "\(written)")

        #expect(try daemon.cli(["release", "theirs"], as: .nobody).status == 0)
        #expect(try eventually(timeout: 30) { try slurmReservations()[slurmName] == nil }, "\((try? slurmReservations()) ?? [:])")
    }

    @Test("units added with berth update come from Slurm's units, and a job runs on all of them, renamed or not")
    func grows() throws {
        let before = Set(try slurmReservations().keys)
        #expect(try reserve("grow", units: 1).status == 0)
        let slurmName = try #require(Set(try slurmReservations().keys).subtracting(before).first)
        let updated = try daemon.cli(["update", "grow", "--units", "2", "--rename", "grown"])
        #expect(updated.status == 0, "\(updated)")
        let shown = try reservation("grown")
        let units = ((shown["leases"] as? [[String: Any]]) ?? []).compactMap { $0["unit"] as? String }
        #expect(units.count == 2 && units.allSatisfy { $0.hasPrefix("slurm-gpu-") }, "\(shown)")
        // The same Slurm reservation (named by the berth reservation's id, not its name).
        #expect(try slurmReservations()[slurmName]?["Nodes"] == cluster.node)
        let submitted = try daemon.cli([
            "submit", "wide", "--reservation", "grown", "--kind", "fine-tuning", "--data", try dataset("wide.jsonl"), "--output",
            work.file("out-wide"), "--model-name", "custom-wide", "--units", "2",
        ])
        #expect(submitted.status == 0, "\(submitted)")
        let id = try #require(Int(submitted.stdout.split(separator: " ").dropFirst(2).first ?? ""), "\(submitted)")
        let done = try wait(id, for: ["completed", "failed"])
        #expect(done["status"] as? String == "completed", "\(done)\n\(daemon.log.suffix(3000))")
        let slurmID = try #require(done["slurm_job_id"] as? String, "\(done)")
        let job = try cluster.slurm("scontrol", ["show", "job", slurmID, "--oneliner"]).stdout
        #expect(job.contains("Reservation=\(slurmName)") && (job.contains("gres/gpu=2") || job.contains("gpu:2")), "\(job)")
        #expect(try daemon.cli(["release", "grown"]).status == 0)
        #expect(try eventually(timeout: 30) { try slurmReservations()[slurmName] == nil })
    }

    @Test("berth stop on a running Slurm job: stopped, and gone from squeue")
    func stop() throws {
        try ensureReservation()
        let id = try submit("hold", data: try dataset("slow.jsonl"))
        let running = try wait(id, for: ["running"])
        #expect(try eventually(timeout: 60) { ((try daemon.json(["jobs", String(id)]))["progress"] as? Double ?? 0) > 0 }, "\(running)")
        let slurmID = try #require(try daemon.json(["jobs", String(id)])["slurm_job_id"] as? String)
        #expect(try cluster.slurm("squeue", ["-h", "-o", "%i"]).stdout.contains(slurmID))
        #expect(try daemon.cli(["stop", String(id)]).status == 0)
        let stopped = try wait(id, for: ["stopped", "failed", "completed"])
        #expect(stopped["status"] as? String == "stopped", "\(stopped)")
        // squeue without -t lists only jobs that pend or run.
        #expect(try eventually(timeout: 30) { !(try cluster.slurm("squeue", ["-h", "-o", "%i"]).stdout.contains(slurmID)) })
    }

    @Test("a job waiting on the cluster is shown queued-on-slurm with Slurm's reason, then runs when the GPUs free up")
    func queuedOnSlurm() throws {
        try ensureReservation()
        let name = try #require(try slurmReservations().keys.first)
        // Someone else's job in the same reservation takes every GPU of the node.
        let blocker = try cluster.slurm(
            "sbatch",
            ["--parsable", "--reservation=\(name)", "--gres=gpu:4", "--output=/dev/null", "--chdir=\(work.path)", "--wrap", "sleep 120"]
        )
        #expect(blocker.status == 0, "\(blocker)")
        let blockerID = blocker.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try eventually(timeout: 30) { try cluster.slurm("squeue", ["-h", "-j", blockerID, "-o", "%T"]).stdout.hasPrefix("RUNNING") })
        let id = try submit("waits", data: try dataset("tune.jsonl"))
        var shown: [String: Any] = [:]
        let waited = try eventually(timeout: 30) {
            shown = try daemon.json(["jobs", String(id)])
            return (shown["slurm_state"] as? String)?.hasPrefix("PENDING") ?? false
        }
        #expect(waited, "\(shown)")
        #expect(shown["status"] as? String == "running")
        let table = try daemon.cli(["jobs", String(id)])
        #expect(table.stdout.contains("queued-on-slurm"), "\(table)")
        #expect(try cluster.slurm("scancel", [blockerID]).status == 0)
        let done = try wait(id, for: ["completed", "failed"])
        #expect(done["status"] as? String == "completed", "\(done)")
    }

    @Test("a job Slurm ends FAILED fails with Slurm's reason; one an admin cancels with scancel is stopped")
    func clusterVerdicts() throws {
        try ensureReservation()
        let crash = try submit("crash", data: try dataset("crash.jsonl"))
        let failed = try wait(crash, for: ["completed", "failed", "stopped"])
        #expect(failed["status"] as? String == "failed", "\(failed)")
        #expect((failed["reason"] as? String)?.contains("ended FAILED") ?? false, "\(failed)")
        #expect(failed["exit_status"] as? Int == 3, "\(failed)")
        let held = try submit("cancelled", data: try dataset("slow-cancelled.jsonl"))
        try wait(held, for: ["running"])
        var slurmID: String?
        #expect(
            try eventually(timeout: 30) {
                slurmID = try daemon.json(["jobs", String(held)])["slurm_job_id"] as? String
                return slurmID != nil
            }
        )
        #expect(try cluster.slurm("scancel", [try #require(slurmID)]).status == 0)
        let stopped = try wait(held, for: ["completed", "failed", "stopped"])
        #expect(stopped["status"] as? String == "stopped", "\(stopped)")
        #expect((stopped["reason"] as? String)?.contains("cancelled on Slurm") ?? false, "\(stopped)")
    }

    @Test("kill -9 of berthd while a Slurm job runs: after the restart the job is still followed and ends completed, submitted once")
    func restart() throws {
        try ensureReservation()
        let id = try submit("paced", data: try dataset("paced.jsonl"))
        try wait(id, for: ["running"])
        let slurmID = try #require(
            try eventually(timeout: 60) { try daemon.json(["jobs", String(id)])["slurm_job_id"] != nil }
                ? try daemon.json(["jobs", String(id)])["slurm_job_id"] as? String : nil
        )
        daemon.kill9()
        try daemon.start()
        let done = try wait(id, for: ["completed", "failed", "stopped"])
        #expect(done["status"] as? String == "completed", "\(done)\n\(daemon.log.suffix(3000))")
        #expect(done["slurm_job_id"] as? String == slurmID)
        // Every step it wrote, those written while berthd was down included.
        #expect(((done["metrics"] as? [Any]) ?? []).count == 8, "\(done)")
        #expect(try daemon.cli(["models", "custom-paced"]).status == 0)
        // Nothing submitted twice: one Slurm job ever carried this job's name.
        let named = try cluster.slurm("squeue", ["-h", "-t", "all", "-o", "%i %j"]).stdout.split(whereSeparator: \.isNewline)
            .filter { $0.hasSuffix("-job-\(id)") }
        #expect(named.count == 1, "\(named)")
    }

    @Test("a clean stop of berthd leaves a Slurm job running; the next berthd follows it to its end")
    func cleanRestart() throws {
        try ensureReservation()
        let id = try submit("paced-clean", data: try dataset("paced-clean.jsonl"))
        try wait(id, for: ["running"])
        #expect(try eventually(timeout: 60) { try daemon.json(["jobs", String(id)])["slurm_job_id"] != nil })
        let slurmID = try #require(try daemon.json(["jobs", String(id)])["slurm_job_id"] as? String)
        #expect(daemon.stop() == 0)
        #expect(daemon.log.contains("leaving Slurm jobs running"))
        try daemon.start()
        let done = try wait(id, for: ["completed", "failed", "stopped"])
        #expect(done["status"] as? String == "completed", "\(done)\n\(daemon.log.suffix(3000))")
        #expect(((done["metrics"] as? [Any]) ?? []).count == 8, "\(done)")
        // Slurm ran it to its end: the stop did not cancel it.
        #expect(try cluster.slurm("squeue", ["-h", "-t", "all", "-j", slurmID, "-o", "%T"]).stdout.hasPrefix("COMPLETED"))
    }

    @Test("an inference reservation on Slurm units runs its serve process as a Slurm job and answers berth invoke")
    func inference() throws {
        let made = try reserve("inf", units: 1, purpose: "inference")
        #expect(made.status == 0, "\(made)\n\(daemon.log.suffix(3000))")
        let answer = try daemon.json(["invoke", "inf", "--prompt", "the cat sat on the", "--max-tokens", "8"])
        #expect(answer["served_by"] as? String == "provisioned", "\(answer)\n\(daemon.log.suffix(3000))")
        let serveJobs = try cluster.slurm("squeue", ["-h", "-o", "%j %T"]).stdout.split(whereSeparator: \.isNewline)
            .filter { $0.contains("-serve-reservation-") }
        #expect(serveJobs.count == 1 && serveJobs[0].hasSuffix("RUNNING"), "\(serveJobs)")
        // The job said where it listens (its node's name and the port), and berthd calls it
        // there through a loopback port of its own, as it would on another node.
        #expect(daemon.log.contains("serve job listens on its node") && daemon.log.contains("host=\(cluster.node)"), "\(daemon.log.suffix(2000))")
        // {host} told it to listen on the node's addresses, not its loopback alone.
        let logs = FileManager.default.enumerator(atPath: cluster.sharedFolder)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".log") } ?? []
        let said = logs.compactMap { try? String(contentsOfFile: "\(cluster.sharedFolder)/\($0)", encoding: .utf8) }.joined()
        #expect(said.contains("on 0.0.0.0:"), "\(logs)")
        // Its batch script holds its token: it and its folder are its user's alone.
        let files = FileManager.default.enumerator(atPath: cluster.sharedFolder)?.compactMap { $0 as? String } ?? []
        let scripts = files.filter { $0.hasSuffix("run.sh") }
        let serveScripts = scripts.filter {
            ((try? String(contentsOfFile: "\(cluster.sharedFolder)/\($0)", encoding: .utf8)) ?? "").contains("BERTH_SERVE_TOKEN=")
        }
        #expect(!serveScripts.isEmpty, "\(scripts)")
        for script in serveScripts {
            for path in ["\(cluster.sharedFolder)/\(script)", "\(cluster.sharedFolder)/\((script as NSString).deletingLastPathComponent)"] {
                let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
                #expect(mode & 0o077 == 0, "\(path): \(String(mode, radix: 8))")
            }
        }

        // A restart, clean or kill -9, does not take the endpoint down: the same serve job
        // answers the next berthd, never submitted again.
        func serveJobIDs() throws -> [String] {
            try cluster.slurm("squeue", ["-h", "-t", "all", "-o", "%i %j"]).stdout.split(whereSeparator: \.isNewline)
                .filter { $0.contains("-serve-reservation-") }.map { String($0.split(separator: " ")[0]) }
        }
        let served = try serveJobIDs()
        #expect(served.count == 1, "\(served)")
        #expect(daemon.stop() == 0)
        #expect(daemon.log.contains("leaving serve jobs running on Slurm"), "\(daemon.log.suffix(2000))")
        try daemon.start()
        let again = try daemon.json(["invoke", "inf", "--prompt", "the cat sat on the", "--max-tokens", "8"])
        #expect(again["served_by"] as? String == "provisioned", "\(again)\n\(daemon.log.suffix(3000))")
        daemon.kill9()
        try daemon.start()
        let afterKill = try daemon.json(["invoke", "inf", "--prompt", "the cat sat on the", "--max-tokens", "8"])
        #expect(afterKill["served_by"] as? String == "provisioned", "\(afterKill)\n\(daemon.log.suffix(3000))")
        let listed = try cluster.slurm("squeue", ["-h", "-t", "all", "-o", "%i %j %T %u"]).stdout
        #expect(try serveJobIDs() == served, "\(listed)\n\(daemon.log.suffix(6000))")

        // Released: its serve job is cancelled and its Slurm reservation deleted.
        #expect(try daemon.cli(["release", "inf"]).status == 0)
        #expect(try eventually(timeout: 30) { !(try cluster.slurm("squeue", ["-h", "-o", "%j"]).stdout.contains("-serve-reservation-")) })
        #expect(try eventually(timeout: 30) { try slurmReservations().count == (try daemon.cli(["reservations", "ft"]).status == 0 ? 1 : 0) })
    }

    @Test(
        "an advance reservation gets its Slurm reservation at admission, for its own window, starts on the units pinned then, and loses it when it expires"
    )
    func advanceAndExpiry() throws {
        let before = try slurmReservations()
        let made = try daemon.cli([
            "reserve", "brief", "--model", Self.model, "--units", "1", "--purpose", "training", "--start", "+12s", "--duration", "6s",
        ])
        #expect(made.status == 0, "\(made)")
        let shown = try reservation("brief")
        #expect(shown["status"] as? String == "pending")
        let pinned = try #require(shown["pinned_units"] as? [String], "\(shown)")
        #expect(pinned.count == 1)
        #expect(try daemon.cli(["reservations", "brief"]).stdout.contains("units from start"))

        // Already held on the cluster, from berth's start to its end: no other Slurm user's
        // reservation can take the node meanwhile.
        let madeOnSlurm = try slurmReservations().filter { before[$0.key] == nil }
        #expect(madeOnSlurm.count == 1, "\(madeOnSlurm)")
        let fields = try #require(madeOnSlurm.values.first)
        #expect(fields["Nodes"] == cluster.node)
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_US_POSIX")
        local.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        let start = try #require((shown["start"] as? String).flatMap(Self.time))
        let end = try #require((shown["end"] as? String).flatMap(Self.time))
        let slurmStart = try #require(fields["StartTime"].flatMap(local.date(from:)), "\(fields)")
        let slurmEnd = try #require(fields["EndTime"].flatMap(local.date(from:)), "\(fields)")
        #expect(slurmStart > Date(), "Slurm's reservation starts \(slurmStart), already")
        #expect(slurmStart <= start.addingTimeInterval(1) && start.timeIntervalSince(slurmStart) < 10, "berth starts \(start), Slurm \(slurmStart)")
        #expect(slurmEnd >= end.addingTimeInterval(-1), "berth ends \(end), Slurm \(slurmEnd)")

        // It starts on the unit pinned at admission, and its Slurm reservation goes with its end.
        var leased: [String] = []
        let started = try eventually(timeout: 60) {
            let now = try reservation("brief")
            leased = ((now["leases"] as? [[String: Any]]) ?? []).compactMap { $0["unit"] as? String }
            return now["status"] as? String != "pending"
        }
        #expect(started, "\(daemon.log.suffix(2000))")
        #expect(leased == pinned)
        #expect(try eventually(timeout: 60) { (try reservation("brief"))["status"] as? String == "expired" })
        #expect(try eventually(timeout: 60) { try slurmReservations().count == before.count }, "\((try? slurmReservations()) ?? [:])")
    }

    @Test("release deletes the Slurm reservation")
    func release() throws {
        try ensureReservation()
        #expect(try slurmReservations().count == 1)
        #expect(try daemon.cli(["release", "ft"]).status == 0)
        #expect(try eventually(timeout: 30) { try slurmReservations().isEmpty }, "\((try? slurmReservations()) ?? [:])")
    }

    /// Each test may run alone (`--filter`): the training reservation the others made.
    func ensureReservation() throws {
        if try daemon.cli(["reservations", "ft"]).status == 0,
            (try reservation("ft"))["status"] as? String == "active"
        {
            return
        }
        let made = try reserve("ft", units: 2)
        #expect(made.status == 0, "\(made)")
    }
}
