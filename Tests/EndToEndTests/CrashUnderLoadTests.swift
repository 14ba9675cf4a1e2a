import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Synchronization
import Testing

/// Crash safety under load (issue 8): clients reserve, release, submit, stop and call through
/// the real berthd while it is `kill -9`ed at random moments and started again on the same
/// ledger. Afterwards every change the API acknowledged must be in the ledger, and the ledger's
/// invariants must hold, after every crash and at the end.
///
/// Seeded: the seed picks every client's operations and the moments of the kills; it is printed,
/// and `BERTH_CRASH_SEED=N` replays it. How the clients' requests interleave with each other and
/// with the kills still depends on the machine, so a replay repeats the plan, not every race.
@Suite("Crash safety under load", .serialized)
struct CrashUnderLoadTests {
    static let clients = 6
    static let nova = "amazon.nova-micro-v1:0"
    static let llama = "meta.llama3-8b-instruct-v1:0"

    @Test("kill -9 under load, again and again: every acknowledged change is in the ledger and its invariants hold")
    func crashUnderLoad() async throws {
        let seed = ProcessInfo.processInfo.environment["BERTH_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...999_999)
        print("crash-under-load seed: \(seed) (BERTH_CRASH_SEED=\(seed) replays it)")
        var plan = SeededGenerator(seed: seed)
        let started = Date()

        let scripts = try TemporaryDirectory(prefix: "berth-fake")
        defer { scripts.remove() }
        let runner = try FakeRunner.install(in: scripts)
        // Enough dedicated units for several reservations at once.
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(dedicated: 10, runner: runner))
        let files = try Files(daemon.directory)
        try daemon.start()
        for file in [daemon.database, daemon.database + "-wal", daemon.database + "-shm"] {
            #expect(Self.mode(file) == 0o600, "\(file) must be created 0600, not \(String(Self.mode(file), radix: 8))")
        }

        let book = Book()
        let stop = StopSignal()
        let cycles = Int.random(in: 4...6, using: &plan)
        let clientSeeds = (0..<Self.clients).map { _ in plan.next() }

        // The clients run until told to stop; the harness kills and restarts berthd meanwhile.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, clientSeed) in clientSeeds.enumerated() {
                group.addTask {
                    var client = LoadClient(index: index, seed: clientSeed, socket: daemon.socket, files: files, book: book)
                    await client.run(until: stop)
                }
            }
            // The harness: blocking process work, on its own thread so the clients keep the pool.
            let harnessSeed = plan.next()
            let harness = await Self.onThread {
                var harnessPlan = SeededGenerator(seed: harnessSeed)
                for cycle in 1...cycles {
                    usleep(UInt32.random(in: 1_500_000...4_000_000, using: &harnessPlan))
                    daemon.kill9()
                    book.afterCrash(try LedgerContents.read(databaseAt: daemon.database), label: "after kill \(cycle)")
                    // Now and then, a second crash while the new berthd starts up and reconciles.
                    if Int.random(in: 0..<3, using: &harnessPlan) == 0 {
                        try daemon.launch()
                        usleep(UInt32.random(in: 0...400_000, using: &harnessPlan))
                        daemon.kill9()
                        book.afterCrash(try LedgerContents.read(databaseAt: daemon.database), label: "after kill \(cycle) during start-up")
                    }
                    try daemon.start()
                }
                usleep(2_000_000)
                // On a loaded machine (CI runs every suite at once) the clients may not have got
                // each kind of change through yet: give them time, so the check below is about
                // the daemon and not about the machine.
                _ = eventually(timeout: 45, every: 0.1) {
                    book.acknowledged(.reserve) > 0 && book.acknowledged(.submit) > 0 && book.acknowledged(.invoke) > 0
                }
            }
            stop.raise()
            try await group.waitForAll()
            try harness.get()
        }

        // A clean stop: runners and serve processes are stopped, the WAL checkpointed.
        #expect(daemon.stop() == 0, "berthd did not stop cleanly:\n\(daemon.log.suffix(4000))")

        let ledger = try LedgerContents.read(databaseAt: daemon.database)
        let violations = LedgerInvariants.violations(in: ledger) + book.violations(finalLedger: ledger)
        let summary = book.summary(ledger)
        print("crash-under-load: seed \(seed), \(String(format: "%.1f", Date().timeIntervalSince(started))) s; \(summary)")
        #expect(violations.isEmpty, "seed \(seed): \(violations.count) violations:\n\(violations.prefix(40).joined(separator: "\n"))")
        #expect(
            book.acknowledged(.reserve) > 0 && book.acknowledged(.submit) > 0 && book.acknowledged(.invoke) > 0,
            "seed \(seed): the load did too little to test anything: \(summary)"
        )
        let survivors = Self.processes(ofLedger: daemon.database)
        #expect(survivors.isEmpty, "runner or serve processes outlived berthd: \(survivors.map(Self.describe))")
        for pid in survivors { kill(pid, SIGKILL) }
    }

    /// Runs blocking work (process control, sleeps) on a thread of its own.
    static func onThread(_ body: @escaping @Sendable () throws -> Void) async -> Result<Void, any Error> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, any Error>, Never>) in
            Thread { continuation.resume(returning: Result { try body() }) }.start()
        }
    }

    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : 0
    }

    /// A process's pid, command line and berthd's name for it (`BERTH_SERVE`, `BERTH_JOB_ID`).
    static func describe(_ pid: Int32) -> String {
        let split = { (path: String) in
            (FileManager.default.contents(atPath: path) ?? Data()).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
        let names = split("/proc/\(pid)/environ").filter { $0.hasPrefix("BERTH_SERVE=") || $0.hasPrefix("BERTH_JOB_ID=") }
        return "\(pid) \(split("/proc/\(pid)/cmdline").joined(separator: " ")) \(names.joined(separator: " "))"
    }

    /// Live processes (not zombies) started for this ledger: each carries `BERTH_LEDGER`. A
    /// process killed a moment ago may take a little while to go; look for a few seconds.
    static func processes(ofLedger database: String) -> [Int32] {
        var found: [Int32] = []
        _ = eventually(timeout: 5, every: 0.1) {
            found = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                    environ.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == "BERTH_LEDGER=\(database)" }),
                    let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return false }
                let state = stat[stat.index(close, offsetBy: 2)]
                return state != "Z" && state != "X"
            }
            return found.isEmpty
        }
        return found
    }
}

// MARK: - Seeds

/// Tells the clients to finish.
final class StopSignal: Sendable {
    private let raised = Atomic<Bool>(false)

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) }
    func raise() { raised.store(true, ordering: .sequentiallyConsistent) }
}

// MARK: - What the API acknowledged

/// Everything the clients were told, and what the ledger looked like after each crash.
final class Book: Sendable {
    enum Operation: String, CaseIterable, Sendable { case reserve, release, submit, stop, invoke, show }

    struct AcknowledgedReservation: Sendable {
        var name: String
        var model: String
        var modelUnits: Int
        var purpose: String
        var owner: String
    }

    struct AcknowledgedJob: Sendable {
        var id: Int64
        var name: String
        var reservation: String
    }

    struct State {
        var reservations: [String: AcknowledgedReservation] = [:]
        var released: Set<String> = []
        var jobs: [Int64: AcknowledgedJob] = [:]
        var stopped: Set<Int64> = []
        /// Every name ever sent, acknowledged or not: each may make at most one row.
        var reservationNamesSent: Set<String> = []
        var jobNamesSent: Set<String> = []
        /// Acknowledged reservations the clients may still act on, with their purpose.
        var live: [String: String] = [:]
        var jobIDs: [Int64] = []
        /// Served calls acknowledged, by target.
        var served: [String: Int] = [:]
        /// The highest `invocations.served` an acknowledged `GET /v1/reservations/NAME` showed.
        var reported: [String: Int] = [:]
        /// Jobs that were running or stopping when a berthd was killed.
        var orphaned: [Int64: String] = [:]
        var crashes: [String] = []
        var problems: [String] = []
        var counts: [String: Int] = [:]
    }

    /// Nothing here grows a reservation (no update), so an active one holds all its units.
    static func partlyLeased(_ ledger: LedgerContents) -> [String] {
        ledger.reservations.filter { $0.status == "active" }.compactMap { r in
            let held = ledger.leases.filter { $0.held && $0.reservationID == r.id }.count
            return held == r.units ? nil : "reservation '\(r.name)' is active with \(held) held leases for its \(r.units) units"
        }
    }

    private let state = Mutex(State())

    @discardableResult
    func with<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }

    func count(_ operation: Operation, _ outcome: String) {
        with { $0.counts["\(operation.rawValue) \(outcome)", default: 0] += 1 }
    }

    func acknowledged(_ operation: Operation) -> Int { with { $0.counts["\(operation.rawValue) ok", default: 0] } }

    func problem(_ text: String) { with { $0.problems.append(text) } }

    /// The ledger as a crash left it: its invariants hold there too, and its running jobs are
    /// the ones the next berthd must fail with `daemon-restart`.
    func afterCrash(_ ledger: LedgerContents, label: String) {
        let violations = LedgerInvariants.violations(in: ledger) + Self.partlyLeased(ledger)
        with { state in
            state.crashes.append(label)
            state.problems += violations.map { "\(label): \($0)" }
            for job in ledger.jobs where job.status == "running" || job.status == "stopping" {
                state.orphaned[job.id] = label
            }
        }
    }

    /// What the final ledger must show of what was acknowledged.
    func violations(finalLedger ledger: LedgerContents) -> [String] {
        with { state in
            var found = state.problems
            for (name, made) in state.reservations.sorted(by: { $0.key < $1.key }) {
                let rows = ledger.reservation(named: name)
                guard let row = rows.first else {
                    found.append("reservation '\(name)' was acknowledged (201) but is not in the ledger")
                    continue
                }
                if row.owner != made.owner || row.model != made.model || row.modelUnits != made.modelUnits || row.purpose != made.purpose {
                    found.append(
                        "reservation '\(name)' was acknowledged as \(made.owner)/\(made.model)/\(made.modelUnits)/\(made.purpose) but the ledger has \(row.owner)/\(row.model)/\(row.modelUnits)/\(row.purpose)"
                    )
                }
            }
            for name in state.reservationNamesSent.sorted() where ledger.reservation(named: name).count > 1 {
                found.append(
                    "reservation name '\(name)' was sent for one reservation but the ledger has \(ledger.reservation(named: name).count): a retry acted twice"
                )
            }
            found += Self.partlyLeased(ledger)
            for name in state.released.sorted() {
                if let row = ledger.reservation(named: name).first, row.status != "deleted" {
                    found.append("reservation '\(name)' was acknowledged released but the ledger has it \(row.status)")
                }
            }
            for (id, made) in state.jobs.sorted(by: { $0.key < $1.key }) {
                guard let row = ledger.job(id: id) else {
                    found.append("job \(id) ('\(made.name)') was acknowledged (201) but is not in the ledger")
                    continue
                }
                let reservation = ledger.reservation(id: row.reservationID)?.name
                if row.name != made.name || reservation != made.reservation {
                    found.append(
                        "job \(id) was acknowledged as '\(made.name)' on '\(made.reservation)' but the ledger has '\(row.name)' on '\(reservation ?? "?")'"
                    )
                }
            }
            let jobsByName = Dictionary(grouping: ledger.jobs, by: \.name)
            for name in state.jobNamesSent.sorted() where (jobsByName[name]?.count ?? 0) > 1 {
                found.append(
                    "job name '\(name)' was sent for one job but the ledger has \(jobsByName[name]!.count) (ids \(jobsByName[name]!.map(\.id))): a retry acted twice"
                )
            }
            for id in state.stopped.sorted() {
                if let row = ledger.job(id: id), !["stopping", "stopped", "failed"].contains(row.status) {
                    found.append("job \(id) was acknowledged stopped but the ledger has it \(row.status)")
                }
            }
            for (id, label) in state.orphaned.sorted(by: { $0.key < $1.key }) {
                if let row = ledger.job(id: id), row.status != "failed" || row.reason != "daemon-restart" {
                    found.append(
                        "job \(id) was running \(label) but the next berthd left it \(row.status) (\(row.reason ?? "no reason")), not failed with daemon-restart"
                    )
                }
            }
            for job in ledger.jobs where job.status == "running" || job.status == "stopping" {
                found.append("job \(job.id) is still \(job.status) after berthd stopped cleanly")
            }
            for (target, count) in state.served.sorted(by: { $0.key < $1.key }) where ledger.servedCalls[target, default: 0] < count {
                found.append("\(count) calls to '\(target)' were answered but the ledger has \(ledger.servedCalls[target, default: 0]) served")
            }
            for (name, count) in state.reported.sorted(by: { $0.key < $1.key }) where ledger.servedCalls[name, default: 0] < count {
                found.append(
                    "GET /v1/reservations/\(name) once showed \(count) served calls but the ledger now has \(ledger.servedCalls[name, default: 0])"
                )
            }
            return found
        }
    }

    func summary(_ ledger: LedgerContents) -> String {
        with { state in
            let counts = state.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let startUps = state.crashes.filter { $0.hasSuffix("during start-up") }.count
            return
                "\(state.crashes.count) kills (\(startUps) during start-up); \(counts); \(ledger.reservations.count) reservations, \(ledger.jobs.count) jobs, \(ledger.leases.count) leases in the ledger; "
                + "\(state.orphaned.count) jobs orphaned by kills; \(state.served.values.reduce(0, +)) served calls answered, "
                + "\(ledger.servedCalls.values.reduce(0, +)) in the ledger"
        }
    }
}

// MARK: - Files

/// Datasets whose names tell the fake runner what to do, and a folder for outputs.
struct Files: Sendable {
    var fineTuning: [String]
    var batch: [String]
    var outputs: String

    init(_ directory: TemporaryDirectory) throws {
        let data = directory.file("data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        outputs = directory.file("out")
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: true)
        func copy(_ example: String, as name: String) throws -> String {
            let path = "\(data)/\(name)"
            try FileManager.default.copyItem(atPath: "\(TemporaryDaemon.examples)/\(example)", toPath: path)
            chmod(path, 0o644)
            return path
        }
        // Quick ones finish in about a second; slow ones run until stopped or killed.
        fineTuning = [
            try copy("fine-tuning.jsonl", as: "quick-ft.jsonl"), try copy("fine-tuning.jsonl", as: "slow-ft.jsonl"),
            try copy("fine-tuning.jsonl", as: "crash-ft.jsonl"),
        ]
        batch = [try copy("batch-inference.jsonl", as: "quick-batch.jsonl"), try copy("batch-inference.jsonl", as: "slow-batch.jsonl")]
    }
}

// MARK: - A client

/// One client: a seeded random mix of operations over its own connections to the socket,
/// writing down every answer the API gave.
struct LoadClient {
    let index: Int
    var random: SeededGenerator
    let client: SocketClient
    let files: Files
    let book: Book
    var serial = 0
    /// Idempotent requests whose answer was lost: sent again, with the same key and body.
    var retries: [(operation: Book.Operation, path: String, body: Data, key: String, tries: Int)] = []

    init(index: Int, seed: UInt64, socket: String, files: Files, book: Book) {
        self.index = index
        self.random = SeededGenerator(seed: seed)
        self.client = SocketClient(socketPath: socket)
        self.files = files
        self.book = book
    }

    /// What came back: an answer, or none (berthd was down or killed mid-request).
    enum Outcome {
        case answered(Response)
        case unreachable
    }

    mutating func run(until stop: StopSignal) async {
        while !stop.isRaised {
            if !retries.isEmpty, random.chance(0.5) {
                await retry()
            } else {
                await step()
            }
            // A little think time: two cores are shared by the clients, berthd and its runners.
            try? await Task.sleep(for: .milliseconds(Int.random(in: 2...25, using: &random)))
        }
    }

    func send(_ method: String, _ path: String, body: Data? = nil, key: String? = nil) async -> Outcome {
        do {
            return .answered(try await client.send(method: method, path: path, body: body, headers: key.map { [("Idempotency-Key", $0)] } ?? []))
        } catch {
            // Refused, reset or closed: berthd is down or was killed mid-request.
            try? await Task.sleep(for: .milliseconds(30))
            return .unreachable
        }
    }

    mutating func step() async {
        serial += 1
        let (live, jobs) = book.with { state in (state.live, state.jobIDs) }
        let roll = Double.random(in: 0..<1, using: &random)
        switch roll {
        case ..<0.22: await reserve(live: live)
        case ..<0.34: if let name = live.keys.sorted().randomElement(using: &random) { await release(name) }
        case ..<0.58:
            if let chosen = live.sorted(by: { $0.key < $1.key }).randomElement(using: &random) { await submit(to: chosen.key, purpose: chosen.value) }
        case ..<0.68: if let id = jobs.randomElement(using: &random) { await stop(id) }
        case ..<0.93: await invoke(live: live)
        default: await show(live: live)
        }
    }

    // MARK: Operations

    mutating func reserve(live: [String: String]) async {
        let name = "c\(index)-r\(serial)"
        let liveInference = live.values.filter { $0 == "inference" }.count
        let purpose = liveInference < 3 && random.chance(0.35) ? "inference" : "training"
        let model = purpose == "training" && random.chance(0.3) ? CrashUnderLoadTests.llama : CrashUnderLoadTests.nova
        let modelUnits = random.chance(0.8) ? 1 : 2
        var request = CreateReservationRequest(name: name, model: model, modelUnits: modelUnits, purpose: purpose)
        switch Double.random(in: 0..<1, using: &random) {
        case ..<0.55: break
        case ..<0.75: request.duration = "\(Int.random(in: 3...15, using: &random))s"
        case ..<0.9:
            request.start = "+\(Int.random(in: 1...5, using: &random))s"
            request.duration = "\(Int.random(in: 3...10, using: &random))s"
        default:
            request.wait = true
            if random.chance(0.5) { request.duration = "\(Int.random(in: 3...10, using: &random))s" }
        }
        let body = try! Wire.encoder().encode(request)
        let key = random.chance(0.5) ? "key-\(name)" : nil
        book.with { $0.reservationNamesSent.insert(name) }
        await deliver(.reserve, "/v1/reservations", body: body, key: key)
    }

    mutating func release(_ name: String) async {
        switch await send("DELETE", "/v1/reservations/\(name)") {
        case .answered(let response) where (200..<300).contains(response.status):
            book.with { state in
                state.released.insert(name)
                state.live[name] = nil
            }
            book.count(.release, "ok")
        case .answered(let response):
            noteRefusal(.release, response)
            // Expired, failed or released by another client: no longer worth acting on.
            if response.apiError.code == "invalid-state" { book.with { $0.live[name] = nil } }
        case .unreachable:
            book.count(.release, "unanswered")
        }
    }

    mutating func submit(to reservation: String, purpose: String) async {
        let name = "c\(index)-j\(serial)"
        let request: SubmitJobRequest
        if purpose == "training" {
            let data = files.fineTuning[[0, 0, 1, 1, 2].randomElement(using: &random)!]
            request = SubmitJobRequest(
                name: name,
                reservation: reservation,
                kind: "fine-tuning",
                data: data,
                output: "\(files.outputs)/\(name)",
                modelName: "m-\(name)",
                epochs: 1
            )
        } else {
            let data = files.batch[[0, 0, 1].randomElement(using: &random)!]
            request = SubmitJobRequest(name: name, reservation: reservation, kind: "batch-inference", data: data, output: "\(files.outputs)/\(name)")
        }
        let body = try! Wire.encoder().encode(request)
        let key = random.chance(0.5) ? "key-\(name)" : nil
        book.with { $0.jobNamesSent.insert(name) }
        await deliver(.submit, "/v1/jobs", body: body, key: key)
    }

    mutating func stop(_ id: Int64) async {
        switch await send("POST", "/v1/jobs/\(id)/stop") {
        case .answered(let response) where (200..<300).contains(response.status):
            book.with { state in
                state.stopped.insert(id)
                state.jobIDs.removeAll { $0 == id }
            }
            book.count(.stop, "ok")
        case .answered(let response):
            noteRefusal(.stop, response)
            if response.apiError.code == "invalid-state" { book.with { $0.jobIDs.removeAll { $0 == id } } }
        case .unreachable:
            book.count(.stop, "unanswered")
        }
    }

    mutating func invoke(live: [String: String]) async {
        let reservations = live.filter { $0.value == "inference" }.keys.sorted()
        let target = reservations.isEmpty || random.chance(0.25) ? CrashUnderLoadTests.nova : reservations.randomElement(using: &random)!
        let body = try! Wire.encoder().encode(InvokeRequest(target: target, prompt: "what does the ledger keep \(index) \(serial)", maxTokens: 8))
        switch await send("POST", "/v1/invoke", body: body) {
        case .answered(let response) where response.status == 200:
            book.with { $0.served[target, default: 0] += 1 }
            book.count(.invoke, "ok")
        case .answered(let response):
            noteRefusal(.invoke, response)
        case .unreachable:
            book.count(.invoke, "unanswered")
        }
    }

    /// `GET /v1/reservations/NAME` shows the reservation's calls as the ledger has them: a later
    /// ledger may show more, never fewer.
    mutating func show(live: [String: String]) async {
        guard let name = live.keys.sorted().randomElement(using: &random) else { return }
        switch await send("GET", "/v1/reservations/\(name)") {
        case .answered(let response) where response.status == 200:
            book.count(.show, "ok")
            if let view = try? response.decoded(as: ReservationView.self), let served = view.invocations?.served {
                book.with { $0.reported[name] = max($0.reported[name] ?? 0, served) }
            }
        case .answered(let response):
            noteRefusal(.show, response)
        case .unreachable:
            book.count(.show, "unanswered")
        }
    }

    // MARK: Answers

    /// Sends a POST that creates something and writes down the answer; an unanswered one that
    /// carried an Idempotency-Key is sent again later.
    mutating func deliver(_ operation: Book.Operation, _ path: String, body: Data, key: String?, tries: Int = 0) async {
        switch await send("POST", path, body: body, key: key) {
        case .answered(let response) where (200..<300).contains(response.status):
            acknowledge(operation, response, body: body, retried: tries > 0)
        case .answered(let response):
            noteRefusal(operation, response)
            if tries > 0, ["name-taken", "idempotency-key-reused"].contains(response.apiError.code) {
                book.problem("a retry of \(operation) with Idempotency-Key \(key ?? "") and the same body was refused: \(response.apiError)")
            }
            // A job for a reservation that ended: the reservation is no longer worth acting on.
            if operation == .submit, response.apiError.code == "invalid-state",
                let asked = try? Wire.decoder().decode(SubmitJobRequest.self, from: body)
            {
                book.with { $0.live[asked.reservation] = nil }
            }
        case .unreachable:
            book.count(operation, "unanswered")
            if let key, tries < 6 { retries.append((operation, path, body, key, tries + 1)) }
        }
    }

    mutating func retry() async {
        let next = retries.removeFirst()
        await deliver(next.operation, next.path, body: next.body, key: next.key, tries: next.tries)
    }

    func acknowledge(_ operation: Book.Operation, _ response: Response, body: Data, retried: Bool) {
        book.count(operation, retried ? "ok after retry" : "ok")
        if retried { book.count(operation, "ok") }
        switch operation {
        case .reserve:
            let asked = try! Wire.decoder().decode(CreateReservationRequest.self, from: body)
            guard let view = try? response.decoded(as: ReservationView.self) else {
                book.problem("POST /v1/reservations for '\(asked.name)' answered \(response.status) with a body that is not a reservation")
                return
            }
            if view.name != asked.name || view.modelUnits != asked.modelUnits || view.model != asked.model {
                book.problem("POST /v1/reservations for '\(asked.name)' answered with reservation '\(view.name)' (\(view.model), \(view.modelUnits))")
            }
            book.with { state in
                state.reservations[asked.name] = Book.AcknowledgedReservation(
                    name: asked.name,
                    model: asked.model,
                    modelUnits: asked.modelUnits,
                    purpose: asked.purpose ?? "inference",
                    owner: "root"
                )
                if view.status != "failed" { state.live[asked.name] = view.purpose }
            }
        case .submit:
            let asked = try! Wire.decoder().decode(SubmitJobRequest.self, from: body)
            guard let view = try? response.decoded(as: JobView.self) else {
                book.problem("POST /v1/jobs for '\(asked.name)' answered \(response.status) with a body that is not a job")
                return
            }
            if view.name != asked.name || view.reservation != asked.reservation {
                book.problem("POST /v1/jobs for '\(asked.name)' answered with job \(view.id) '\(view.name)' on '\(view.reservation)'")
            }
            book.with { state in
                state.jobs[view.id] = Book.AcknowledgedJob(id: view.id, name: asked.name, reservation: asked.reservation)
                state.jobIDs.append(view.id)
            }
        default:
            break
        }
    }

    /// A refusal is an answer too (capacity, state); a 5xx is not one the API may give.
    func noteRefusal(_ operation: Book.Operation, _ response: Response) {
        let code = response.apiError.code
        book.count(operation, code)
        if response.status >= 500 {
            book.problem("\(operation) answered \(response.status): \(response.apiError)")
        }
    }
}
