import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// A hostile submitter swaps a path for a symbolic link while its job waits in the queue, hoping
/// the runner uses it with berthd's rights. With berthd as root the runner runs as the
/// submitter and the kernel refuses; with berthd as an ordinary user the paths are opened again
/// without following links. Either way nothing outside the submitter's rights is read or written.
@Suite("Runners act with their submitter's rights", .serialized)
struct RunnerRightsTests {
    static let model = "amazon.nova-micro-v1:0"
    static let secret = "zebra-secret-8431"

    /// Who is who in one run of the attacks.
    enum Mode: String, CustomTestStringConvertible, CaseIterable {
        /// berthd as root, the submitter `nobody`; the guarded files are root's.
        case daemonAsRoot
        /// berthd as `nobody`, the submitter uid 4242; the guarded files are berthd's own.
        case daemonUnprivileged

        var testDescription: String { rawValue }
        var daemonUser: TestUser? { self == .daemonAsRoot ? nil : .nobody }
        var submitter: TestUser { self == .daemonAsRoot ? .nobody : .stranger }
        /// Whose rights a runner has: the submitter's, or berthd's own.
        var runnerUID: UInt32 { self == .daemonAsRoot ? submitter.uid : TestUser.nobody.uid }
        var guardedOwner: UInt32 { daemonUser?.uid ?? 0 }
    }

    /// The runner for every job: reports `id` to its log, waits while `hold-<job id>` exists
    /// beside it, then runs the reference runner.
    static func wrapper(in dir: TemporaryDirectory) throws -> [String] {
        let path = dir.file("runner.sh")
        try """
        #!/bin/sh
        echo "runner-identity uid=$(id -u) gid=$(id -g) groups=$(id -G | tr ' ' ',')" >&2
        while [ -e "$(dirname "$0")/hold-$BERTH_JOB_ID" ]; do sleep 0.05; done
        if grep -q '"batch-inference"' "$1"; then kind=batch; else kind=train; fi
        exec \(Products.path("berth-runner")) "$kind" --spec "$1"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return ["/bin/sh", path, "{spec}"]
    }

    func make(_ path: String, folderOwnedBy uid: UInt32, mode: mode_t) {
        mkdir(path, mode)
        chown(path, uid, 65534)
        chmod(path, mode)
    }

    func copy(_ example: String, to path: String, owner uid: UInt32, mode: mode_t = 0o644) throws {
        try FileManager.default.copyItem(atPath: "\(TemporaryDaemon.examples)/\(example)", toPath: path)
        chown(path, uid, 65534)
        chmod(path, mode)
    }

    /// Replaces `path` (a file or a folder) with a symbolic link to `target`, as its owner could.
    func swap(_ path: String, for target: String) throws {
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    func submitted(_ result: CommandResult) throws -> Int {
        #expect(result.status == 0, "\(result)")
        let words = result.stdout.split(separator: " ")
        return try #require(words.count > 2 ? Int(words[2]) : nil, "\(result)")
    }

    /// Every file under `root`, followed into no link.
    func files(under root: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.map { "\(root)/\($0)" }.filter { path in
            var info = stat()
            return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        }
    }

    @Test(
        "paths swapped for links while a job waits: the guarded folder keeps its owner and gains no file, the secret is not read",
        arguments: Mode.allCases
    )
    func swappedPaths(mode: Mode) async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-rights")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(runner: try Self.wrapper(in: scripts)), as: mode.daemonUser)
        try daemon.start()
        let user = mode.submitter
        let owner = mode.daemonUser?.uid ?? 0

        // The submitter's own folder, and what berthd must not let them reach: a folder and a
        // file (JSON Lines, so it would train) that only berthd's user may use.
        let home = daemon.directory.file("home")
        make(home, folderOwnedBy: user.uid, mode: 0o777)
        let guarded = daemon.directory.file("guarded")
        make(guarded, folderOwnedBy: owner, mode: mode == .daemonAsRoot ? 0o755 : 0o700)
        let secretFile = daemon.directory.file("secret.jsonl")
        try "{\"prompt\": \"the word is \(Self.secret)\", \"completion\": \"\(Self.secret) \(Self.secret)\"}\n"
            .write(toFile: secretFile, atomically: true, encoding: .utf8)
        chown(secretFile, owner, 0)
        chmod(secretFile, 0o600)

        try copy("fine-tuning.jsonl", to: "\(home)/mine.jsonl", owner: user.uid)
        try copy("fine-tuning.jsonl", to: "\(home)/swap-data.jsonl", owner: user.uid)
        try copy("fine-tuning-validation.jsonl", to: "\(home)/swap-val.jsonl", owner: user.uid)
        try copy("batch-inference.jsonl", to: "\(home)/batch.jsonl", owner: user.uid)
        for folder in ["v", "u", "bv"] { make("\(home)/\(folder)", folderOwnedBy: user.uid, mode: 0o777) }

        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"], as: user).status == 0)
        #expect(try daemon.cli(["reserve", "serve", "--model", Self.model, "--units", "1", "--purpose", "inference"], as: user).status == 0)

        // Two jobs that hold their reservations' one unit until the test lets them go.
        for id in [1, 2] { _ = FileManager.default.createFile(atPath: scripts.file("hold-\(id)"), contents: nil) }
        func train(_ name: String, data: String = "mine.jsonl", output: String, extra: [String] = []) throws -> Int {
            try submitted(
                try daemon.cli(
                    [
                        "submit", name, "--reservation", "train", "--kind", "fine-tuning", "--data", "\(home)/\(data)",
                        "--output", "\(home)/\(output)", "--model-name", "m-\(name)",
                    ] + extra,
                    as: user
                )
            )
        }
        func batch(_ name: String, output: String) throws -> Int {
            try submitted(
                try daemon.cli(
                    [
                        "submit", name, "--reservation", "serve", "--kind", "batch-inference", "--data", "\(home)/batch.jsonl",
                        "--output", "\(home)/\(output)",
                    ],
                    as: user
                )
            )
        }
        let trainHolder = try train("holder", output: "held")
        let batchHolder = try batch("batch-holder", output: "batch-held")
        #expect(trainHolder == 1 && batchHolder == 2)
        _ = try await daemon.job(trainHolder, reaching: ["running"], as: user)
        _ = try await daemon.job(batchHolder, reaching: ["running"], as: user)

        let attacks = [
            (name: "output", id: try train("output", output: "v"), field: "output"),
            (name: "output-parent", id: try train("parent", output: "u/pwn"), field: "output"),
            (name: "data", id: try train("data", data: "swap-data.jsonl", output: "o-data"), field: "data"),
            (
                name: "validation", id: try train("val", output: "o-val", extra: ["--validation-data", "\(home)/swap-val.jsonl"]),
                field: "validation_data"
            ),
            (name: "batch-output", id: try batch("batch-out", output: "bv"), field: "output"),
        ]
        for attack in attacks {
            #expect(try daemon.jobView(attack.id, as: user).status == "queued", "\(attack.name)")
        }

        // The swaps, while every target waits.
        try swap("\(home)/v", for: guarded)
        try swap("\(home)/u", for: guarded)
        try swap("\(home)/bv", for: guarded)
        try swap("\(home)/swap-data.jsonl", for: secretFile)
        try swap("\(home)/swap-val.jsonl", for: secretFile)
        for id in [1, 2] { unlink(scripts.file("hold-\(id)")) }

        // The holders were honest: they complete, as the user they should run as.
        for id in [trainHolder, batchHolder] {
            let done = try await daemon.jobView(id, reaching: ["completed", "failed", "stopped"], as: user)
            #expect(done.status == "completed", "\(done)\n\(daemon.log)")
            let log = try daemon.cli(["logs", String(id)], as: user).stdout
            let runnerUser = mode == .daemonAsRoot ? user : TestUser.nobody
            let groups = try Products.run("/usr/bin/id", ["-G", "\(runnerUser.uid)"]).stdout
            let expectedGroups =
                mode == .daemonAsRoot && user.uid == TestUser.nobody.uid
                ? groups.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: " ", with: ",")
                : "65534"
            #expect(log.contains("runner-identity uid=\(mode.runnerUID) gid=65534 groups=\(expectedGroups)"), "\(log)")
        }
        // What the training holder made belongs to whom the runner ran as, not to root.
        var info = stat()
        #expect(stat("\(home)/held/model.json", &info) == 0 && info.st_uid == mode.runnerUID)
        #expect(stat("\(home)/held/metrics.csv", &info) == 0 && info.st_uid == mode.runnerUID)

        for attack in attacks {
            let ended = try await daemon.jobView(attack.id, reaching: ["completed", "failed", "stopped"], as: user)
            #expect(ended.status == "failed", "\(attack.name): \(ended)")
            let reason = ended.reason ?? ""
            #expect(reason.contains("\(attack.field):"), "\(attack.name): \(reason)")
            if mode == .daemonUnprivileged {
                #expect(reason.contains("symbolic link"), "\(attack.name): \(reason)")
            }
        }

        // The guarded folder keeps its owner and mode and gained nothing.
        let guardedMode: UInt32 = mode == .daemonAsRoot ? 0o755 : 0o700
        #expect(lstat(guarded, &info) == 0)
        #expect(info.st_uid == mode.guardedOwner && UInt32(info.st_mode) & 0o7777 == guardedMode)
        #expect(try FileManager.default.contentsOfDirectory(atPath: guarded).isEmpty)
        // No byte of the secret reached anything the user can read: outputs or logs.
        for file in files(under: home) {
            let bytes = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            #expect(!bytes.contains(Self.secret), "\(file)")
        }
        for attack in attacks {
            #expect(!(try daemon.cli(["logs", String(attack.id)], as: user).stdout.contains(Self.secret)), "\(attack.name)")
        }
        // With berthd unprivileged, a refused path makes nothing: the data attack's output
        // folder was never created.
        if mode == .daemonUnprivileged {
            #expect(!FileManager.default.fileExists(atPath: "\(home)/o-data"))
        }
    }

    /// The uid a process runs as, from the kernel's view of it.
    func uid(of pid: Int32) -> UInt32? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { UInt32($0) }
    }

    @Test("with berthd as root, a custom model is served as its owner and a base model on demand as the service user")
    func serveIdentities() async throws {
        // `daemon` (uid 1) as the service user, so it cannot be mistaken for the owner, nobody.
        let config = TemporaryDaemon.config().replacingOccurrences(of: "service_user = \"nobody\"", with: "service_user = \"daemon\"")
        let daemon = try TemporaryDaemon(config: config)
        try daemon.start()
        let home = daemon.directory.file("home")
        make(home, folderOwnedBy: TestUser.nobody.uid, mode: 0o755)
        try copy("fine-tuning.jsonl", to: "\(home)/data.jsonl", owner: TestUser.nobody.uid)
        #expect(try daemon.cli(["reserve", "train", "--model", Self.model, "--units", "1", "--purpose", "training"], as: .nobody).status == 0)
        let id = try submitted(
            try daemon.cli(
                [
                    "submit", "ft", "--reservation", "train", "--kind", "fine-tuning", "--data", "\(home)/data.jsonl",
                    "--output", "\(home)/model", "--model-name", "nobodys-model", "--epochs", "1",
                ],
                as: .nobody
            )
        )
        let done = try await daemon.jobView(id, reaching: ["completed", "failed"], as: .nobody)
        #expect(done.status == "completed", "\(done)")

        #expect(try daemon.cli(["reserve", "mine", "--model", "nobodys-model", "--units", "1", "--purpose", "inference"], as: .nobody).status == 0)
        let call = try daemon.cli(["invoke", "mine", "--prompt", "what does the ledger keep", "--max-tokens", "4"], as: .nobody)
        #expect(call.status == 0, "\(call)\n\(daemon.log)")
        let owned = daemon.servePIDs("reservation-")
        #expect(!owned.isEmpty && owned.allSatisfy { uid(of: $0) == TestUser.nobody.uid }, "\(owned.map { uid(of: $0) as Any })")

        let onDemand = try daemon.cli(["invoke", Self.model, "--prompt", "what does the ledger keep", "--max-tokens", "4"])
        #expect(onDemand.status == 0, "\(onDemand)\n\(daemon.log)")
        let shared = daemon.servePIDs("on-demand-")
        #expect(!shared.isEmpty && shared.allSatisfy { uid(of: $0) == 1 }, "\(shared.map { uid(of: $0) as Any })")
    }
}
