import ArgumentParser
import BerthClient
import BerthConfig
import BerthCore
import BerthNGram
import BerthStore
import BerthWire
import Foundation

/// How fast a usage report over a month answers on a ledger with millions of calls: builds
/// such a ledger once (reservations, leases, jobs and calls for October 2026, written through
/// the same `record` path the daemon's meter uses), then times the report in-process (ledger
/// read + computation) and, with `--socket`, through a running berthd (`GET /v1/usage`).
struct UsageBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Time usage reports over a month on a ledger with millions of invocation records."
    )

    @Option(help: ArgumentHelp("The ledger to report on; built first if the file does not exist.", valueName: "file"))
    var ledger = "/tmp/berth-usage-bench/berth.db"

    @Option(help: ArgumentHelp("The config whose units and models the built ledger uses.", valueName: "file"))
    var config = "config/berthd.toml"

    @Option(help: "Invocation records to build the ledger with.")
    var calls = 10_000_000

    @Option(help: "Timed runs per grouping; the figures are their median and maximum.")
    var runs = 5

    @Option(help: ArgumentHelp("Time GET /v1/usage through the berthd on this socket instead of in-process.", valueName: "path"))
    var socket: String?

    @Flag(help: "Print the figures as one JSON document.")
    var json = false

    func validate() throws {
        guard calls >= 1 else { throw ValidationError("--calls: must be at least 1") }
        guard runs >= 1 else { throw ValidationError("--runs: must be at least 1") }
    }

    /// October 2026, UTC.
    static let month = (start: Date(timeIntervalSince1970: 1_790_812_800), end: Date(timeIntervalSince1970: 1_793_491_200))

    func run() async throws {
        if !FileManager.default.fileExists(atPath: ledger) {
            guard socket == nil else { throw BenchFailure("no ledger at \(ledger): build it first (run without --socket)") }
            try build()
        }
        let size = ((try? FileManager.default.attributesOfItem(atPath: ledger))?[.size] as? Int) ?? 0
        var figures: [UsageFigures] = []
        for grouping in UsageGrouping.allCases {
            var seconds: [Double] = []
            var rows = 0
            for _ in 0..<runs {
                let started = ContinuousClock.now
                rows = try await report(grouping)
                seconds.append(Self.seconds(ContinuousClock.now - started))
            }
            seconds.sort()
            figures.append(UsageFigures(by: grouping.rawValue, rows: rows, medianMs: seconds[seconds.count / 2] * 1000, maxMs: seconds.last! * 1000))
        }
        let scan = socket == nil ? try rawScanSeconds() : nil
        let records = try Ledger(path: ledger).readNow { try $0.invocationCounts(reservationID: nil).calls }
        let document = UsageDocument(
            ledger: ledger,
            ledgerBytes: size,
            invocations: records,
            window: "2026-10-01T00:00:00Z/2026-11-01T00:00:00Z",
            path: socket == nil ? "in-process" : "through berthd",
            runs: runs,
            reports: figures,
            rawScanMs: scan.map { $0 * 1000 }
        )
        if json {
            print(String(decoding: try Wire.encoder(pretty: true).encode(document), as: UTF8.self))
        } else {
            print("usage report over October 2026, \(records) invocation records, ledger \(size / 1_048_576) MiB, \(document.path):")
            for f in figures {
                print(
                    "  by \(f.by.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%7.1f", f.medianMs)) ms median, \(String(format: "%7.1f", f.maxMs)) ms max (\(f.rows) rows)"
                )
            }
            if let scan { print("  for scale: one SUM over the month's raw invocation rows takes \(String(format: "%.0f", scan * 1000)) ms") }
        }
    }

    private func report(_ grouping: UsageGrouping) async throws -> Int {
        if let socket {
            let path = "/v1/usage?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&by=\(grouping.rawValue)"
            let response = try await SocketClient(socketPath: socket).send(method: "GET", path: path, body: nil)
            guard response.status == 200 else {
                throw BenchFailure("GET \(path): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
            }
            return try response.decoded(as: UsageReportView.self).rows.count
        }
        let query = UsageQuery(from: Self.month.start, to: Self.month.end, now: Date(), grouping: grouping, idleThreshold: 86_400, buckets: 24)
        let store = try Ledger(path: ledger)
        defer { try? store.close() }
        let facts = try await store.read { tx in try tx.usageFacts(query, owner: nil) }
        return UsageReport.compute(facts, query).rows.count
    }

    /// What the report would cost without rollups: one aggregate over every raw row of the month.
    private func rawScanSeconds() throws -> Double {
        let store = try Ledger(path: ledger)
        defer { try? store.close() }
        let started = ContinuousClock.now
        _ = try store.readNow { try $0.invocationCounts(reservationID: nil) }
        return Self.seconds(ContinuousClock.now - started)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: - Building the ledger

    /// Six inference reservations (one unit each, one-month term) and two training ones with a
    /// four-hour job every eight hours, all of October; `calls` calls spread evenly over the
    /// month, four in five through the inference reservations, the rest on demand.
    private func build() throws {
        let daemonConfig: DaemonConfig
        do { daemonConfig = try DaemonConfig.load(path: config) } catch { throw BenchFailure("\(config): \(error)") }
        guard let model = daemonConfig.models.first(where: { $0.unitsPerModelUnit == 1 && $0.onDemand }) else {
            throw BenchFailure("\(config) has no on-demand model with units_per_model_unit = 1 to build reservations on")
        }
        let units = daemonConfig.units.filter { $0.pool == .dedicated }.map(\.id)
        guard units.count >= 8 else { throw BenchFailure("\(config) needs at least 8 dedicated units; it has \(units.count)") }
        try FileManager.default.createDirectory(atPath: (ledger as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let store = try Ledger(path: ledger)
        let (start, end) = Self.month
        let owners = ["alice", "bob", "carol", "dave"]
        let onDemandModels = daemonConfig.models.filter(\.onDemand).map(\.id)
        FileHandle.standardError.write(Data("building \(ledger): \(calls) calls over October 2026\n".utf8))
        let inference = try store.writeNow { tx -> [(id: Int64, owner: String)] in
            try tx.syncCatalog(units: daemonConfig.units, models: daemonConfig.models, now: start.addingTimeInterval(-86_400))
            var made: [(Int64, String)] = []
            for i in 0..<8 {
                let purpose: Purpose = i < 6 ? .inference : .training
                let r = try tx.insert(
                    Reservation(
                        id: 0,
                        name: "\(purpose == .inference ? "serve" : "train")-\(i)",
                        owner: owners[i % owners.count],
                        model: model.id,
                        purpose: purpose,
                        modelUnits: 1,
                        units: 1,
                        commitment: purpose == .inference ? .oneMonth : .none,
                        start: start,
                        end: end,
                        status: .pending,
                        createdAt: start
                    )
                )
                try tx.apply(Plan(steps: [.activate(reservationID: r.id, start: start, end: end, units: [units[i]], leaseStart: start)]))
                if purpose == .training {
                    var at = start
                    while at.addingTimeInterval(4 * 3600) <= end {
                        let job = try tx.insert(
                            JobRecord(
                                name: "tune",
                                owner: r.owner,
                                kind: .fineTuning,
                                reservationId: r.id,
                                model: model.id,
                                baseModel: model.id,
                                priority: 0,
                                modelUnits: 1,
                                unitsNeeded: 1,
                                hyperparameters: nil,
                                data: "/data.jsonl",
                                validationData: nil,
                                output: "/out",
                                modelName: nil,
                                seed: 1,
                                submittedAt: at,
                                logPath: "/log",
                                callerUid: 0,
                                callerGid: 0
                            )
                        )
                        try tx.apply(Plan(steps: [.startJob(jobID: job.id!, units: [units[i]], at: at)]))
                        try tx.finishJob(job.id!, status: .completed, reason: nil, exitStatus: 0, at: at.addingTimeInterval(4 * 3600))
                        at = at.addingTimeInterval(8 * 3600)
                    }
                } else {
                    made.append((r.id, r.owner))
                }
                try tx.finish(reservationID: r.id, status: .expired, at: end, reason: "reached its end")
            }
            return made
        }
        // Seeded (the n-gram model's generator): the same command builds the same ledger.
        var random = SplitMix64(seed: 42)
        let step = end.timeIntervalSince(start) / Double(calls)
        let batchSize = 100_000
        var written = 0
        let started = ContinuousClock.now
        while written < calls {
            let count = min(batchSize, calls - written)
            var batch: [InvocationRecord] = []
            batch.reserveCapacity(count)
            for i in written..<(written + count) {
                let at = start.addingTimeInterval((Double(i) + random.nextUnit()) * step)
                // Latencies of a few milliseconds, with a tail: one call in a hundred is slow.
                let latency = random.nextUnit() < 0.01 ? 20 + random.nextUnit() * 180 : 0.8 - log(1 - random.nextUnit()) * 3
                let input = 20 + Int(random.next() % 200)
                let output = 10 + Int(random.next() % 300)
                if random.nextUnit() < 0.8 {
                    let r = inference[Int(random.next() % UInt64(inference.count))]
                    let throttled = random.nextUnit() < 0.02
                    batch.append(
                        InvocationRecord(
                            at: at,
                            owner: r.owner,
                            target: "",
                            reservationID: r.id,
                            model: model.id,
                            tier: throttled ? nil : .provisioned,
                            outcome: throttled ? .throttled : .served,
                            inputTokens: throttled ? 0 : input,
                            outputTokens: throttled ? 0 : output,
                            latencyMs: throttled ? 0 : latency,
                            cost: 0,
                            budgetPerMinute: model.tokensPerMinute
                        )
                    )
                } else {
                    let target = onDemandModels[Int(random.next() % UInt64(onDemandModels.count))]
                    batch.append(
                        InvocationRecord(
                            at: at,
                            owner: owners[Int(random.next() % UInt64(owners.count))],
                            target: target,
                            reservationID: nil,
                            model: target,
                            tier: .onDemand,
                            outcome: .served,
                            inputTokens: input,
                            outputTokens: output,
                            latencyMs: latency,
                            cost: Double(input + output) / 1000 * 0.0002,
                            budgetPerMinute: 0
                        )
                    )
                }
            }
            try store.writeNow { tx in
                try tx.record(batch)
                // As berthd's meter does in the background.
                while try tx.rollUpRecorded() > 0 {}
            }
            written += count
            if written % 1_000_000 == 0 || written == calls {
                FileHandle.standardError.write(
                    Data("  \(written) calls written (\(String(format: "%.0f", Self.seconds(ContinuousClock.now - started))) s)\n".utf8)
                )
            }
        }
        try store.close()
    }
}

struct UsageFigures: Encodable {
    var by: String
    var rows: Int
    var medianMs: Double
    var maxMs: Double
}

struct UsageDocument: Encodable {
    var ledger: String
    var ledgerBytes: Int
    var invocations: Int
    var window: String
    var path: String
    var runs: Int
    var reports: [UsageFigures]
    var rawScanMs: Double?
}
