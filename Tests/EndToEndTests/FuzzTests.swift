import BerthTestSupport
import BerthWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Thousands of generated hostile requests, sent as raw bytes over the real control socket to a
/// running berthd: wrong types, missing and extra fields, huge and negative numbers, 10 MB
/// bodies, invalid UTF-8, truncated JSON and HTTP, path tricks, unknown routes and methods,
/// bad query strings and headers. Seeded and reproducible: `BERTH_FUZZ_SEED=N` replays a run
/// (every failure prints its seed), `BERTH_FUZZ_REQUESTS=N` changes how many are sent,
/// `BERTH_FUZZ_VERBOSE=1` prints every exchange, and a run stops after `budget` seconds
/// whatever the count.
@Suite("Hostile input", .serialized)
struct FuzzTests {
    static let defaultSeed: UInt64 = 20_261_125
    static let defaultCount = 3_000
    static let budget: TimeInterval = 30

    @Test("hostile requests: nothing is answered 5xx, every error has the API's shape, the daemon stays up, the ledger stays sound")
    func hostileRequests() throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["BERTH_FUZZ_SEED"].flatMap { UInt64($0) } ?? Self.defaultSeed
        let count = environment["BERTH_FUZZ_REQUESTS"].flatMap { Int($0) } ?? Self.defaultCount
        let replay = "replay with BERTH_FUZZ_SEED=\(seed) BERTH_FUZZ_REQUESTS=\(count)"
        let verbose = environment["BERTH_FUZZ_VERBOSE"] != nil

        let scripts = try TemporaryDirectory(prefix: "berth-fuzz")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(
            config: TemporaryDaemon.config(
                dedicated: 24,
                runner: try FakeRunner.install(in: scripts),
                extra: "\n[limits]\nrequest_timeout_seconds = 2\nmax_queued_jobs_per_user = 40\nmax_data_file_bytes = 1048576\n"
            )
        )
        try daemon.start()
        let files = try FuzzFiles(in: daemon.directory)
        var generator = HostileRequests(seed: seed, files: files)

        var failures: [String] = []
        var answered: [Int: Int] = [:]
        var sent = 0
        let started = Date()
        while sent < count, Date().timeIntervalSince(started) < Self.budget, failures.count < 25 {
            let request = generator.next()
            sent += 1
            let outcome: Outcome
            do {
                outcome = try Self.exchange(request, socket: daemon.socket)
            } catch {
                outcome = .broken("\(error)")
            }
            if verbose { print("fuzz #\(sent) \(request.label): \(outcome)") }
            switch outcome {
            case .answered(let response):
                answered[response.status, default: 0] += 1
                if let problem = Self.problem(with: response, bodyExpected: !request.isHead) {
                    failures.append("#\(sent) \(request.label): \(problem)\n    sent: \(request.preview)\n    got: \(response)")
                }
            case .unanswered:
                answered[0, default: 0] += 1
                if request.framing == .complete {
                    failures.append("#\(sent) \(request.label): a complete request got no answer\n    sent: \(request.preview)")
                }
            case .broken(let reason):
                failures.append("#\(sent) \(request.label): \(reason)\n    sent: \(request.preview)")
            }
            if !daemon.isRunning {
                failures.append("#\(sent) \(request.label): berthd exited\n    sent: \(request.preview)")
                break
            }
        }
        let summary =
            "\(sent) requests in \(Int(Date().timeIntervalSince(started))) s, answers by status (0: none): "
            + answered.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("fuzz seed \(seed): \(summary)")

        #expect(
            failures.isEmpty,
            "\(replay)\n\(summary)\n\(failures.joined(separator: "\n"))\n--- berthd log (tail) ---\n\(daemon.log.suffix(6_000))"
        )
        #expect(daemon.isRunning, "berthd exited; \(replay)\n\(daemon.log.suffix(6_000))")
        // Afterwards the daemon still answers, and the ledger is sound.
        let status = try daemon.cli(["status"])
        #expect(status.status == 0, "\(replay): \(status)")
        #expect(try daemon.ledgerViolations() == [], "\(replay)")
        // Enough of the traffic reached the handlers, not only the HTTP layer's refusals.
        #expect(answered.filter { (200..<300).contains($0.key) }.values.reduce(0, +) > sent / 20, "\(replay)\n\(summary)")
        let stopped = daemon.stop()
        #expect(stopped == 0, "\(replay): berthd exited \(String(describing: stopped)) on SIGTERM\n\(daemon.log.suffix(4_000))")
        #expect(try daemon.ledgerViolations() == [], "\(replay)")
    }

    /// The fuzz run above is root, whom file checks let through; here an ordinary user tries
    /// the same path tricks, through the real CLI.
    @Test("path tricks from an ordinary user never reach a file or folder they could not use themselves, nor echo its contents")
    func pathTricksAsAnotherUser() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let reserved = try daemon.cli(["reserve", "nb", "--model", "amazon.nova-micro-v1:0", "--units", "1", "--purpose", "training"], as: .nobody)
        #expect(reserved.status == 0, "\(reserved)")
        // A dataset only root may read, valid as a dataset, so only the permission check can stop it.
        let secret = daemon.directory.file("secret.jsonl")
        try Data(#"{"prompt": "the root password is", "completion": "hunter2"}"#.utf8).write(to: URL(fileURLWithPath: secret))
        chmod(secret, 0o600)
        try FileManager.default.createDirectory(atPath: daemon.directory.file("sub"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: daemon.directory.file("link.jsonl"), withDestinationPath: secret)
        let open = daemon.directory.file("open.jsonl")
        try FileManager.default.copyItem(atPath: TemporaryDaemon.examples + "/fine-tuning.jsonl", toPath: open)
        chmod(open, 0o644)
        let outputs = daemon.directory.file("outputs")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        chmod(outputs, 0o777)

        let tricks: [(data: String, output: String)] = [
            (secret, outputs + "/a"), (daemon.directory.file("link.jsonl"), outputs + "/b"),
            (daemon.directory.file("sub/../secret.jsonl"), outputs + "/c"), ("/etc/shadow", outputs + "/d"),
            ("/proc/self/environ", outputs + "/e"), ("/proc/1/environ", outputs + "/f"),
            (open, "/etc/berth-fuzz-out"), (open, daemon.directory.file("owned-by-root")), (open, outputs + "/../../../../etc/x"),
            (open, "/proc/self/cwd/x"), (daemon.directory.file("%2e%2e/secret.jsonl"), outputs + "/g"), ("relative.jsonl", outputs + "/h"),
        ]
        for (index, trick) in tricks.enumerated() {
            let result = try daemon.cli(
                [
                    "submit", "t\(index)", "--reservation", "nb", "--kind", "fine-tuning", "--data", trick.data,
                    "--output", trick.output, "--model-name", "trick-\(index)",
                ],
                as: .nobody
            )
            #expect([2, 4].contains(result.status), "\(trick): \(result)")
            #expect(!result.stderr.contains("hunter2") && !result.stderr.contains("root:"), "\(trick): \(result)")
        }
        let jobs = try daemon.view(JobList.self, ["jobs"])
        #expect(jobs.jobs.isEmpty, "\(jobs)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/berth-fuzz-out"))
        #expect(!FileManager.default.fileExists(atPath: daemon.directory.file("owned-by-root")))
        // The same user with their own readable data and a folder they may write is served.
        let fair = try daemon.cli(
            [
                "submit", "fair", "--reservation", "nb", "--kind", "fine-tuning", "--data", open,
                "--output", outputs + "/fair", "--model-name", "fair-model",
            ],
            as: .nobody
        )
        #expect(fair.status == 0, "\(fair)")
    }

    enum Outcome {
        case answered(RawResponse)
        case unanswered
        case broken(String)
    }

    /// One connection per request: send it, half-close so a truncated request ends there
    /// instead of waiting for the request timeout, and read the answer.
    static func exchange(_ request: HostileRequest, socket path: String) throws -> Outcome {
        let socket = try RawSocket(path: path, readTimeout: 60)
        if socket.send(request.bytes) {
            shutdown(socket.fd, Int32(SHUT_WR))
        }
        guard let response = try socket.readResponse(bodyExpected: !request.isHead) else { return .unanswered }
        return .answered(response)
    }

    /// What is wrong with an answer, if anything: a 5xx other than 503, an error without the
    /// API's shape, a status the API does not use.
    static func problem(with response: RawResponse, bodyExpected: Bool) -> String? {
        switch response.status {
        case 200..<300:
            return nil
        case 400, 403, 404, 408, 409, 413, 429:
            return bodyExpected && response.error == nil ? "an error answer not in the shape {\"error\":{\"code\",\"message\"}}" : nil
        case 503:
            guard bodyExpected else { return nil }
            guard let error = response.error else { return "a 503 not in the error shape" }
            return ["too-many-connections", "shutting-down"].contains(error.code) ? nil : "503 with code \(error.code)"
        default:
            return "status \(response.status) is not one the API answers"
        }
    }
}

// MARK: - Files the requests may name

/// Files and folders for data and output paths: good ones, so some jobs are real, and tricks.
struct FuzzFiles {
    var trainData: String
    var batchData: String
    var badData: String
    var emptyData: String
    var linkToShadow: String
    var folder: String
    var output: String

    init(in directory: TemporaryDirectory) throws {
        let fileManager = FileManager.default
        trainData = directory.file("train.jsonl")
        batchData = directory.file("batch.jsonl")
        try fileManager.copyItem(atPath: TemporaryDaemon.examples + "/fine-tuning.jsonl", toPath: trainData)
        try fileManager.copyItem(atPath: TemporaryDaemon.examples + "/batch-inference.jsonl", toPath: batchData)
        badData = directory.file("bad.jsonl")
        try Data("{\"prompt\": \"a\"}\nnot json\n{\"prompt\": 5, \"completion\": []}\n\u{0}\u{1}\n".utf8).write(to: URL(fileURLWithPath: badData))
        emptyData = directory.file("empty.jsonl")
        _ = fileManager.createFile(atPath: emptyData, contents: Data())
        linkToShadow = directory.file("shadow.jsonl")
        try fileManager.createSymbolicLink(atPath: linkToShadow, withDestinationPath: "/etc/shadow")
        folder = directory.file("a-folder.jsonl")
        try fileManager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        output = directory.file("out")
        try fileManager.createDirectory(atPath: output, withIntermediateDirectories: true)
    }
}

// MARK: - The generator

/// SplitMix64: a tiny seedable generator, so a seed means the same requests on every machine.
struct HostileRequest {
    /// Whether the bytes are a complete HTTP/1.1 request, which must get an answer.
    enum Framing { case complete, broken }

    var label: String
    var bytes: [UInt8]
    var framing: Framing
    /// A HEAD or CONNECT request: HTTP gives its answer no body (NIO's encoder drops it), so
    /// there is no error shape to read or check.
    var isHead = false

    /// The start of what was sent, printable.
    var preview: String {
        let head = bytes.prefix(400).map { byte -> String in
            switch byte {
            case 0x20..<0x7F where byte != 0x5C: String(UnicodeScalar(byte))
            case 0x0D: "\\r"
            case 0x0A: "\\n"
            default: String(format: "\\x%02x", byte)
            }
        }.joined()
        return bytes.count > 400 ? head + "… (\(bytes.count) bytes)" : head
    }
}

/// A JSON value written by hand, so it can hold what no encoder writes: duplicate keys,
/// numbers out of every range, raw literals such as NaN.
indirect enum JSONText {
    case raw(String)
    case string(String)
    case array([JSONText])
    case object([(String, JSONText)])

    var text: String {
        switch self {
        case .raw(let literal): literal
        case .string(let value): Self.quote(value)
        case .array(let values): "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let fields): "{" + fields.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The request stream of one seed.
struct HostileRequests {
    var random: SeededGenerator
    let files: FuzzFiles
    private var hugeBodies = 0
    /// Requests of a scripted flow still to send, first in first out.
    private var scripted: [HostileRequest] = []
    private var flows = 0

    init(seed: UInt64, files: FuzzFiles) {
        self.random = SeededGenerator(state: seed)
        self.files = files
    }

    // Helpers over the seeded generator.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }
    mutating func pick<T>(_ options: [T]) -> T { options[Int.random(in: 0..<options.count, using: &random)] }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }

    // MARK: Values

    static let models = ["amazon.nova-micro-v1:0", "meta.llama3-8b-instruct-v1:0", "test.tiny-v1"]

    /// Most values are ones the API takes, so requests get past the first check and reach
    /// the ledger, the scheduler and the runners; the rest are hostile.
    static let validShare = 0.7

    mutating func name() -> String {
        if chance(Self.validShare) { return "fz-\(int(0...11))" }
        return pick([
            "", "A", "-a", "a b", "../etc", "..", ".",
            "%2e%2e", "a/b", "a\u{0}b", String(repeating: "a", count: 63), String(repeating: "a", count: 64),
            String(repeating: "x", count: 5_000), "ünïcödé", "a\u{202E}b", "😀", "a\nb", "CON",
        ])
    }

    mutating func integer() -> JSONText {
        if chance(Self.validShare) { return .raw(String(int(1...3))) }
        return pick([
            .raw("1"), .raw("2"), .raw(String(int(0...9))), .raw("0"), .raw("-1"), .raw("-3"), .raw("9223372036854775807"),
            .raw("-9223372036854775808"), .raw("9223372036854775808"), .raw("1e30"), .raw("1e400"), .raw("-1e400"), .raw("1.5"),
            .raw("-0"), .raw("0.0000001"), .raw("1E2"), .raw("NaN"), .raw("Infinity"), .raw("0x10"), .raw("01"),
            .string("1"), .raw("true"), .raw("null"), .array([.raw("1")]),
        ])
    }

    mutating func time() -> String {
        if chance(Self.validShare) { return pick(["now", "+1h", "+1d", "+2h", "+3d", "2030-01-01T00:00:00Z"]) }
        return pick([
            "now", "+1h", "+1d", "-7d", "+2h", "2026-12-01T09:00:00Z", "2030-01-01T00:00:00.123Z", "+99999999999999999999d",
            "+9223372036854775807s", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "+1x", "",
            "now\u{0}", "+-1d", "-0s", "2026-02-30T00:00:00Z", "2026-12-01T25:61:61Z", "yesterday", "+1.5h", " +1h ",
        ])
    }

    mutating func duration() -> String {
        if chance(Self.validShare) { return pick(["90s", "8h", "2d", "30m"]) }
        return pick(["90s", "8h", "2d", "1w", "0s", "-1h", "99999999999999999999d", "9223372036854775807s", "1y", "", "h", "1.5h", "٣h"])
    }

    mutating func path(for kind: String) -> String {
        if chance(Self.validShare) { return kind == "batch-inference" ? files.batchData : files.trainData }
        return pick([
            kind == "batch-inference" ? files.batchData : files.trainData, files.trainData, files.batchData, files.badData,
            files.emptyData, files.linkToShadow, files.folder, "/etc/shadow", "/etc/passwd", "../../etc/passwd",
            "/tmp/../etc/passwd", "%2e%2e/etc/passwd", "/dev/zero", "/dev/urandom", "/proc/self/environ", "/proc/self/mem",
            "/", "", "relative.jsonl", String(repeating: "a/", count: 3_000), "/nonexistent\u{0}/x",
            files.trainData + "\u{0}.png", files.trainData + "/..", String(repeating: "/", count: 5_000),
        ])
    }

    mutating func output() -> String {
        if chance(Self.validShare) { return files.output + "/job-\(int(0...99))" }
        return pick([
            files.output + "/job-\(int(0...99))", files.output, "/", "/etc", "/proc/self", "../x", "", "/tmp/\u{0}x",
            files.output + "/../../..", files.trainData, files.output + "/" + String(repeating: "d", count: 300),
        ])
    }

    mutating func prompt() -> String {
        if chance(Self.validShare) { return "hello there" }
        return pick(["hello", "", " ", String(repeating: "word ", count: 20_000), "😀🚀", "\u{0}", "a\u{FFFF}b", "\\u0000", "{\"x\":1}"])
    }

    // MARK: Bodies

    mutating func reservationBody() -> [(String, JSONText)] {
        let model = chance(0.9) ? pick(Self.models) : pick(["nope", "", "../x", "m-1"])
        var fields: [(String, JSONText)] = [("name", .string(name())), ("model", .string(model)), ("model_units", integer())]
        if chance(0.8) { fields.append(("purpose", .string(chance(0.9) ? pick(["training", "inference"]) : pick(["fun", "", "TRAINING"])))) }
        if chance(0.1) { fields.append(("commitment", .string(pick(["none", "1m", "6m", "2m", ""])))) }
        if chance(0.4) { fields.append(("start", .string(time()))) }
        if chance(0.8) { fields.append(("duration", .string(duration()))) }
        if chance(0.2) {
            fields.append(("wait", chance(Self.validShare) ? pick([.raw("true"), .raw("false")]) : pick([.string("yes"), .raw("1")])))
        }
        if chance(0.2) { fields.append(("spillover", pick([.raw("true"), .raw("false"), .raw("null")]))) }
        return fields
    }

    mutating func updateBody() -> [(String, JSONText)] {
        var fields: [(String, JSONText)] = []
        if chance(0.5) { fields.append(("name", .string(name()))) }
        if chance(0.4) { fields.append(("model", .string(pick(Self.models + ["nope"])))) }
        if chance(0.5) { fields.append(("model_units", integer())) }
        return fields
    }

    mutating func jobBody() -> [(String, JSONText)] {
        let kind =
            chance(0.9)
            ? pick(["fine-tuning", "fine-tuning", "continued-pretraining", "distillation", "batch-inference"]) : pick(["", "FINE-TUNING", "rl"])
        var fields: [(String, JSONText)] = [
            ("name", .string(name())), ("reservation", .string(name())), ("kind", .string(kind)),
            ("data", .string(path(for: kind))), ("output", .string(output())),
        ]
        if kind != "batch-inference" || chance(0.1) {
            fields.append(
                (
                    "model_name",
                    .string(
                        chance(0.8)
                            ? "m-\(int(0...99_999))" : pick(["", "../m", "a b", String(repeating: "m", count: 200), "amazon.nova-micro-v1:0"])
                    )
                )
            )
        }
        if chance(0.3) { fields.append(("validation_data", .string(path(for: kind)))) }
        if chance(0.3) { fields.append(("epochs", integer())) }
        if chance(0.3) { fields.append(("batch_size", integer())) }
        if chance(0.3) {
            fields.append(("learning_rate", pick([.raw("0.00001"), .raw("0"), .raw("-1"), .raw("1e-300"), .raw("1e300"), .string("fast")])))
        }
        if chance(0.2) { fields.append(("warmup_steps", integer())) }
        if chance(0.3) { fields.append(("model_units", integer())) }
        if chance(0.3) { fields.append(("priority", integer())) }
        return fields
    }

    mutating func invokeBody() -> [(String, JSONText)] {
        var fields: [(String, JSONText)] = [
            ("target", .string(chance(0.5) ? name() : pick(Self.models + ["m-1", ""]))), ("prompt", .string(prompt())),
        ]
        if chance(0.5) { fields.append(("max_tokens", integer())) }
        if chance(0.2) { fields.append(("image", .string(pick(["", "!!!", "aGVsbG8=", String(repeating: "A", count: 100_000)])))) }
        return fields
    }

    /// Breaks a body's fields the ways a careless or hostile client would.
    mutating func mutate(_ fields: [(String, JSONText)]) -> JSONText {
        var fields = fields
        guard chance(0.4) else { return .object(fields) }
        if !fields.isEmpty, chance(0.3) { fields.remove(at: int(0...fields.count - 1)) }
        if chance(0.3) { fields.append((pick(["colour", "__proto__", "modelUnits", "", "name ", "NAME", "model_units\u{0}"]), integer())) }
        if !fields.isEmpty, chance(0.3) {
            let index = int(0...fields.count - 1)
            fields[index].1 = pick([.raw("null"), .raw("true"), .raw("[]"), .raw("{}"), integer(), .string("x"), .array([.string("a")])])
        }
        if !fields.isEmpty, chance(0.1) { fields.append(fields[int(0...fields.count - 1)]) }  // a duplicate key
        if chance(0.05) { return .array([.object(fields)]) }
        if chance(0.03) { return .raw(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)) }
        if chance(0.03) { return .raw(String(repeating: "{\"a\":", count: 50_000) + "1" + String(repeating: "}", count: 50_000)) }
        return .object(fields)
    }

    /// Byte-level damage: truncation, invalid UTF-8, stray bytes.
    mutating func damage(_ body: [UInt8]) -> [UInt8] {
        var body = body
        switch int(0...5) {
        case 0 where !body.isEmpty: body = Array(body.prefix(int(0...body.count - 1)))
        case 1:
            body.insert(
                contentsOf: pick([[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]]),
                at: int(0...body.count)
            )
        case 2 where !body.isEmpty: body[int(0...body.count - 1)] = UInt8.random(in: 0...255, using: &random)
        case 3: body = [0xEF, 0xBB, 0xBF] + body
        case 4: body += Array(" // trailing".utf8)
        default: body = (0..<int(0...64)).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
        return body
    }

    // MARK: Targets

    mutating func jobID() -> String {
        pick([String(int(1...30)), String(int(1...30)), "0", "-1", "99999999999999999999", "abc", "1.5", "%31", "1%00", "1;2"])
    }

    mutating func timeQuery() -> String {
        var parts: [String] = []
        if chance(0.7) { parts.append("from=" + (addingPercents(time()))) }
        if chance(0.7) { parts.append("to=" + (addingPercents(time()))) }
        if chance(0.1) {
            parts.append(pick(["from=%zz", "to=%", "from", "=", "&&&", "to=now&to=+1d", "from=\(String(repeating: "9", count: 10_000))"]))
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    func addingPercents(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? text
    }

    mutating func nameInPath() -> String {
        if chance(Self.validShare) { return "fz-\(int(0...11))" }
        return pick([addingPercents(name()), "%2e%2e", "..%2f..%2fetc", "%00", "%ff%fe", "fz-1%2Fx", "fz-1/../../units", "%", "fz-1%00"])
    }

    // MARK: Requests

    mutating func next() -> HostileRequest {
        if !scripted.isEmpty { return scripted.removeFirst() }
        let roll = int(0...99)
        switch roll {
        case 0..<4:
            scripted = flow()
            return scripted.removeFirst()
        case 4..<55: return apiRequest()
        case 55..<70: return framingTrick()
        case 70..<82: return headerTrick()
        case 82..<92: return routeTrick()
        case 92..<95 where hugeBodies < 4: return hugeBody()
        default: return randomBytes()
        }
    }

    /// A request to a real endpoint, its body built from the endpoint's fields and then broken.
    mutating func apiRequest() -> HostileRequest {
        var headers: [(String, String)] = []
        if chance(0.1) { headers.append(("Idempotency-Key", pick(["k-\(int(0...5))", "", String(repeating: "k", count: 256), "ключ"]))) }
        let (method, target, label, fields): (String, String, String, [(String, JSONText)]?) =
            switch int(0...14) {
            case 0, 1, 2: ("POST", "/v1/reservations", "create reservation", reservationBody())
            case 3: ("PATCH", "/v1/reservations/" + nameInPath(), "update reservation", updateBody())
            case 4, 14: ("DELETE", "/v1/reservations/" + nameInPath(), "release reservation", nil)
            case 5: ("GET", pick(["/v1/reservations", "/v1/reservations/" + nameInPath()]), "show reservations", nil)
            case 6: ("GET", "/v1/capacity" + timeQuery(), "capacity", nil)
            case 7, 8: ("POST", "/v1/jobs", "submit job", jobBody())
            case 9: ("POST", "/v1/jobs/\(jobID())/stop", "stop job", nil)
            case 10:
                (
                    "GET",
                    "/v1/jobs/\(jobID())" + pick(["", "/events", "/log", "/log?offset=\(pick(["0", "-1", "18446744073709551616", "abc", "100"]))"]),
                    "show job", nil
                )
            case 11: ("POST", "/v1/invoke", "invoke", invokeBody())
            case 12:
                (
                    "GET", pick(["/v1/health", "/v1/units", "/v1/models", "/v1/models/" + addingPercents(pick(Self.models + ["nope", "m-1"]))]),
                    "catalog", nil
                )
            default: ("GET", "/v1/jobs", "list jobs", nil)
            }
        var body: [UInt8] = []
        var detail = "valid-ish"
        if let fields {
            body = Array(mutate(fields).text.utf8)
            if chance(0.1) {
                body = damage(body)
                detail = "damaged"
            }
        } else if chance(0.05) {
            body = Array("{\"unexpected\": true}".utf8)
            detail = "body on a bodiless route"
        }
        return HostileRequest(label: "\(label) (\(detail))", bytes: Self.request(method, target, headers: headers, body: body), framing: .complete)
    }

    /// A valid reservation, work on it and its release, interleaved with nothing: this is
    /// how the fuzzer's traffic reaches runners, serve processes, the scheduler and the
    /// ledger's lease bookkeeping, so that the hostile requests around it meet a busy daemon.
    mutating func flow() -> [HostileRequest] {
        flows += 1
        let name = "flow-\(flows)"
        let inference = flows % 10 == 0
        let body = { (fields: [(String, JSONText)]) in Array(JSONText.object(fields).text.utf8) }
        var requests = [
            HostileRequest(
                label: "flow: reserve \(name)",
                bytes: Self.request(
                    "POST",
                    "/v1/reservations",
                    body: body([
                        ("name", .string(name)), ("model", .string(Self.models[0])), ("model_units", .raw("1")),
                        ("purpose", .string(inference ? "inference" : "training")), ("duration", .string("2h")),
                    ])
                ),
                framing: .complete
            )
        ]
        if inference {
            requests.append(
                HostileRequest(
                    label: "flow: invoke \(name)",
                    bytes: Self.request(
                        "POST",
                        "/v1/invoke",
                        body: body([("target", .string(name)), ("prompt", .string(prompt())), ("max_tokens", integer())])
                    ),
                    framing: .complete
                )
            )
            requests.append(
                HostileRequest(
                    label: "flow: batch job on \(name)",
                    bytes: Self.request(
                        "POST",
                        "/v1/jobs",
                        body: body([
                            ("name", .string("b")), ("reservation", .string(name)), ("kind", .string("batch-inference")),
                            ("data", .string(files.batchData)), ("output", .string(files.output + "/" + name)),
                        ])
                    ),
                    framing: .complete
                )
            )
        } else {
            var job: [(String, JSONText)] = [
                ("name", .string("j")), ("reservation", .string(name)), ("kind", .string(pick(["fine-tuning", "distillation"]))),
                ("data", .string(path(for: "fine-tuning"))), ("output", .string(files.output + "/" + name)), ("model_name", .string("\(name)-m")),
            ]
            if chance(0.5) { job.append(("epochs", integer())) }
            requests.append(
                HostileRequest(label: "flow: submit on \(name)", bytes: Self.request("POST", "/v1/jobs", body: body(job)), framing: .complete)
            )
            if chance(0.5) {
                requests.append(
                    HostileRequest(label: "flow: stop a job", bytes: Self.request("POST", "/v1/jobs/\(jobID())/stop"), framing: .complete)
                )
            }
        }
        if chance(0.8) {
            requests.append(
                HostileRequest(label: "flow: release \(name)", bytes: Self.request("DELETE", "/v1/reservations/\(name)"), framing: .complete)
            )
        }
        return requests
    }

    /// Complete HTTP framing whose lengths, encodings or lines are wrong.
    mutating func framingTrick() -> HostileRequest {
        let body = Array(mutate(reservationBody()).text.utf8)
        let head = "POST /v1/reservations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        let (label, bytes): (String, [UInt8]) =
            switch int(0...11) {
            case 0: ("Content-Length larger than the body", Array((head + "Content-Length: \(body.count + 50)\r\n\r\n").utf8) + body)
            case 1: ("Content-Length smaller than the body", Array((head + "Content-Length: \(max(0, body.count - 5))\r\n\r\n").utf8) + body)
            case 2: ("Content-Length not a number", Array((head + "Content-Length: ten\r\n\r\n").utf8) + body)
            case 3: ("negative Content-Length", Array((head + "Content-Length: -1\r\n\r\n").utf8) + body)
            case 4: ("two different Content-Lengths", Array((head + "Content-Length: \(body.count)\r\nContent-Length: 3\r\n\r\n").utf8) + body)
            case 5: ("chunked, well formed", Array((head + "Transfer-Encoding: chunked\r\n\r\n").utf8) + Self.chunked(body))
            case 6:
                ("chunked, a bad chunk size", Array((head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n").utf8) + body + Array("\r\n0\r\n\r\n".utf8))
            case 7:
                (
                    "chunked and Content-Length",
                    Array((head + "Transfer-Encoding: chunked\r\nContent-Length: \(body.count)\r\n\r\n").utf8) + Self.chunked(body)
                )
            case 8: ("the request cut short", Array(Self.request("POST", "/v1/reservations", body: body).prefix(int(1...60))))
            case 9: ("bare LF line ends", Array("POST /v1/reservations HTTP/1.1\nHost: localhost\nContent-Length: \(body.count)\n\n".utf8) + body)
            case 10: ("Expect: 100-continue", Array((head + "Expect: 100-continue\r\nContent-Length: \(body.count)\r\n\r\n").utf8) + body)
            default:
                (
                    "two requests in one write",
                    Self.request("GET", "/v1/health", keepAlive: true) + Self.request("POST", "/v1/reservations", body: body)
                )
            }
        return HostileRequest(label: "framing: \(label)", bytes: bytes, framing: .broken)
    }

    /// Headers no client should send.
    mutating func headerTrick() -> HostileRequest {
        let body = Array(mutate(reservationBody()).text.utf8)
        let (label, headers): (String, [(String, String)]) =
            switch int(0...9) {
            case 0: ("a huge Idempotency-Key", [("Idempotency-Key", String(repeating: "k", count: int(256...200_000)))])
            case 1: ("an empty Idempotency-Key", [("Idempotency-Key", "")])
            case 2: ("a header without a colon", [("No-Colon-Here", "\u{0}")])
            case 3: ("thousands of headers", (0..<1_500).map { ("X-H\($0)", "v") })
            case 4: ("a non-JSON content type", [("Content-Type", "text/plain; charset=latin1")])
            case 5: ("a header with a newline inside", [("X-Split", "a\r\n\r\nGET /v1/units HTTP/1.1")])
            case 6: ("a header name with spaces", [("Bad Name", "v")])
            case 7: ("an Idempotency-Key reused for another body", [("Idempotency-Key", "shared-key")])
            case 8: ("a raw high byte in a header", [])
            default: ("no Host header", [])
            }
        var bytes: [UInt8]
        switch label {
        case "a header without a colon":
            bytes = Array("POST /v1/reservations HTTP/1.1\r\nHost: x\r\nNo-Colon-Here\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        case "no Host header":
            bytes = Array("POST /v1/reservations HTTP/1.1\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        case "a raw high byte in a header":
            bytes =
                Array("POST /v1/reservations HTTP/1.1\r\nHost: x\r\nX-Latin: caf".utf8) + [0xE9]
                + Array("\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        default:
            bytes = Self.request("POST", "/v1/reservations", headers: headers, body: body)
        }
        return HostileRequest(label: "headers: \(label)", bytes: bytes, framing: .broken)
    }

    /// Paths and methods the API does not have.
    mutating func routeTrick() -> HostileRequest {
        let method = pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "CONNECT", "FOO", "get", "G\u{1}ET", "BREW"])
        let target = pick([
            "/v1/nothing", "/v2/health", "/", "//v1//health", "/v1/health/", "/V1/HEALTH", "/v1/reservations/../units",
            "/v1/models/%00", "/v1/models/%ff%fe", "/v1/jobs/-1", "/v1/jobs/abc/stop", "/v1/units?x=%zz&&=",
            "/v1/" + String(repeating: "a", count: int(1_000...120_000)), "*", "http://localhost/v1/health", "v1/health",
            "/v1/health#frag", "/v1/health?\u{0}", "/v1/reservations/fz-1/extra/parts", "/metrics", "/v1/usage?from=now&to=-1d&by=nope",
        ])
        let body: [UInt8] = chance(0.3) ? Array(mutate(reservationBody()).text.utf8) : []
        let bytes = Self.request(method, target, body: body)
        let odd = method.contains("\u{1}") || target.contains("\u{0}") || target.count > 80_000 || !target.hasPrefix("/") || method == "CONNECT"
        return HostileRequest(
            label: "route: \(method) \(target.prefix(60))",
            bytes: bytes,
            framing: odd ? .broken : .complete,
            isHead: method == "HEAD" || method == "CONNECT"
        )
    }

    /// A 10 MB body, or a length that claims one.
    mutating func hugeBody() -> HostileRequest {
        hugeBodies += 1
        let huge = [UInt8](repeating: UInt8(ascii: "a"), count: 10 * 1024 * 1024)
        switch hugeBodies {
        case 1:
            let body = Array("{\"name\": \"".utf8) + huge + Array("\"}".utf8)
            return HostileRequest(label: "a 10 MB body", bytes: Self.request("POST", "/v1/reservations", body: body), framing: .complete)
        case 2:
            let bytes =
                Array("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + Self.chunked(huge)
            return HostileRequest(label: "a 10 MB chunked body", bytes: bytes, framing: .complete)
        case 3:
            let bytes = Array("POST /v1/invoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10737418240\r\n\r\n{\"target\":".utf8)
            return HostileRequest(label: "a Content-Length of 10 GB", bytes: bytes, framing: .broken)
        default:
            let body = [UInt8](repeating: 0xFF, count: 2 * 1024 * 1024)
            return HostileRequest(label: "2 MB of invalid UTF-8", bytes: Self.request("POST", "/v1/invoke", body: body), framing: .complete)
        }
    }

    mutating func randomBytes() -> HostileRequest {
        let bytes: [UInt8] =
            switch int(0...3) {
            case 0: (0..<int(1...512)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
            case 2: [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03]  // a TLS ClientHello
            default:
                Array("GET /v1/health HTTP/1.1\r\nHost: x\r\n".utf8) + (0..<int(1...64)).map { _ in UInt8.random(in: 0...255, using: &random) }
                    + Array("\r\n\r\n".utf8)
            }
        return HostileRequest(label: "random bytes", bytes: bytes, framing: .broken)
    }

    // MARK: Wire format

    static func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = [], keepAlive: Bool = false) -> [UInt8]
    {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if !keepAlive { head += "Connection: close\r\n" }
        if !body.isEmpty || method == "POST" || method == "PATCH" {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    static func chunked(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < body.count {
            let size = min(65_536, body.count - offset)
            out += Array((String(size, radix: 16) + "\r\n").utf8) + body[offset..<offset + size] + Array("\r\n".utf8)
            offset += size
        }
        return out + Array("0\r\n\r\n".utf8)
    }
}
