public import BerthCore
public import Foundation

/// Hyperparameters of a customization job, as the core keeps them (snake_case on the wire).
public typealias Hyperparameters = HyperparameterValues

/// What a runner is told about its job: the file named by `BERTH_JOB_SPEC` (snake_case JSON).
public struct JobSpec: Codable, Sendable, Equatable {
    public var jobId: Int64
    /// `fine-tuning`, `continued-pretraining`, `distillation` or `batch-inference`.
    public var kind: String
    /// The model the job runs on: the base model for training, the (custom) model for batch.
    public var model: String
    public var baseModel: String
    /// The custom model a training job creates.
    public var modelName: String?
    public var hyperparameters: Hyperparameters?
    /// JSON Lines, already checked by berthd.
    public var dataPath: String
    public var validationDataPath: String?
    /// Where the runner writes: the trained model, or batch output records.
    public var outputDir: String
    /// For batch inference: the folder of the model to load (a custom model's artifacts);
    /// `nil` for a base model.
    public var modelDir: String?
    /// Fixed per job, so a rerun gives the same result.
    public var seed: UInt64
    public var units: [String]
    public var maxTokens: Int

    public init(
        jobId: Int64,
        kind: String,
        model: String,
        baseModel: String,
        modelName: String?,
        hyperparameters: Hyperparameters?,
        dataPath: String,
        validationDataPath: String?,
        outputDir: String,
        modelDir: String?,
        seed: UInt64,
        units: [String],
        maxTokens: Int
    ) {
        self.jobId = jobId
        self.kind = kind
        self.model = model
        self.baseModel = baseModel
        self.modelName = modelName
        self.hyperparameters = hyperparameters
        self.dataPath = dataPath
        self.validationDataPath = validationDataPath
        self.outputDir = outputDir
        self.modelDir = modelDir
        self.seed = seed
        self.units = units
        self.maxTokens = maxTokens
    }
}

/// One line a runner prints on stdout (JSON Lines, snake_case):
/// `{"event":"progress","fraction":0.4}`,
/// `{"event":"metric","name":"train_loss","step":10,"epoch":1,"value":1.2}` (names `train_loss`
/// and `validation_loss`), `{"event":"usage","input_tokens":10,"output_tokens":20}`.
public enum RunnerEvent: Sendable, Equatable {
    case progress(fraction: Double)
    case metric(name: String, step: Int, epoch: Int?, value: Double)
    case usage(inputTokens: Int, outputTokens: Int)

    private struct Line: Codable {
        var event: String
        var fraction: Double?
        var name: String?
        var step: Int?
        var epoch: Int?
        var value: Double?
        var inputTokens: Int?
        var outputTokens: Int?
    }

    /// Parses one stdout line; `nil` for anything that is not a valid event (kept in the log).
    public init?(line: String) {
        guard let decoded = try? Wire.decoder().decode(Line.self, from: Data(line.utf8)) else { return nil }
        switch decoded.event {
        case "progress":
            guard let fraction = decoded.fraction, fraction.isFinite else { return nil }
            self = .progress(fraction: min(max(fraction, 0), 1))
        case "metric":
            guard let name = decoded.name, let step = decoded.step, let value = decoded.value, value.isFinite else { return nil }
            self = .metric(name: name, step: step, epoch: decoded.epoch, value: value)
        case "usage":
            guard let input = decoded.inputTokens, let output = decoded.outputTokens, input >= 0, output >= 0 else { return nil }
            self = .usage(inputTokens: input, outputTokens: output)
        default:
            return nil
        }
    }

    /// The line a runner prints for this event.
    public var line: String {
        let value: Line
        switch self {
        case .progress(let fraction):
            value = Line(event: "progress", fraction: fraction)
        case .metric(let name, let step, let epoch, let v):
            value = Line(event: "metric", name: name, step: step, epoch: epoch, value: v)
        case .usage(let input, let output):
            value = Line(event: "usage", inputTokens: input, outputTokens: output)
        }
        return String(decoding: (try? Wire.encoder().encode(value)) ?? Data(), as: UTF8.self)
    }
}

/// `POST /v1/jobs`. Paths are absolute, or relative to the caller's working directory as the
/// CLI resolves them before sending.
public struct SubmitJobRequest: StrictBody, Equatable {
    public var name: String
    public var reservation: String
    public var kind: String
    public var data: String
    public var validationData: String?
    public var output: String
    public var modelName: String?
    public var epochs: Int?
    public var batchSize: Int?
    public var learningRate: Double?
    public var warmupSteps: Int?
    public var modelUnits: Int?
    public var priority: Int?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case name, reservation, kind, data, validationData, output, modelName, epochs, batchSize, learningRate
        case warmupSteps, modelUnits, priority
    }

    public init(
        name: String,
        reservation: String,
        kind: String,
        data: String,
        validationData: String? = nil,
        output: String,
        modelName: String? = nil,
        epochs: Int? = nil,
        batchSize: Int? = nil,
        learningRate: Double? = nil,
        warmupSteps: Int? = nil,
        modelUnits: Int? = nil,
        priority: Int? = nil
    ) {
        self.name = name
        self.reservation = reservation
        self.kind = kind
        self.data = data
        self.validationData = validationData
        self.output = output
        self.modelName = modelName
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.modelUnits = modelUnits
        self.priority = priority
    }
}

/// One step of a training job's curve.
public struct MetricPointView: Codable, Sendable, Equatable {
    public var step: Int
    public var epoch: Int?
    public var trainingLoss: Double?
    public var validationLoss: Double?

    public init(step: Int, epoch: Int?, trainingLoss: Double?, validationLoss: Double?) {
        self.step = step
        self.epoch = epoch
        self.trainingLoss = trainingLoss
        self.validationLoss = validationLoss
    }
}

public struct JobView: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    public var kind: String
    public var reservation: String
    public var model: String
    /// `queued`, `running`, `completed`, `failed`, `stopping` or `stopped`.
    public var status: String
    /// Why it failed or stopped (`daemon-restart`, `exit status 3`, `stopped by alice`, …).
    public var reason: String?
    public var progress: Double
    public var priority: Int
    public var modelUnits: Int
    /// The compute units it runs on while running.
    public var units: [String]
    public var hyperparameters: Hyperparameters?
    public var data: String
    public var validationData: String?
    public var output: String
    public var modelName: String?
    public var submittedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    public var exitStatus: Int?
    public var busyUnitSeconds: Double
    public var inputTokens: Int
    public var outputTokens: Int
    /// CPU seconds and the most memory its runner used, as its cgroup counted them once it
    /// ended; absent for a job that ran unconfined (or has not ended).
    public var cpuSeconds: Double?
    public var peakMemoryBytes: Int64?
    /// The Slurm job that runs it and the state Slurm showed last (`PENDING: Resources`);
    /// absent for a job of this host.
    public var slurmJobId: String?
    public var slurmState: String?
    /// The step-wise curve in full for `GET /v1/jobs/{id}`; the last point only in lists.
    public var metrics: [MetricPointView]

    public init(
        id: Int64,
        name: String,
        owner: String,
        kind: String,
        reservation: String,
        model: String,
        status: String,
        reason: String?,
        progress: Double,
        priority: Int,
        modelUnits: Int,
        units: [String],
        hyperparameters: Hyperparameters?,
        data: String,
        validationData: String?,
        output: String,
        modelName: String?,
        submittedAt: Date,
        startedAt: Date?,
        endedAt: Date?,
        exitStatus: Int?,
        busyUnitSeconds: Double,
        inputTokens: Int,
        outputTokens: Int,
        metrics: [MetricPointView]
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.kind = kind
        self.reservation = reservation
        self.model = model
        self.status = status
        self.reason = reason
        self.progress = progress
        self.priority = priority
        self.modelUnits = modelUnits
        self.units = units
        self.hyperparameters = hyperparameters
        self.data = data
        self.validationData = validationData
        self.output = output
        self.modelName = modelName
        self.submittedAt = submittedAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.exitStatus = exitStatus
        self.busyUnitSeconds = busyUnitSeconds
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.metrics = metrics
    }
}

extension MetricPointView: SnakeCaseEncodable {
    enum WireKeys: String, CodingKey {
        case step, epoch, training_loss, validation_loss
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKeys.self)
        try c.encode(step, forKey: .step)
        try c.encodeIfPresent(epoch, forKey: .epoch)
        try c.encodeIfPresent(trainingLoss, forKey: .training_loss)
        try c.encodeIfPresent(validationLoss, forKey: .validation_loss)
    }
}

extension JobView: SnakeCaseEncodable {
    /// The names of a job's fields on the wire, which a listing's `fields` may name.
    public static let fieldNames = WireKeys.allCases.map(\.rawValue)

    enum WireKeys: String, CodingKey, CaseIterable {
        case id, name, owner, kind, reservation, model, status, reason, progress, priority, model_units, units, hyperparameters
        case data, validation_data, output, model_name, submitted_at, started_at, ended_at, exit_status, busy_unit_seconds
        case input_tokens, output_tokens, cpu_seconds, peak_memory_bytes, slurm_job_id, slurm_state, metrics
    }

    enum HyperparameterKeys: String, CodingKey {
        case epochs, batch_size, learning_rate, warmup_steps
    }

    public func encode(to encoder: any Encoder) throws {
        try encode(to: encoder, only: nil)
    }

    /// The fields named in `only`, or every field when it is nil.
    func encode(to encoder: any Encoder, only fields: Set<WireKeys>?) throws {
        var c = encoder.container(keyedBy: WireKeys.self)
        let all = fields == nil
        func wants(_ key: WireKeys) -> Bool { all || fields!.contains(key) }
        if wants(.id) { try c.encode(id, forKey: .id) }
        if wants(.name) { try c.encode(name, forKey: .name) }
        if wants(.owner) { try c.encode(owner, forKey: .owner) }
        if wants(.kind) { try c.encode(kind, forKey: .kind) }
        if wants(.reservation) { try c.encode(reservation, forKey: .reservation) }
        if wants(.model) { try c.encode(model, forKey: .model) }
        if wants(.status) { try c.encode(status, forKey: .status) }
        if wants(.reason) { try c.encodeIfPresent(reason, forKey: .reason) }
        if wants(.progress) { try c.encode(progress, forKey: .progress) }
        if wants(.priority) { try c.encode(priority, forKey: .priority) }
        if wants(.model_units) { try c.encode(modelUnits, forKey: .model_units) }
        if wants(.units) { try c.encode(units, forKey: .units) }
        if wants(.hyperparameters), let h = hyperparameters {
            var nested = c.nestedContainer(keyedBy: HyperparameterKeys.self, forKey: .hyperparameters)
            try nested.encode(h.epochs, forKey: .epochs)
            try nested.encode(h.batchSize, forKey: .batch_size)
            try nested.encode(h.learningRate, forKey: .learning_rate)
            try nested.encode(h.warmupSteps, forKey: .warmup_steps)
        }
        if wants(.data) { try c.encode(data, forKey: .data) }
        if wants(.validation_data) { try c.encodeIfPresent(validationData, forKey: .validation_data) }
        if wants(.output) { try c.encode(output, forKey: .output) }
        if wants(.model_name) { try c.encodeIfPresent(modelName, forKey: .model_name) }
        if wants(.submitted_at) { try c.encode(submittedAt, forKey: .submitted_at) }
        if wants(.started_at) { try c.encodeIfPresent(startedAt, forKey: .started_at) }
        if wants(.ended_at) { try c.encodeIfPresent(endedAt, forKey: .ended_at) }
        if wants(.exit_status) { try c.encodeIfPresent(exitStatus, forKey: .exit_status) }
        if wants(.busy_unit_seconds) { try c.encode(busyUnitSeconds, forKey: .busy_unit_seconds) }
        if wants(.input_tokens) { try c.encode(inputTokens, forKey: .input_tokens) }
        if wants(.output_tokens) { try c.encode(outputTokens, forKey: .output_tokens) }
        if wants(.cpu_seconds) { try c.encodeIfPresent(cpuSeconds, forKey: .cpu_seconds) }
        if wants(.peak_memory_bytes) { try c.encodeIfPresent(peakMemoryBytes, forKey: .peak_memory_bytes) }
        if wants(.slurm_job_id) { try c.encodeIfPresent(slurmJobId, forKey: .slurm_job_id) }
        if wants(.slurm_state) { try c.encodeIfPresent(slurmState, forKey: .slurm_state) }
        if wants(.metrics) { try c.encode(metrics, forKey: .metrics) }
    }

    /// A job as a listing with `fields` shows it: only those fields.
    struct Part: Encodable {
        var view: JobView
        var fields: Set<WireKeys>

        func encode(to encoder: any Encoder) throws {
            try view.encode(to: encoder, only: fields)
        }
    }
}

/// `GET /v1/jobs`: one page of jobs, newest first.
public struct JobList: Codable, Sendable, Equatable {
    public var jobs: [JobView]
    /// Given back as `cursor`, asks for the page after this one; absent on the last page.
    /// Opaque to clients.
    public var nextCursor: String?
    /// How many jobs match after this page.
    public var more: Int
    /// The fields each job is written with, when the request named them (`fields`); every
    /// field when nil. Names of `JobView.fieldNames`.
    public var fields: [String]?

    public init(jobs: [JobView], nextCursor: String? = nil, more: Int = 0, fields: [String]? = nil) {
        self.jobs = jobs
        self.nextCursor = nextCursor
        self.more = more
        self.fields = fields
    }

    enum CodingKeys: String, CodingKey {
        case jobs, nextCursor, more, fields
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try c.decode([JobView].self, forKey: .jobs)
        nextCursor = try c.decodeIfPresent(String.self, forKey: .nextCursor)
        more = try c.decodeIfPresent(Int.self, forKey: .more) ?? 0
        fields = try c.decodeIfPresent([String].self, forKey: .fields)
    }
}

extension JobList: SnakeCaseEncodable {
    enum WireKeys: String, CodingKey {
        case jobs, next_cursor, more, fields
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: WireKeys.self)
        if let fields {
            let named = Set(fields.compactMap(JobView.WireKeys.init(rawValue:)))
            try c.encode(jobs.map { JobView.Part(view: $0, fields: named) }, forKey: .jobs)
            try c.encode(fields, forKey: .fields)
        } else {
            try c.encode(jobs, forKey: .jobs)
        }
        try c.encodeIfPresent(nextCursor, forKey: .next_cursor)
        try c.encode(more, forKey: .more)
    }
}

/// `GET /v1/jobs/{id}/events`: what happened to a job, oldest first.
public struct JobEventView: Codable, Sendable, Equatable {
    public var at: Date
    /// `submitted`, `started`, `stop-requested`, `completed`, `failed` or `stopped`.
    public var kind: String
    public var detail: String

    public init(at: Date, kind: String, detail: String) {
        self.at = at
        self.kind = kind
        self.detail = detail
    }
}

public struct JobEventList: Codable, Sendable, Equatable {
    public var events: [JobEventView]
    public init(events: [JobEventView]) { self.events = events }
}

extension JobView {
    /// The view with what its runner used, as the ledger has it.
    public func with(slurmJobId: String?, slurmState: String?) -> JobView {
        var view = self
        view.slurmJobId = slurmJobId
        view.slurmState = slurmState
        return view
    }

    /// How the status reads to a person: a running job still waiting on the cluster is
    /// `queued-on-slurm`.
    public var shownStatus: String {
        Self.shownStatus(status: status, slurmState: slurmState)
    }

    static func shownStatus(status: String, slurmState: String?) -> String {
        guard status == "running", let state = slurmState, state.hasPrefix("PENDING") || state.hasPrefix("CONFIGURING") else { return status }
        return "queued-on-slurm"
    }

    public func with(cpuSeconds: Double?, peakMemoryBytes: Int64?) -> JobView {
        var view = self
        view.cpuSeconds = cpuSeconds
        view.peakMemoryBytes = peakMemoryBytes
        return view
    }
}
