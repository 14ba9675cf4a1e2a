import BerthCore
import BerthDataset
import BerthStore
import BerthWire
import Foundation
import Hummingbird
import NIOCore
import NIOPosix

/// `/v1/jobs`: submit, list, show, stop, and a job's events and log.
struct JobsController: Sendable {
    let ledger: Ledger
    let commits: CommitGroup
    /// The limits a submission is held to, and where job logs go.
    let settings: JobSettings
    let clock: @Sendable () -> Date
    /// Tells the services that follow the ledger to look again.
    let changed: @Sendable () -> Void

    var now: Date { clock() }

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("jobs") { request, context in try await submit(request, context) }
        group.get("jobs") { request, context in try await list(request, context) }
        group.get("jobs/:id") { _, context in try await show(context) }
        group.post("jobs/:id/stop") { _, context in try await stop(context) }
        group.get("jobs/:id/events") { _, context in try await events(context) }
        group.get("jobs/:id/log") { request, context in try await showLog(request, context) }
    }

    func submit(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let body = try await Requests.body(request, context: context)
        let input = try Requests.decode(SubmitJobRequest.self, from: body)
        let now = self.now

        // 1. The request's own fields.
        try checkName(input.name)
        let kind = try enumField(JobKind.self, input.kind, field: "kind")
        let priority = input.priority ?? 0
        try refuse(SubmissionRules.priorityProblem(priority))
        if let units = input.modelUnits { try checkModelUnits(units) }
        let given: Set<String> = Set(
            [
                ("model_name", input.modelName != nil), ("epochs", input.epochs != nil), ("batch_size", input.batchSize != nil),
                ("learning_rate", input.learningRate != nil), ("warmup_steps", input.warmupSteps != nil),
                ("validation_data", input.validationData != nil),
            ].filter(\.1).map(\.0)
        )
        try refuse(SubmissionRules.fieldProblem(kind: kind, given: given))
        if let name = input.modelName { try refuse(SubmissionRules.modelNameProblem(name)) }

        // 2. The reservation and its model decide what the job may be.
        //    What the ledger last committed, from memory if a read put it there; the write
        //    below checks the reservation again.
        let (reservation, model) =
            try ledger.committedReservation(named: input.reservation)
            ?? ledger.readNow { tx in
                let r = try tx.visibleReservation(input.reservation, caller: caller)
                guard let model = try tx.model(id: r.model) else {
                    throw APIError(.invalidState, "reservation '\(r.name)' is for \(r.model), which is no longer in the catalog")
                }
                return (r, model)
            }
        try caller.checkCanSee(reservation)
        guard !reservation.status.isTerminal else {
            throw APIError(
                .invalidState,
                "reservation '\(reservation.name)' is \(reservation.status.rawValue); submit to a pending or active reservation"
            )
        }
        guard reservation.owner == caller.user else {
            throw APIError(.forbidden, "reservation '\(reservation.name)' belongs to \(reservation.owner); jobs run only on your own reservations")
        }
        guard reservation.purpose == kind.purpose else {
            throw APIError.invalid(
                field: "reservation",
                "'\(reservation.name)' is a \(reservation.purpose.rawValue) reservation; a \(kind.rawValue) job needs a \(kind.purpose.rawValue) reservation"
            )
        }
        if let customization = kind.customization {
            guard !model.isCustom else {
                throw APIError.invalid(
                    field: "reservation",
                    "'\(reservation.name)' is for the custom model \(model.id); customization jobs run on a reservation of its base model"
                )
            }
            guard model.customizations.contains(customization) else {
                throw APIError.invalid(
                    field: "kind",
                    "\(model.id) does not accept \(kind.rawValue); it accepts \(model.customizations.isEmpty ? "no customization" : model.customizations.map(\.rawValue).joined(separator: ", "))"
                )
            }
        }
        let modelUnits = input.modelUnits ?? reservation.modelUnits
        guard modelUnits <= reservation.modelUnits else {
            throw APIError.invalid(
                field: "model_units",
                "\(modelUnits) is more than the \(reservation.modelUnits) model units of '\(reservation.name)'"
            )
        }
        var hyperparameters: HyperparameterValues?
        if kind != .batchInference {
            switch SubmissionRules.hyperparameters(
                epochs: input.epochs,
                batchSize: input.batchSize,
                learningRate: input.learningRate,
                warmupSteps: input.warmupSteps,
                model: model
            ) {
            case .success(let values): hyperparameters = values
            case .failure(let problems): throw APIError(.invalidArgument, problems.description)
            }
        }

        let chosen = hyperparameters

        // 3. The files, as the caller could see them; the data is read and checked now, so a
        //    bad dataset fails here and not hours into training.
        //    Reading and checking a large dataset blocks for as long as the file is large: it
        //    runs on NIO's pool of threads for blocking work, never on the cooperative pool
        //    every request shares. A small one (most) is checked in place: the hop to the pool
        //    and back would cost more than the check.
        let access = FileAccess(uid: caller.uid, groups: caller.groups)
        let data = try access.readableFile(input.data, field: "data")
        let validation = try input.validationData.map { try access.readableFile($0, field: "validation_data") }
        let check = { @Sendable [self] in
            try checkDataset(data, field: "data", kind: kind, model: model)
            if let validation { try checkDataset(validation, field: "validation_data", kind: kind, model: model) }
        }
        if ([data] + (validation.map { [$0] } ?? [])).reduce(0, { $0 + Self.size(of: $1) }) <= Self.checkedInPlace {
            try check()
        } else {
            try await NIOThreadPool.singleton.runIfActive(check)
        }
        let output = try access.writableFolder(input.output, field: "output")

        // 4. Queue it, and start it now if its reservation has the units.
        let settings = self.settings
        let response = try await commits.respond(to: request, caller: caller, body: body, route: "POST /v1/jobs") { tx in
            guard let live = try tx.reservationState(id: reservation.id), !live.status.isTerminal else {
                throw APIError(.invalidState, "reservation '\(reservation.name)' ended meanwhile")
            }
            if let name = input.modelName, try tx.modelIDTaken(name) || tx.customModelNamePending(name) {
                throw APIError(.nameTaken, "a model named '\(name)' exists or is being made; choose another --model-name")
            }
            var record = try tx.insert(
                JobRecord(
                    name: input.name,
                    owner: caller.user,
                    kind: kind,
                    reservationId: reservation.id,
                    model: model.id,
                    baseModel: model.family,
                    priority: priority,
                    modelUnits: modelUnits,
                    unitsNeeded: modelUnits * model.unitsPerModelUnit,
                    hyperparameters: chosen,
                    data: data,
                    validationData: validation,
                    output: output,
                    modelName: input.modelName,
                    seed: 42,
                    submittedAt: now,
                    logPath: "",
                    callerUid: caller.uid,
                    callerGid: caller.gid
                ),
                reservationName: live.name
            )
            record.logPath = settings.logPath(jobID: record.id!)
            try tx.setJobLogPath(record.id!, record.logPath)
            // Counted in this transaction (group-committed submissions run one after another
            // in it), so concurrent submissions cannot overshoot; throwing rolls the insert back.
            // The new job counts as queued: the scheduler runs for the batch afterwards.
            let cap = settings.limits.maxQueuedJobsPerUser
            if try tx.queuedJobCount(owner: caller.user) > cap {
                throw APIError(
                    .tooManyQueuedJobs,
                    """
                    you already have \(cap) jobs queued, the most one user may ([limits] max_queued_jobs_per_user); \
                    wait for some to start, or stop queued ones with berth stop ID (berth jobs lists them)
                    """
                )
            }
            // The scheduler runs before the answer is rendered: a job that fits is answered running.
            let submitted = record
            return Change(status: 201) { tx in
                var job = submitted
                if let placed = try tx.placement(jobID: submitted.id!) {
                    job.status = placed.status
                    job.units = placed.units
                    job.startedAt = placed.startedAt
                }
                // No metrics yet: a job's runner starts only after this batch commits.
                return Self.jobView(job, reservationName: live.name, metrics: [])
            }
        }
        context.logger.info("job submitted", metadata: ["job_name": "\(input.name)", "kind": "\(kind.rawValue)", "owner": "\(caller.user)"])
        return response
    }

    /// Datasets up to this many bytes, data and validation together, are checked on the
    /// request's own thread.
    static let checkedInPlace = 4 << 20

    /// The size of a file `FileAccess` has just let the caller read (0 if it is gone).
    static func size(of path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    func checkDataset(_ path: String, field: String, kind: JobKind, model: Model) throws {
        let contents: Data
        switch FileAccess.contents(path, limit: settings.limits.maxDataFileBytes) {
        case .data(let data):
            contents = data
        case .tooLarge(let bytes):
            throw APIError.invalid(
                field: field,
                "\(path) is \(bytes) bytes, over the config's limit of \(settings.limits.maxDataFileBytes); split the dataset"
            )
        case .unreadable:
            throw APIError.invalid(field: field, "\(path): cannot read it")
        }
        switch DatasetCheck.check(contents, kind: kind, maxTokens: model.maxTokens, maxRecords: settings.limits.maxDataRecords) {
        case .success:
            return
        case .failure(let bad):
            throw APIError.invalid(field: field, "\(path): " + bad.problems.map(\.description).joined(separator: "; "))
        }
    }

    /// `GET /v1/jobs?status=&reservation=&owner=&kind=&since=&limit=&cursor=&fields=&shape=`: a
    /// page of the jobs the filters let through, newest first (`ListingQuery`), each with only
    /// the `fields` named when they are, as objects or as rows.
    func list(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let query = try ListingQuery(
            request.uri.queryParameters,
            path: "/v1/jobs",
            what: "jobs",
            filters: ["status", "reservation", "kind"],
            caller: caller,
            now: now
        )
        let reservation = query.text("reservation")
        if let reservation {
            do {
                try ReservationName.validate(reservation, field: "reservation")
            } catch {
                throw APIError.invalid(field: error.field, error.message)
            }
        }
        let fields = try query.fields(of: "a job", JobView.fieldNames)
        let shape = try query.shape(fields: fields)
        let filter = JobFilter(
            statuses: try query.values("status", "a job status"),
            reservation: reservation,
            owner: query.owner,
            kind: try query.value("kind", "a job kind"),
            since: query.since
        )
        let list = try await ledger.read { tx in
            let page = try tx.jobs(
                filter,
                before: query.before,
                limit: query.limit,
                hyperparameters: fields?.contains("hyperparameters") ?? true
            )
            var names: [Int64: String] = [:]
            var views: [JobView] = []
            views.reserveCapacity(page.items.count)
            let points = try tx.lastMetricPoints(jobIDs: page.items.map { $0.id! })
            for job in page.items {
                let name = try names[job.reservationId] ?? Self.reservationName(job.reservationId, tx)
                names[job.reservationId] = name
                views.append(Self.jobView(job, reservationName: name, metrics: points[job.id!].map { [$0] } ?? []))
            }
            return JobList(
                jobs: views,
                nextCursor: ListingQuery.nextCursor(after: page.items.last?.id, more: page.more),
                more: page.more,
                fields: fields,
                shape: shape
            )
        }
        return try Requests.json(list)
    }

    func show(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try Self.jobID(context)
        let view = try await ledger.read { tx in try Self.jobView(try Self.visibleJob(id, caller: caller, tx), tx: tx, fullMetrics: true) }
        return try Requests.json(view)
    }

    func stop(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try Self.jobID(context)
        let now = self.now
        // In the commit group with submissions, the one path that writes jobs: a burst of stops
        // shares a transaction, and its scheduling cycle starts what the stopped jobs leave room
        // for. Not keyed: stopping twice stops once.
        let answer = try await commits.commit(owner: caller.user, key: nil, route: "POST /v1/jobs/\(id)/stop", body: Data()) { tx in
            let job = try Self.visibleJob(id, caller: caller, tx)
            switch job.status {
            case .queued:
                try tx.finishJob(id, status: .stopped, reason: "stopped by \(caller.user)", exitStatus: nil, at: now)
            case .running:
                try tx.requestStop(id, reason: "stopped by \(caller.user)", at: now)
            case .stopping:
                break
            case .completed, .failed, .stopped:
                throw APIError(.invalidState, "job \(id) is already \(job.status.rawValue)")
            }
            return Change(status: 200) { tx in try Self.jobView(try tx.job(id: id) ?? job, tx: tx, fullMetrics: false) }
        }.encoded()
        context.logger.info("job stop requested", metadata: ["job": "\(id)", "by": "\(caller.user)"])
        changed()
        return Requests.respond(status: answer.status, body: answer.body)
    }

    func events(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try Self.jobID(context)
        let list = try await ledger.read { tx in
            _ = try Self.visibleJob(id, caller: caller, tx)
            return JobEventList(events: try tx.jobEvents(id).map { JobEventView(at: $0.at, kind: $0.kind, detail: $0.detail) })
        }
        return try Requests.json(list)
    }

    /// The job's log from byte `offset`, at most 1 MiB at a time; `Berth-Log-Size` is its size.
    func showLog(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try Self.jobID(context)
        let job = try await ledger.read { tx in try Self.visibleJob(id, caller: caller, tx) }
        let offsetText = request.uri.queryParameters["offset"].map(String.init) ?? "0"
        guard let offset = UInt64(offsetText) else { throw APIError.invalid(field: "offset", "'\(offsetText)' is not a byte offset") }
        var bytes = Data()
        var size: UInt64 = 0
        if let handle = FileHandle(forReadingAtPath: job.logPath) {
            defer { try? handle.close() }
            size = (try? handle.seekToEnd()) ?? 0
            if offset < size {
                try handle.seek(toOffset: offset)
                bytes = (try handle.read(upToCount: Int(min(size - offset, 1 << 20)))) ?? Data()
            }
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8", .init("Berth-Log-Size")!: String(size)],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }

    static func jobID(_ context: BerthRequestContext) throws -> Int64 {
        let text = try context.parameter("id")
        guard let id = Int64(text), id > 0 else { throw APIError.invalid(field: "id", "'\(text)' is not a job id") }
        return id
    }

    static func visibleJob(_ id: Int64, caller: Caller, _ tx: LedgerTransaction) throws -> JobRecord {
        guard let job = try tx.job(id: id) else { throw APIError(.notFound, "no job \(id); `berth jobs` lists yours") }
        guard caller.canSee(owner: job.owner) else {
            throw APIError(.forbidden, "job \(id) belongs to another user; you can see and stop only your own")
        }
        return job
    }

    /// A job with its whole curve (`fullMetrics`), or with its last point as lists show it.
    static func jobView(_ job: JobRecord, tx: LedgerTransaction, fullMetrics: Bool) throws -> JobView {
        let metrics = fullMetrics ? try tx.metrics(jobID: job.id!) : try tx.lastMetricPoint(jobID: job.id!).map { [$0] } ?? []
        return jobView(job, reservationName: try reservationName(job.reservationId, tx), metrics: metrics)
    }

    static func reservationName(_ id: Int64, _ tx: LedgerTransaction) throws -> String {
        try tx.reservationState(id: id)?.name ?? String(id)
    }

    static func jobView(_ job: JobRecord, reservationName name: String, metrics shown: [MetricPoint]) -> JobView {
        JobView(
            id: job.id!,
            name: job.name,
            owner: job.owner,
            kind: job.kind.rawValue,
            reservation: name,
            model: job.model,
            status: job.status.rawValue,
            reason: job.reason,
            progress: job.progress,
            priority: job.priority,
            modelUnits: job.modelUnits,
            units: job.units,
            hyperparameters: job.hyperparameters,
            data: job.data,
            validationData: job.validationData,
            output: job.output,
            modelName: job.modelName,
            submittedAt: job.submittedAt,
            startedAt: job.startedAt,
            endedAt: job.endedAt,
            exitStatus: job.exitStatus,
            busyUnitSeconds: job.busyUnitSeconds,
            inputTokens: job.inputTokens,
            outputTokens: job.outputTokens,
            metrics: shown.map { MetricPointView(step: $0.step, epoch: $0.epoch, trainingLoss: $0.trainingLoss, validationLoss: $0.validationLoss) }
        )
        .with(cpuSeconds: job.cpuSeconds, peakMemoryBytes: job.peakMemoryBytes)
        .with(slurmJobId: job.slurmJobID, slurmState: job.slurmState)
    }
}
