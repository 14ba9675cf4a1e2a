public import BerthCore
public import Foundation
import GRDB

/// A job as the ledger keeps it: what was asked, where it runs, how it went.
public struct JobRecord: Sendable, Equatable {
    public var id: Int64?
    public var name: String
    public var owner: String
    public var kind: JobKind
    public var reservationId: Int64
    public var model: String
    public var baseModel: String
    public var status: JobStatus
    public var reason: String?
    public var priority: Int
    public var modelUnits: Int
    public var unitsNeeded: Int
    public var units: [String]
    public var hyperparameters: HyperparameterValues?
    public var data: String
    public var validationData: String?
    public var output: String
    public var modelName: String?
    public var seed: Int64
    public var submittedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    public var exitStatus: Int?
    public var progress: Double
    public var busyUnitSeconds: Double
    public var inputTokens: Int
    public var outputTokens: Int
    public var logPath: String
    /// Who submitted it, as the kernel said: output folders are handed to them.
    public var callerUid: Int64
    public var callerGid: Int64
    public var pid: Int64?
    /// CPU seconds and the most memory its runner used, from its cgroup; nil when unconfined.
    public var cpuSeconds: Double?
    public var peakMemoryBytes: Int64?
    /// The Slurm job that runs it, and the state squeue showed last; nil for a job of this host.
    public var slurmJobID: String?
    public var slurmState: String?

    /// Every column, in the order `init(row:)` reads them. Reads name these columns (never
    /// `SELECT *`) so rows are decoded by position: going through Codable, or looking each
    /// column up by name, cost more than the query on a submission's path.
    static let selection = """
        id, name, owner, kind, reservation_id, model, base_model, status, reason, priority, model_units, units_needed, \
        units, hyperparameters, data, validation_data, output, model_name, seed, submitted_at, started_at, ended_at, \
        exit_status, progress, busy_unit_seconds, input_tokens, output_tokens, log_path, caller_uid, caller_gid, pid, \
        cpu_seconds, peak_memory_bytes, slurm_job_id, slurm_state
        """

    /// A row of `SELECT \(selection)`: the one way a job is read whole.
    init(row: Row) throws {
        var decoded: [String: HyperparameterValues]? = [:]
        try self.init(row: row, hyperparameters: &decoded)
    }

    /// The same, with the hyperparameters decoded so far by their column's text: the jobs of a
    /// listing mostly share a few, and decoding each one's JSON was a quarter of reading a page.
    /// `nil`: a listing whose `fields` leave them out, which does not read them at all.
    init(row: Row, hyperparameters decoded: inout [String: HyperparameterValues]?) throws {
        id = row[0]
        name = row[1]
        owner = row[2]
        kind = try row.stored(atIndex: 3)
        reservationId = row[4]
        model = row[5]
        baseModel = row[6]
        status = try row.stored(atIndex: 7)
        reason = row[8]
        priority = row[9]
        modelUnits = row[10]
        unitsNeeded = row[11]
        units = try Self.decodeUnits(row[12])
        if decoded != nil, let text = row[13] as String? {
            if let known = decoded?[text] {
                hyperparameters = known
            } else {
                let values = try JSONDecoder().decode(HyperparameterValues.self, from: Data(text.utf8))
                decoded?[text] = values
                hyperparameters = values
            }
        } else {
            hyperparameters = nil
        }
        data = row[14]
        validationData = row[15]
        output = row[16]
        modelName = row[17]
        seed = row[18]
        submittedAt = row[19]
        startedAt = row[20]
        endedAt = row[21]
        exitStatus = row[22]
        progress = row[23]
        busyUnitSeconds = row[24]
        inputTokens = row[25]
        outputTokens = row[26]
        logPath = row[27]
        callerUid = row[28]
        callerGid = row[29]
        pid = row[30]
        cpuSeconds = row[31]
        peakMemoryBytes = row[32]
        slurmJobID = row[33]
        slurmState = row[34]
    }

    /// Rows are read where SQLite has them (a cursor), not copied first.
    static func fetchAll(_ statement: Statement, arguments: StatementArguments = [], hyperparameters: Bool = true) throws -> [JobRecord] {
        var decoded: [String: HyperparameterValues]? = hyperparameters ? [:] : nil
        var jobs: [JobRecord] = []
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        while let row = try rows.next() {
            jobs.append(try JobRecord(row: row, hyperparameters: &decoded))
        }
        return jobs
    }

    static func fetchAll(_ db: Database, sql: String, arguments: StatementArguments = []) throws -> [JobRecord] {
        try fetchAll(db.makeStatement(sql: sql), arguments: arguments)
    }

    static func fetchOne(_ statement: Statement, arguments: StatementArguments = []) throws -> JobRecord? {
        try Row.fetchOne(statement, arguments: arguments).map(JobRecord.init(row:))
    }

    /// Unit ids as the column keeps them, a JSON array; most jobs are queued, on none.
    static func decodeUnits(_ text: String) throws -> [String] {
        text == "[]" ? [] : try JSONDecoder().decode([String].self, from: Data(text.utf8))
    }

    /// JSON columns are written as GRDB writes Codable values: compact, keys sorted.
    static func encodeJSON<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public init(
        name: String,
        owner: String,
        kind: JobKind,
        reservationId: Int64,
        model: String,
        baseModel: String,
        priority: Int,
        modelUnits: Int,
        unitsNeeded: Int,
        hyperparameters: HyperparameterValues?,
        data: String,
        validationData: String?,
        output: String,
        modelName: String?,
        seed: Int64,
        submittedAt: Date,
        logPath: String,
        callerUid: UInt32,
        callerGid: UInt32
    ) {
        self.name = name
        self.owner = owner
        self.kind = kind
        self.reservationId = reservationId
        self.model = model
        self.baseModel = baseModel
        self.status = .queued
        self.priority = priority
        self.modelUnits = modelUnits
        self.unitsNeeded = unitsNeeded
        self.units = []
        self.hyperparameters = hyperparameters
        self.data = data
        self.validationData = validationData
        self.output = output
        self.modelName = modelName
        self.seed = seed
        self.submittedAt = submittedAt
        self.progress = 0
        self.busyUnitSeconds = 0
        self.inputTokens = 0
        self.outputTokens = 0
        self.logPath = logPath
        self.callerUid = Int64(callerUid)
        self.callerGid = Int64(callerGid)
    }

    public var job: Job {
        Job(
            id: id ?? 0,
            name: name,
            owner: owner,
            kind: kind,
            reservationID: reservationId,
            status: status,
            priority: priority,
            modelUnits: modelUnits,
            unitsNeeded: unitsNeeded,
            units: units,
            submittedAt: submittedAt
        )
    }
}

/// One step of a training curve, merged from the runner's metric lines.
public struct MetricPoint: Sendable, Equatable {
    public var step: Int
    public var epoch: Int?
    public var trainingLoss: Double?
    public var validationLoss: Double?
}

public struct JobEvent: Sendable, Equatable {
    public var at: Date
    public var kind: String
    public var detail: String
}

extension LedgerTransaction {
    /// Queues a job, with its `submitted` event, and returns it with its id. The caller may
    /// name the job's reservation, which it has at hand, to spare a read.
    public func insert(_ job: JobRecord, reservationName: String? = nil) throws -> JobRecord {
        var record = job
        // A prepared INSERT of plain values: GRDB's record persistence builds the statement's
        // arguments through a container per row, which cost a good part of a submission.
        try db.cachedStatement(
            sql: """
                INSERT INTO jobs (name, owner, kind, reservation_id, model, base_model, status, reason, priority, model_units, \
                units_needed, units, hyperparameters, data, validation_data, output, model_name, seed, submitted_at, started_at, \
                ended_at, exit_status, progress, busy_unit_seconds, input_tokens, output_tokens, log_path, caller_uid, caller_gid, pid) \
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            job.name, job.owner, job.kind.rawValue, job.reservationId, job.model, job.baseModel, job.status.rawValue, job.reason, job.priority,
            job.modelUnits, job.unitsNeeded, try JobRecord.encodeJSON(job.units), try job.hyperparameters.map(JobRecord.encodeJSON),
            job.data, job.validationData, job.output, job.modelName, job.seed, job.submittedAt.stored, job.startedAt.stored, job.endedAt.stored,
            job.exitStatus, job.progress, job.busyUnitSeconds, job.inputTokens, job.outputTokens, job.logPath, job.callerUid,
            job.callerGid, job.pid,
        ])
        record.id = db.lastInsertedRowID
        let reservation = try reservationName ?? reservationState(id: job.reservationId)?.name
        try addJobEvent(
            record.id!,
            at: job.submittedAt,
            kind: "submitted",
            detail: "queued on reservation \(reservation ?? String(job.reservationId))"
        )
        return record
    }

    /// What a scheduling cycle may have changed in a job: its status, units and start.
    public func placement(jobID: Int64) throws -> (status: JobStatus, units: [String], startedAt: Date?)? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT status, units, started_at FROM jobs WHERE id = ?"), arguments: [jobID])
            .map { row in (try row.stored(atIndex: 0), try JobRecord.decodeUnits(row[1]), row[2]) }
    }

    public func job(id: Int64) throws -> JobRecord? {
        try JobRecord.fetchOne(db.cachedStatement(sql: "SELECT \(JobRecord.selection) FROM jobs WHERE id = ?"), arguments: [id])
    }

    /// Jobs, newest first; `owner` limits them to one user's.
    public func jobs(owner: String? = nil, limit: Int = 1000) throws -> [JobRecord] {
        if let owner {
            return try JobRecord.fetchAll(
                db.cachedStatement(sql: "SELECT \(JobRecord.selection) FROM jobs WHERE owner = ? ORDER BY id DESC LIMIT ?"),
                arguments: [owner, limit]
            )
        }
        return try JobRecord.fetchAll(db.cachedStatement(sql: "SELECT \(JobRecord.selection) FROM jobs ORDER BY id DESC LIMIT ?"), arguments: [limit])
    }

    /// How many of a user's jobs wait in queues (a count the ledger's triggers keep).
    public func queuedJobCount(owner: String) throws -> Int {
        try Int.fetchOne(db.cachedStatement(sql: "SELECT queued FROM queued_jobs WHERE owner = ?"), arguments: [owner]) ?? 0
    }

    /// Jobs that are queued, running or stopping.
    public func liveJobs() throws -> [JobRecord] {
        try JobRecord.fetchAll(db, sql: "SELECT \(JobRecord.selection) FROM jobs WHERE status IN ('queued', 'running', 'stopping') ORDER BY id")
    }

    /// Jobs that hold units: running or stopping.
    public func runningJobs() throws -> [JobRecord] {
        try JobRecord.fetchAll(db.cachedStatement(sql: "SELECT \(JobRecord.selection) FROM jobs WHERE status IN ('running', 'stopping') ORDER BY id"))
    }

    /// A reservation that ends takes its queue with it: every job still queued on it is
    /// stopped, in one statement, with an event each.
    func cancelQueue(reservationID: Int64, reason: String, at: Date) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO job_events (job_id, at, kind, detail)
                SELECT id, ?, 'stopped', ? FROM jobs WHERE reservation_id = ? AND status = 'queued'
                """
        ).execute(arguments: [at.stored, reason, reservationID])
        try db.cachedStatement(
            sql: """
                UPDATE jobs SET status = 'stopped', reason = ?, ended_at = ? WHERE reservation_id = ? AND status = 'queued'
                """
        ).execute(arguments: [reason, at.stored, reservationID])
    }

    /// Whether a job not yet finished will register a custom model of that name.
    public func customModelNamePending(_ name: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT EXISTS (SELECT 1 FROM jobs WHERE model_name = ? AND status IN ('queued', 'running', 'stopping'))
                    """
            ),
            arguments: [name]
        ) ?? false
    }

    /// Any model of that id, retired ones included: a custom model may not reuse it.
    public func modelIDTaken(_ id: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM models WHERE id = ?)"), arguments: [id]) ?? false
    }

    public func addJobEvent(_ jobID: Int64, at: Date, kind: String, detail: String) throws {
        try db.cachedStatement(sql: "INSERT INTO job_events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)").execute(arguments: [
            jobID, at.stored, kind, detail,
        ])
    }

    public func jobEvents(_ jobID: Int64) throws -> [JobEvent] {
        try Row.fetchAll(db, sql: "SELECT at, kind, detail FROM job_events WHERE job_id = ? ORDER BY id", arguments: [jobID])
            .map { row in
                let at: Date = row["at"]
                let kind: String = row["kind"]
                let detail: String = row["detail"]
                return JobEvent(at: at, kind: kind, detail: detail)
            }
    }

    /// A runner's event line, in the ledger.
    public func record(_ event: RunnerEventValue, jobID: Int64, at: Date) throws {
        switch event {
        case .progress(let fraction):
            try db.execute(sql: "UPDATE jobs SET progress = ? WHERE id = ?", arguments: [fraction, jobID])
        case .metric(let name, let step, let epoch, let value):
            try db.execute(
                sql: "INSERT INTO job_metrics (job_id, step, epoch, name, value) VALUES (?, ?, ?, ?, ?)",
                arguments: [jobID, step, epoch, name, value]
            )
        case .usage(let input, let output):
            try db.execute(
                sql: "UPDATE jobs SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ? WHERE id = ?",
                arguments: [input, output, jobID]
            )
        }
    }

    /// The training curve, one point per step.
    public func metrics(jobID: Int64) throws -> [MetricPoint] {
        var points: [Int: MetricPoint] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT step, epoch, name, value FROM job_metrics WHERE job_id = ? ORDER BY rowid"),
            arguments: [jobID]
        ) {
            let step: Int = row[0]
            var point = points[step] ?? MetricPoint(step: step, epoch: nil, trainingLoss: nil, validationLoss: nil)
            Self.merge(row, into: &point)
            points[step] = point
        }
        return points.values.sorted { $0.step < $1.step }
    }

    /// The curve's last point (its highest step), as `metrics(jobID:).last`, without reading
    /// the rest: lists show it for every job (the `job_metrics_job_step` index).
    public func lastMetricPoint(jobID: Int64) throws -> MetricPoint? {
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT step, epoch, name, value FROM job_metrics
                    WHERE job_id = ? AND step = (SELECT MAX(step) FROM job_metrics WHERE job_id = ?) ORDER BY rowid
                    """
            ),
            arguments: [jobID, jobID]
        )
        guard let first = rows.first else { return nil }
        var point = MetricPoint(step: first[0], epoch: nil, trainingLoss: nil, validationLoss: nil)
        for row in rows { Self.merge(row, into: &point) }
        return point
    }

    /// The last point of each of these jobs' curves, as `lastMetricPoint(jobID:)` gives it, in
    /// one query for a page of a listing; a job with no point has no entry.
    public func lastMetricPoints(jobIDs: [Int64]) throws -> [Int64: MetricPoint] {
        guard !jobIDs.isEmpty else { return [:] }
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT m.step, m.epoch, m.name, m.value, m.job_id FROM json_each(?) AS page
                    JOIN job_metrics m ON m.job_id = page.value AND m.step = (SELECT MAX(step) FROM job_metrics WHERE job_id = page.value)
                    ORDER BY m.rowid
                    """
            ),
            arguments: [Self.jsonArray(jobIDs)]
        )
        var points: [Int64: MetricPoint] = [:]
        while let row = try rows.next() {
            let jobID: Int64 = row[4]
            var point = points[jobID] ?? MetricPoint(step: row[0], epoch: nil, trainingLoss: nil, validationLoss: nil)
            Self.merge(row, into: &point)
            points[jobID] = point
        }
        return points
    }

    /// One `step, epoch, name, value` row of `job_metrics` into its step's point: a later row
    /// of the same step wins.
    private static func merge(_ row: Row, into point: inout MetricPoint) {
        point.epoch = row[1] ?? point.epoch
        switch row[2] as String {
        case "train_loss", "training_loss": point.trainingLoss = row[3]
        case "validation_loss", "val_loss": point.validationLoss = row[3]
        default: break
        }
    }

    /// The job has ended: status, why, exit status, and the unit-seconds it kept busy.
    public func finishJob(_ jobID: Int64, status: JobStatus, reason: String?, exitStatus: Int?, at: Date) throws {
        guard let job = try job(id: jobID) else { return }
        let busy = job.startedAt.map { max(0, at.timeIntervalSince($0)) * Double(job.units.count) } ?? 0
        try db.execute(
            sql: """
                UPDATE jobs SET status = ?, reason = ?, exit_status = ?, ended_at = ?, busy_unit_seconds = ?,
                progress = CASE WHEN ? = 'completed' THEN 1 ELSE progress END WHERE id = ?
                """,
            arguments: [status.rawValue, reason, exitStatus, at.stored, busy, status.rawValue, jobID]
        )
        try addJobEvent(jobID, at: at, kind: status.rawValue, detail: reason ?? exitStatus.map { "exit status \($0)" } ?? "")
        // The runner is gone: units its ended reservation kept for it are free now.
        try db.execute(
            sql: """
                UPDATE leases SET held = 0, "end" = ?
                WHERE held AND reservation_id = ? AND unit_id IN (SELECT value FROM json_each(?))
                  AND (SELECT status FROM reservations WHERE id = leases.reservation_id) NOT IN ('pending', 'active')
                """,
            arguments: [at.stored, job.reservationId, String(decoding: try JSONEncoder().encode(job.units), as: UTF8.self)]
        )
    }

    public func setJobLogPath(_ jobID: Int64, _ path: String) throws {
        try db.cachedStatement(sql: "UPDATE jobs SET log_path = ? WHERE id = ?").execute(arguments: [path, jobID])
    }

    /// What the job's runner used, as its cgroup counted it.
    public func setJobResources(_ jobID: Int64, cpuSeconds: Double?, peakMemoryBytes: Int64?) throws {
        try db.execute(
            sql: "UPDATE jobs SET cpu_seconds = ?, peak_memory_bytes = ? WHERE id = ?",
            arguments: [cpuSeconds, peakMemoryBytes, jobID]
        )
    }

    /// The Slurm job running it: kept so a restarted berthd follows that job, never submits another.
    public func setJobSlurmID(_ jobID: Int64, slurmJobID: String?) throws {
        try db.execute(sql: "UPDATE jobs SET slurm_job_id = ? WHERE id = ?", arguments: [slurmJobID, jobID])
    }

    public func setJobSlurmState(_ jobID: Int64, state: String?) throws {
        try db.execute(sql: "UPDATE jobs SET slurm_state = ? WHERE id = ?", arguments: [state, jobID])
    }

    public func setJobPID(_ jobID: Int64, pid: Int32?) throws {
        try db.execute(sql: "UPDATE jobs SET pid = ? WHERE id = ?", arguments: [pid.map { Int64($0) }, jobID])
    }

    /// Asks a running job to stop: the supervisor signals it; it becomes `stopped` when it exits.
    public func requestStop(_ jobID: Int64, reason: String, at: Date) throws {
        try db.execute(sql: "UPDATE jobs SET status = 'stopping', reason = ? WHERE id = ? AND status = 'running'", arguments: [reason, jobID])
        try addJobEvent(jobID, at: at, kind: "stop-requested", detail: reason)
    }

    /// Registers the custom model a completed training job made.
    public func registerCustomModel(_ model: Model, now: Date) throws {
        try ModelRecord(model, createdAt: now).insert(db)
    }

    func applyJobStep(_ step: PlanStep) throws {
        switch step {
        case .startJob(let id, let units, let at):
            try db.execute(
                sql: "UPDATE jobs SET status = 'running', units = ?, started_at = ? WHERE id = ?",
                arguments: [String(decoding: try JSONEncoder().encode(units), as: UTF8.self), at.stored, id]
            )
            try addJobEvent(id, at: at, kind: "started", detail: "on \(units.joined(separator: ","))")
        case .stopJob(let id, let reason, let at):
            try requestStop(id, reason: reason.rawValue, at: at)
        case .cancelJob(let id, let reason, let at):
            // Its reservation's end may have stopped it already, with the rest of the queue.
            guard let job = try job(id: id), job.status == .queued else { return }
            try finishJob(id, status: .stopped, reason: reason.rawValue, exitStatus: nil, at: at)
        default:
            break
        }
    }
}

/// The ledger's copy of a runner event (BerthStore does not see the wire module).
public enum RunnerEventValue: Sendable, Equatable {
    case progress(Double)
    case metric(name: String, step: Int, epoch: Int?, value: Double)
    case usage(input: Int, output: Int)
}
