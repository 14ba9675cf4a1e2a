import BerthCore
import BerthStore
import BerthTestSupport
import Foundation
import Testing

private let t = Fixtures.t

@Suite("Ledger")
struct LedgerTests {
    @Test("migrations build the schema from an empty file, in WAL mode with synchronous FULL")
    func migratesFromEmpty() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        #expect(try ledger.pragma("journal_mode") == "wal")
        #expect(try ledger.pragma("synchronous") == "2")  // FULL
        #expect(try ledger.readNow { try $0.integrityCheck() } == "ok")
        try ledger.close()
        // Opening again runs no migration twice and keeps what was there.
        let again = try Ledger(path: dir.file("berth.db"))
        #expect(try again.readNow { try $0.units().count } == 5)
        try again.close()
    }

    @Test("units, models and reservations round-trip")
    func roundTrips() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        #expect(try ledger.readNow { try $0.model(id: Fixtures.textModel.id) } == Fixtures.textModel)
        #expect(try ledger.readNow { try $0.units().map(\.id) } == ["cpu-0", "cpu-1", "cpu-2", "cpu-3", "shared-0"])
        var reservation = Fixtures.reservation(0, units: 2, start: t(1), end: t(3), commitment: .oneMonth)
        reservation.spillover = true
        // Every column the row is written with by hand, set to something other than its default.
        reservation.duration = 7200
        reservation.waiting = true
        reservation.statusReason = "waiting for 2 free dedicated units"
        reservation.executor = "slurm"
        reservation.pinnedUnits = ["cpu-2", "cpu-3"]
        reservation.endedAt = t(2)
        let inserted = try ledger.writeNow { try $0.insert(reservation) }
        #expect(inserted.id > 0)
        var expected = reservation
        expected.id = inserted.id
        #expect(try ledger.readNow { try $0.reservation(id: inserted.id) } == expected)
        #expect(try ledger.readNow { try $0.reservation(named: "r0") } == expected)
    }

    @Test("a read after a model changed sees the change, not what an earlier read kept; a rolled-back change is not seen")
    func modelReadsFollowChanges() async throws {
        struct Undo: Error {}
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let units = [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)]
        #expect(try ledger.readNow { try $0.model(id: Fixtures.textModel.id) }?.tokensPerMinute == Fixtures.textModel.tokensPerMinute)
        var faster = Fixtures.textModel
        faster.tokensPerMinute *= 2
        try ledger.writeNow { try $0.syncCatalog(units: units, models: [faster], now: t(1)) }
        #expect(try ledger.readNow { try $0.model(id: faster.id) } == faster)
        let expected = faster
        #expect(try await ledger.read { try $0.model(id: expected.id) } == expected)
        // A change that rolls back, read inside its own transaction first.
        var slower = faster
        slower.tokensPerMinute = 1
        #expect(throws: Undo.self) {
            try ledger.writeNow { tx in
                try tx.syncCatalog(units: units, models: [slower], now: t(2))
                #expect(try tx.model(id: slower.id) == slower)
                throw Undo()
            }
        }
        #expect(try ledger.readNow { try $0.model(id: faster.id) } == faster)
    }

    @Test("a reservation read by name after it changed shows the change, not what an earlier read kept")
    func reservationReadsFollowChanges() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let made = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 1, start: t(0), end: nil)) }
        #expect(try ledger.readNow { try $0.reservation(named: "r0") }?.status == .pending)
        try ledger.writeNow { tx in try tx.apply(Planner.plan(try tx.snapshot(), now: t(1))) }
        #expect(try ledger.readNow { try $0.reservation(named: "r0") }?.status == .active)
        try ledger.writeNow { try $0.finish(reservationID: made.id, status: .deleted, at: t(2), reason: "released") }
        #expect(try await ledger.read { try $0.reservation(named: "r0") }?.status == .deleted)
        // A new one of the same name is the one a name means now.
        let again = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 1, start: t(3), end: nil)) }
        #expect(try ledger.readNow { try $0.reservation(named: "r0") }?.id == again.id)
    }

    @Test("a write left unsynced (call records) commits, and the writer is back to synchronous FULL after it, even when it fails")
    func unsyncedWriteRestoresFull() async throws {
        struct Refused: Error {}
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let call = Fixtures.onDemandCall(at: t(1))
        try await ledger.writeUnsynced { tx in try tx.record([call, call]) }
        #expect(try ledger.pragma("synchronous") == "2")
        await #expect(throws: Refused.self) { try await ledger.writeUnsynced { _ in throw Refused() } }
        #expect(try ledger.pragma("synchronous") == "2")
        #expect(try ledger.readNow { try $0.invocationCounts(reservationID: nil) }.served == 2)
    }

    @Test("committed changes count the writes that changed rows: not reads, nor writes that changed nothing or rolled back")
    func committedChangesCount() async throws {
        struct Refused: Error {}
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let before = ledger.committedChanges
        _ = try ledger.readNow { try $0.units() }
        _ = try await ledger.read { try $0.units() }
        try ledger.writeNow { _ in }
        #expect(throws: Refused.self) {
            try ledger.writeNow { tx in
                _ = try tx.insert(Fixtures.reservation(0, units: 1, start: t(0), end: t(1)))
                throw Refused()
            }
        }
        #expect(ledger.committedChanges == before)
        _ = try ledger.writeNow { try $0.insert(Fixtures.reservation(1, units: 1, start: t(0), end: t(1))) }
        _ = try await ledger.write { try $0.insert(Fixtures.reservation(2, units: 1, start: t(0), end: t(1))) }
        _ = try await ledger.writeUnsynced { try $0.insert(Fixtures.reservation(3, units: 1, start: t(0), end: t(1))) }
        #expect(ledger.committedChanges == before + 3)
    }

    @Test("checkpoints run from their own connection: commits leave them to it, and it copies the whole log")
    func checkpointsBesideWrites() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        #expect(try ledger.pragma("wal_autocheckpoint") == "10000")
        for i in 0..<50 {
            _ = try ledger.writeNow { try $0.insert(Fixtures.reservation(Int64(i), units: 1, start: t(Double(i)), end: t(Double(i) + 1))) }
        }
        let done = try await ledger.checkpoint()
        #expect(done.logFrames > 0)
        #expect(done.copied == done.logFrames)
        #expect(try ledger.readNow { try $0.reservation(named: "r49") } != nil)
        #expect(try ledger.pragma("synchronous") == "2")
    }

    @Test("a job round-trips with its hyperparameters and units")
    func jobRoundTrips() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let reservation = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 2, start: t(0), end: nil)) }
        var job = JobRecord(
            name: "tune",
            owner: "alice",
            kind: .fineTuning,
            reservationId: reservation.id,
            model: Fixtures.textModel.id,
            baseModel: Fixtures.textModel.id,
            priority: 3,
            modelUnits: 1,
            unitsNeeded: 2,
            hyperparameters: HyperparameterValues(epochs: 2, batchSize: 8, learningRate: 0.00001, warmupSteps: 1),
            data: "/d/train.jsonl",
            validationData: "/d/val.jsonl",
            output: "/o",
            modelName: "mine",
            seed: 7,
            submittedAt: t(0.5),
            logPath: "/l/1.log",
            callerUid: 1000,
            callerGid: 100
        )
        let inserted = try ledger.writeNow { try $0.insert(job) }
        job.id = inserted.id
        #expect(try ledger.readNow { try $0.job(id: job.id!) } == job)
        #expect(try ledger.readNow { try $0.jobEvents(job.id!) }.map(\.detail) == ["queued on reservation r0"])
        try ledger.writeNow { tx in try tx.apply(Planner.plan(try tx.snapshot(), now: t(1))) }
        let started = try #require(try ledger.readNow { try $0.job(id: job.id!) })
        #expect(started.status == .running && started.units.count == 2 && started.startedAt == t(1))
        #expect(try ledger.readNow { try $0.placement(jobID: job.id!) }.map { [$0.status.rawValue] + $0.units } == ["running"] + started.units)
    }

    @Test("a config that drops a unit or a model retires it instead of deleting it")
    func retiresUnits() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        try ledger.writeNow {
            try $0.syncCatalog(units: [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)], models: [Fixtures.textModel], now: t(1))
        }
        #expect(try ledger.readNow { try $0.units().map(\.id) } == ["cpu-0"])
        #expect(try ledger.readNow { try $0.snapshot().dedicatedUnits } == ["cpu-0"])
        try ledger.writeNow { try $0.syncCatalog(units: [ComputeUnit(id: "cpu-0", kind: "cpu", pool: .dedicated)], models: [], now: t(2)) }
        #expect(try ledger.readNow { try $0.model(id: Fixtures.textModel.id) } == nil)
        #expect(try ledger.readNow { try $0.models() }.isEmpty)
    }

    @Test("a plan is applied whole: activation and its leases commit together")
    func planAppliesWhole() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let r = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 2, start: t(0), end: t(2))) }
        let plan = try ledger.writeNow { tx in
            let plan = Planner.plan(try tx.snapshot(), now: t(0))
            try tx.apply(plan)
            return plan
        }
        #expect(plan.steps.count == 1)
        let (status, leases) = try ledger.readNow { tx in (try tx.reservation(id: r.id)?.status, try tx.leases(reservationID: r.id)) }
        #expect(status == .active)
        #expect(leases.map(\.unit) == ["cpu-0", "cpu-1"])
        #expect(leases.allSatisfy { $0.start == t(0) && $0.end == t(2) })
    }

    @Test("a lease write and its reservation's status change are one transaction: a failing lease leaves the reservation pending")
    func leaseAndStatusAreOneTransaction() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let r = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 2, start: t(0), end: nil)) }
        // The second lease names a unit the ledger does not have: the foreign key refuses it
        // after the status change and the first lease were already written.
        let bad = Plan(steps: [.activate(reservationID: r.id, start: t(0), end: nil, units: ["cpu-0", "no-such-unit"], leaseStart: t(0))])
        #expect(throws: (any Error).self) {
            try ledger.writeNow { tx in try tx.apply(bad) }
        }
        let (status, leases) = try ledger.readNow { tx in (try tx.reservation(id: r.id)?.status, try tx.leases(reservationID: r.id)) }
        #expect(status == .pending)
        #expect(leases.isEmpty)
    }

    @Test("the ledger itself refuses a unit held by two leases at once")
    func uniqueHeldUnit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let a = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 1, start: t(0), end: nil)) }
        let b = try ledger.writeNow { try $0.insert(Fixtures.reservation(1, units: 1, start: t(0), end: nil)) }
        try ledger.writeNow { try $0.apply(Plan(steps: [.activate(reservationID: a.id, start: t(0), end: nil, units: ["cpu-0"], leaseStart: t(0))])) }
        #expect(throws: (any Error).self) {
            try ledger.writeNow {
                try $0.apply(Plan(steps: [.activate(reservationID: b.id, start: t(0), end: nil, units: ["cpu-0"], leaseStart: t(0))]))
            }
        }
    }

    @Test("finishing a reservation closes its held leases at that time")
    func finishClosesLeases() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let r = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 2, start: t(0), end: t(10))) }
        try ledger.writeNow { tx in try tx.apply(Planner.plan(try tx.snapshot(), now: t(0))) }
        try ledger.writeNow { try $0.finish(reservationID: r.id, status: .deleted, at: t(3)) }
        let (status, leases, held) = try ledger.readNow { tx in
            (try tx.reservation(id: r.id)?.status, try tx.leases(reservationID: r.id), try tx.heldLeases())
        }
        #expect(status == .deleted)
        #expect(leases.allSatisfy { $0.end == t(3) })
        #expect(held.isEmpty)
        #expect(try ledger.readNow { try $0.snapshot().unitFreeSince["cpu-0"] } == t(3))
    }

    @Test("an idempotent answer is stored once per owner and key")
    func idempotency() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let answer = IdempotentAnswer(route: "POST /v1/reservations", request: Data("{}".utf8), status: 201, response: Data("{\"a\":1}".utf8))
        try ledger.writeNow { try $0.recordIdempotentAnswer(owner: "alice", key: "k1", answer: answer, now: t(0)) }
        #expect(try ledger.readNow { try $0.idempotentAnswer(owner: "alice", key: "k1") } == answer)
        #expect(try ledger.readNow { try $0.idempotentAnswer(owner: "bob", key: "k1") } == nil)
        #expect(throws: (any Error).self) {
            try ledger.writeNow { try $0.recordIdempotentAnswer(owner: "alice", key: "k1", answer: answer, now: t(1)) }
        }
    }

    @Test("a secret is made once, 32 random bytes, and is the same after the ledger is opened again; each name has its own")
    func secrets() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var ledger: Ledger? = try Fixtures.openLedger(in: dir)
        let serve = try ledger!.writeNow { try $0.secret(named: "serve") }
        #expect(serve.count == 32)
        #expect(try ledger!.writeNow { try $0.secret(named: "serve") } == serve)
        #expect(try ledger!.writeNow { try $0.secret(named: "other") } != serve)
        try ledger!.close()
        ledger = try Ledger(path: dir.file("berth.db"))
        #expect(try ledger!.writeNow { try $0.secret(named: "serve") } == serve)
    }

    @Test("calls are recorded in one batch and rolled up per reservation per minute: served tokens, calls, throttles")
    func invocationRollup() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ledger = try Fixtures.openLedger(in: dir)
        let r = try ledger.writeNow { try $0.insert(Fixtures.reservation(0, units: 1, start: t(0), end: nil)) }
        func call(_ seconds: Double, _ outcome: CallOutcome, tier: ServiceTier? = .provisioned, input: Int = 10, output: Int = 20) -> InvocationRecord
        {
            InvocationRecord(
                at: t(0).addingTimeInterval(seconds),
                owner: "alice",
                target: "r0",
                reservationID: r.id,
                model: "m",
                tier: tier,
                outcome: outcome,
                inputTokens: input,
                outputTokens: output,
                latencyMs: 1,
                cost: 0,
                budgetPerMinute: 600
            )
        }
        try ledger.writeNow { tx in
            try tx.record([
                call(5, .served), call(30, .served), call(50, .throttled, tier: nil, input: 0, output: 0),
                call(59, .served, tier: .onDemand), call(65, .served),
            ])
        }
        let minutes = try ledger.readNow { try $0.utilization(reservationID: r.id) }
        // Spilled-over calls are not the reservation's own: they do not count against its budget.
        #expect(minutes.map(\.minute) == [t(0), t(0).addingTimeInterval(60)])
        #expect(minutes.map(\.tokens) == [60, 30])
        #expect(minutes.allSatisfy { $0.budget == 600 })
        let counts = try ledger.readNow { try $0.invocationCounts(reservationID: r.id) }
        #expect(counts == InvocationCounts(calls: 5, served: 4, throttled: 1, inputTokens: 40, outputTokens: 80))
    }
}
