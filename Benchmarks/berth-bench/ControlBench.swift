import ArgumentParser
import BerthClient
import BerthConfig
import BerthCore
import BerthStore
import BerthWire
import Foundation
import NIOPosix

/// Control-plane throughput over the socket: reservations made and released, and jobs
/// submitted, per second, with 1, 8 and 64 clients, each on its own keep-alive connection
/// sending one request at a time (as an API client would; `berth` opens one per command).
struct ControlBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Reservations made+released and jobs submitted per second through berthd, at several client counts.",
        discussion: """
            berthd must have at least as many free dedicated units as the most clients (each \
            churning client holds one unit at a time), a model that accepts fine-tuning, and \
            [limits] max_queued_jobs_per_user above the jobs submitted (Benchmarks/run-control-bench.sh \
            writes such a config).
            """
    )

    @Option(help: ArgumentHelp("berthd's control socket.", valueName: "path"))
    var socket: String

    @Option(help: "Client counts to measure, comma-separated.")
    var clients = "1,8,64"

    @Option(help: ArgumentHelp("How long each measured run lasts.", valueName: "seconds"))
    var duration = 5.0

    @Option(
        help: ArgumentHelp(
            "How long each operation runs, with the most clients, before it is measured (a fresh berthd's first second is slower: threads, caches and files grow).",
            valueName: "seconds"
        )
    )
    var warmup = 1.0

    @Option(help: ArgumentHelp("A small fine-tuning dataset every job names (checked at each submission).", valueName: "file"))
    var data: String

    @Option(help: ArgumentHelp("The output folder every job names.", valueName: "folder"))
    var output: String

    @Option(help: "The model the reservations are for.")
    var model = "amazon.nova-micro-v1:0"

    @Option(help: "Operations to measure, comma-separated: health, reserve, submit.")
    var operations = "health,reserve,submit"

    @Flag(help: "Print the figures as one JSON document.")
    var json = false

    var clientCounts: [Int] { clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !clientCounts.isEmpty, clientCounts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--clients: give counts such as 1,8,64") }
        guard duration > 0 else { throw ValidationError("--duration: must be positive") }
        guard warmup >= 0 else { throw ValidationError("--warmup: must be 0 or more") }
    }

    func run() async throws {
        let endpoint = Endpoint.unixSocket(socket)
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let model = self.model
        let data = self.data
        let output = self.output
        var runs: [ControlFigures] = []
        let chosen = Set(operations.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let socket = self.socket
        /// A run's clients stop at its deadline, some between a reserve and its release: those
        /// reservations would hold units through the next run, so they are released first.
        func releaseLeftovers() async {
            let client = SocketClient(socketPath: socket)
            guard let list = try? await client.send(method: "GET", path: "/v1/reservations", body: Data()),
                let names = try? JSONDecoder().decode(Names.self, from: list.body)
            else { return }
            for r in names.reservations where r.name.hasPrefix("churn-") && (r.status == "active" || r.status == "pending") {
                _ = try? await client.send(method: "DELETE", path: "/v1/reservations/\(r.name)", body: Data())
            }
        }
        func measure(_ operation: String, _ template: CallTemplate, perOperation: Int = 1) async {
            guard chosen.contains(String(operation.prefix { $0 != "+" })) else { return }
            if warmup > 0 {
                _ = await LoadRun.run(template, clients: clientCounts.max()!, seconds: warmup, on: eventLoops)
                await releaseLeftovers()
            }
            for count in clientCounts {
                let (tally, seconds) = await LoadRun.run(template, clients: count, seconds: duration, on: eventLoops)
                await releaseLeftovers()
                let figures = RunFigures(name: operation, endpoint: endpoint, tally: tally, seconds: seconds)
                runs.append(
                    ControlFigures(
                        operation: operation,
                        clients: count,
                        done: figures.calls / perOperation,
                        seconds: seconds,
                        perSecond: figures.callsPerSecond / Double(perOperation),
                        p50Ms: figures.p50 ?? 0,
                        p99Ms: figures.p99 ?? 0,
                        failures: figures.failures,
                        firstFailure: figures.firstFailure
                    )
                )
            }
        }
        // The floor: a GET that reads the ledger once and changes nothing.
        await measure("health", .varying(to: endpoint) { _, _ in (.GET, "/v1/health", nil) })
        // A reservation made, then released, on the same connection: two requests per operation.
        await measure(
            "reserve+release",
            .varying(to: endpoint) { connection, call in
                let name = "churn-\(connection)-\(call / 2)"
                if call % 2 == 1 { return (.DELETE, "/v1/reservations/\(name)", nil) }
                return (
                    .POST, "/v1/reservations",
                    Data(
                        """
                        {"name":"\(name)","model":"\(model)","model_units":1,"purpose":"training","duration":"1h"}
                        """.utf8
                    )
                )
            },
            perOperation: 2
        )
        // One training reservation takes every job; its first job runs, the rest queue.
        let reservation = "bench-jobs-\(ProcessInfo.processInfo.processIdentifier)"
        let made = try await SocketClient(socketPath: socket).send(
            method: "POST",
            path: "/v1/reservations",
            body: Data(
                """
                {"name":"\(reservation)","model":"\(model)","model_units":1,"purpose":"training","duration":"1d"}
                """.utf8
            )
        )
        guard made.status == 201 else {
            throw BenchFailure("cannot reserve for the jobs: \(made.status) \(String(decoding: made.body, as: UTF8.self))")
        }
        await measure(
            "submit",
            .varying(to: endpoint) { connection, call in
                (
                    .POST, "/v1/jobs",
                    Data(
                        """
                        {"name":"bench","reservation":"\(reservation)","kind":"fine-tuning","data":"\(data)","output":"\(output)",\
                        "model_name":"bench-\(reservation)-\(connection)-\(call)"}
                        """.utf8
                    )
                )
            }
        )
        try await eventLoops.shutdownGracefully()
        if json {
            print(String(decoding: try Wire.encoder(pretty: true).encode(runs), as: UTF8.self))
        } else {
            print("operation        clients    done    per s   p50 ms   p99 ms  failed")
            for r in runs {
                print(
                    r.operation.padding(toLength: 16, withPad: " ", startingAt: 0)
                        + String(format: " %7d %7d %8.0f %8.2f %8.2f %7d", r.clients, r.done, r.perSecond, r.p50Ms, r.p99Ms, r.failures)
                )
            }
            for r in runs where r.failures > 0 {
                FileHandle.standardError.write(
                    Data("\(r.operation) × \(r.clients): \(r.failures) failed; the first: \(r.firstFailure ?? "?")\n".utf8)
                )
            }
        }
    }
}

/// The reservation list, as far as the cleanup between runs reads it.
struct Names: Decodable {
    struct Entry: Decodable {
        var name: String
        var status: String
    }
    var reservations: [Entry]
}

struct ControlFigures: Encodable {
    var operation: String
    var clients: Int
    var done: Int
    var seconds: Double
    var perSecond: Double
    var p50Ms: Double
    var p99Ms: Double
    var failures: Int
    var firstFailure: String?
}

/// How long a scheduling decision takes as queues grow: a ledger with every unit busy and
/// `jobs` queued jobs spread over the reservations, then (1) the decision itself (snapshot
/// read + plan) and (2) a cycle that starts the next job after one ends (+ apply, committed).
/// For contrast, (3) planning over every queued job, as a scheduler that reads whole queues would.
struct SchedulerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Time scheduling decisions with 1k–100k queued jobs over 100 and 1,000 units."
    )

    @Option(help: "Queued job counts, comma-separated.")
    var jobs = "1000,10000,100000"

    @Option(help: "Dedicated unit counts, comma-separated.")
    var units = "100,1000"

    @Option(help: "Timed runs per case; the figure is their median.")
    var runs = 21

    @Option(help: ArgumentHelp("A folder for the temporary ledgers.", valueName: "folder"))
    var folder = "/tmp/berth-scheduler-bench"

    @Flag(help: "Print the figures as one JSON document.")
    var json = false

    func run() async throws {
        var rows: [SchedulerFigures] = []
        for unitCount in units.split(separator: ",").compactMap({ Int($0) }) {
            for jobCount in jobs.split(separator: ",").compactMap({ Int($0) }) {
                rows.append(try measure(units: unitCount, queued: jobCount))
            }
        }
        if json {
            print(String(decoding: try Wire.encoder(pretty: true).encode(rows), as: UTF8.self))
        } else {
            print("units  queued jobs  reservations  decision ms  cycle ms  whole-queue plan ms")
            for r in rows {
                print(
                    String(
                        format: "%5d  %11d  %12d  %11.3f  %8.3f  %19.3f",
                        r.units,
                        r.queuedJobs,
                        r.reservations,
                        r.decisionMs,
                        r.cycleMs,
                        r.wholeQueuePlanMs
                    )
                )
            }
        }
    }

    private func measure(units unitCount: Int, queued: Int) throws -> SchedulerFigures {
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let ledger = try Ledger(path: "\(folder)/berth.db")
        let start = Date(timeIntervalSince1970: 1_793_491_200)
        let model = Model(
            id: "bench-model",
            provider: "bench",
            inputModalities: [.text],
            outputModalities: [.text],
            maxTokens: 4096,
            onDemand: false,
            customizations: [.fineTuning],
            unitsPerModelUnit: 1,
            tokensPerMinute: 1000,
            price: ModelPrice(modelUnitHour: [.none: 1])
        )
        let unitIDs = (0..<unitCount).map { "u-\($0)" }
        // Every reservation holds 2 units, each busy with a running job; the queued jobs wait.
        let reservations = try ledger.writeNow { tx -> [Int64] in
            try tx.syncCatalog(units: unitIDs.map { ComputeUnit(id: $0, kind: "cpu", pool: .dedicated) }, models: [model], now: start)
            var ids: [Int64] = []
            for i in 0..<(unitCount / 2) {
                let r = try tx.insert(
                    Reservation(
                        id: 0,
                        name: "r\(i)",
                        owner: "user\(i % 16)",
                        model: model.id,
                        purpose: .training,
                        modelUnits: 2,
                        units: 2,
                        commitment: .none,
                        start: start,
                        end: nil,
                        status: .pending,
                        createdAt: start
                    )
                )
                ids.append(r.id)
            }
            try tx.apply(Planner.plan(try tx.snapshot(), now: start))
            return ids
        }
        func job(_ reservation: Int64, _ i: Int) -> JobRecord {
            JobRecord(
                name: "j\(i)",
                owner: "user\(i % 16)",
                kind: .fineTuning,
                reservationId: reservation,
                model: model.id,
                baseModel: model.id,
                priority: i % 4,
                modelUnits: 1,
                unitsNeeded: 1,
                hyperparameters: nil,
                data: "/d.jsonl",
                validationData: nil,
                output: "/o",
                modelName: nil,
                seed: 1,
                submittedAt: start.addingTimeInterval(Double(i) / 1000),
                logPath: "/l",
                callerUid: 0,
                callerGid: 0
            )
        }
        try ledger.writeNow { tx in
            for (n, r) in reservations.enumerated() {
                for k in 0..<2 { _ = try tx.insert(job(r, -(n * 2 + k) - 1)) }
            }
            try tx.apply(Planner.plan(try tx.snapshot(), now: start))  // the running jobs take every unit
            for i in 0..<queued { _ = try tx.insert(job(reservations[i % reservations.count], i)) }
        }
        let now = start.addingTimeInterval(3600)
        // 1. The decision: what is committed, read and planned (nothing fits: every unit is busy).
        let decision = try median(runs) { _ = try ledger.readNow { tx in Planner.plan(try tx.snapshot(), now: now) } }
        // 2. A cycle after a job ends: plan and apply, committed; the queue's head starts.
        var running = try ledger.readNow { try $0.runningJobs().map { $0.id! } }
        let cycle = try median(runs) {
            let finished = running.removeLast()
            try ledger.writeNow { tx in
                try tx.finishJob(finished, status: .completed, reason: nil, exitStatus: 0, at: now)
                let plan = Planner.plan(try tx.snapshot(), now: now)
                try tx.apply(plan)
                for case .startJob(let id, _, _) in plan.steps { running.insert(id, at: 0) }
            }
        }
        // 3. For contrast: every queued job in the snapshot.
        let whole = try ledger.readNow { tx -> Snapshot in
            var snapshot = try tx.snapshot()
            snapshot.jobs = try tx.liveJobs().map(\.job)
            return snapshot
        }
        let wholeQueue = try median(max(3, runs / 4)) { _ = Planner.plan(whole, now: now) }
        try ledger.close()
        return SchedulerFigures(
            units: unitCount,
            queuedJobs: queued,
            reservations: reservations.count,
            decisionMs: decision * 1000,
            cycleMs: cycle * 1000,
            wholeQueuePlanMs: wholeQueue * 1000
        )
    }

    private func median(_ runs: Int, _ body: () throws -> Void) throws -> Double {
        var seconds: [Double] = []
        for _ in 0..<runs {
            let begin = ContinuousClock.now
            try body()
            seconds.append(UsageBench.seconds(ContinuousClock.now - begin))
        }
        return seconds.sorted()[seconds.count / 2]
    }
}

struct SchedulerFigures: Encodable {
    var units: Int
    var queuedJobs: Int
    var reservations: Int
    var decisionMs: Double
    var cycleMs: Double
    var wholeQueuePlanMs: Double
}

/// Builds a ledger with about `rows` rows for the start-up benchmark: finished jobs with their
/// events (three each: submitted, started, completed) on expired reservations, plus live
/// reservations with a queue, using the config's units and a model of it.
struct BigLedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "big-ledger",
        abstract: "Build a ledger of about a million rows for timing berthd's start-up and reconcile."
    )

    @Option(help: ArgumentHelp("The ledger to build (must not exist).", valueName: "file"))
    var ledger: String

    @Option(help: ArgumentHelp("The config whose units and models it uses.", valueName: "file"))
    var config = "config/berthd.toml"

    @Option(help: "About how many rows to write.")
    var rows = 1_000_000

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: ledger) else { throw BenchFailure("\(ledger) exists; remove it or pick another path") }
        let daemonConfig: DaemonConfig
        do { daemonConfig = try DaemonConfig.load(path: config) } catch { throw BenchFailure("\(config): \(error)") }
        guard let model = daemonConfig.models.first(where: { $0.customizations.contains(.fineTuning) && $0.unitsPerModelUnit == 1 }) else {
            throw BenchFailure("\(config) has no fine-tuning model with units_per_model_unit = 1")
        }
        let units = daemonConfig.units.filter { $0.pool == .dedicated }.map(\.id)
        try FileManager.default.createDirectory(atPath: (ledger as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let store = try Ledger(path: ledger)
        let start = Date().addingTimeInterval(-90 * 86_400)
        let finishedJobs = rows / 4  // a job row and three event rows each
        try store.writeNow { tx in
            try tx.syncCatalog(units: daemonConfig.units, models: daemonConfig.models, now: start)
            // Finished history: 1,000 expired one-unit reservations, the jobs spread over them.
            var done: [Int64] = []
            for i in 0..<1000 {
                let unit = units[i % units.count]
                let at = start.addingTimeInterval(Double(i) * 3600)
                let r = try tx.insert(
                    Reservation(
                        id: 0,
                        name: "old-\(i)",
                        owner: "user\(i % 16)",
                        model: model.id,
                        purpose: .training,
                        modelUnits: 1,
                        units: 1,
                        commitment: .none,
                        start: at,
                        end: at.addingTimeInterval(3600),
                        status: .pending,
                        createdAt: at
                    )
                )
                try tx.apply(
                    Plan(steps: [.activate(reservationID: r.id, start: at, end: at.addingTimeInterval(3600), units: [unit], leaseStart: at)])
                )
                try tx.finish(reservationID: r.id, status: .expired, at: at.addingTimeInterval(3600), reason: "reached its end")
                done.append(r.id)
            }
            for i in 0..<finishedJobs {
                let r = done[i % done.count]
                let at = start.addingTimeInterval(Double(i % 1000) * 3600 + Double(i / 1000))
                let job = try tx.insert(
                    JobRecord(
                        name: "old",
                        owner: "user\(i % 16)",
                        kind: .fineTuning,
                        reservationId: r,
                        model: model.id,
                        baseModel: model.id,
                        priority: 0,
                        modelUnits: 1,
                        unitsNeeded: 1,
                        hyperparameters: nil,
                        data: "/d.jsonl",
                        validationData: nil,
                        output: "/o",
                        modelName: nil,
                        seed: 1,
                        submittedAt: at,
                        logPath: "/l",
                        callerUid: 0,
                        callerGid: 0
                    )
                )
                try tx.addJobEvent(job.id!, at: at, kind: "started", detail: "on cpu")
                try tx.finishJob(job.id!, status: .completed, reason: nil, exitStatus: 0, at: at.addingTimeInterval(1))
            }
        }
        try store.close()
        FileHandle.standardError.write(Data("built \(ledger): \(finishedJobs) finished jobs with 3 events each, 1,000 expired reservations\n".utf8))
    }
}
