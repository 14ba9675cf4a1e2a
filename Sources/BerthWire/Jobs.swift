public import BerthCore
public import FoundationEssentials

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

/// Its own snake_case keys, so `berth submit` sends it with no key conversion: converting
/// them costs the CLI three conformance lookups, each a scan of every record in the binary.
/// berthd still reads it with `Wire.decoder()`; a test checks the bytes match the converted ones.
extension SubmitJobRequest: SnakeCaseEncodable {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: NamedKey.self)
        try c.encode(name, forKey: NamedKey("name"))
        try c.encode(reservation, forKey: NamedKey("reservation"))
        try c.encode(kind, forKey: NamedKey("kind"))
        try c.encode(data, forKey: NamedKey("data"))
        try c.encodeIfPresent(validationData, forKey: NamedKey("validation_data"))
        try c.encode(output, forKey: NamedKey("output"))
        try c.encodeIfPresent(modelName, forKey: NamedKey("model_name"))
        try c.encodeIfPresent(epochs, forKey: NamedKey("epochs"))
        try c.encodeIfPresent(batchSize, forKey: NamedKey("batch_size"))
        try c.encodeIfPresent(learningRate, forKey: NamedKey("learning_rate"))
        try c.encodeIfPresent(warmupSteps, forKey: NamedKey("warmup_steps"))
        try c.encodeIfPresent(modelUnits, forKey: NamedKey("model_units"))
        try c.encodeIfPresent(priority, forKey: NamedKey("priority"))
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

extension JobView: SnakeCaseEncodable, FieldedView {
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
        try ObjectOf(view: self, fields: WireKeys.allCases).encode(to: encoder)
    }

    /// One call per named key, through a switch: asking a `Set` about each key of each item
    /// hashed it, a fifth of writing a page.
    func put(_ fields: [WireKeys], into sink: inout some FieldSink<WireKeys>) throws {
        for key in fields {
            switch key {
            case .id: try sink.put(id, key)
            case .name: try sink.put(name, key)
            case .owner: try sink.put(owner, key)
            case .kind: try sink.put(kind, key)
            case .reservation: try sink.put(reservation, key)
            case .model: try sink.put(model, key)
            case .status: try sink.put(status, key)
            case .reason: try sink.put(reason, key)
            case .progress: try sink.put(progress, key)
            case .priority: try sink.put(priority, key)
            case .model_units: try sink.put(modelUnits, key)
            case .units: try sink.put(units, key)
            case .data: try sink.put(data, key)
            case .validation_data: try sink.put(validationData, key)
            case .output: try sink.put(output, key)
            case .model_name: try sink.put(modelName, key)
            case .submitted_at: try sink.put(submittedAt, key)
            case .started_at: try sink.put(startedAt, key)
            case .ended_at: try sink.put(endedAt, key)
            case .exit_status: try sink.put(exitStatus, key)
            case .busy_unit_seconds: try sink.put(busyUnitSeconds, key)
            case .input_tokens: try sink.put(inputTokens, key)
            case .output_tokens: try sink.put(outputTokens, key)
            case .cpu_seconds: try sink.put(cpuSeconds, key)
            case .peak_memory_bytes: try sink.put(peakMemoryBytes, key)
            case .slurm_job_id: try sink.put(slurmJobId, key)
            case .slurm_state: try sink.put(slurmState, key)
            case .metrics: try sink.put(metrics, key)
            case .hyperparameters: try sink.put(hyperparameters.map(HyperparameterFields.init), key)
            }
        }
    }

    /// Hyperparameters as a job shows them, with the wire's own keys.
    struct HyperparameterFields: Encodable {
        var values: Hyperparameters

        init(_ values: Hyperparameters) { self.values = values }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: HyperparameterKeys.self)
            try c.encode(values.epochs, forKey: .epochs)
            try c.encode(values.batchSize, forKey: .batch_size)
            try c.encode(values.learningRate, forKey: .learning_rate)
            try c.encode(values.warmupSteps, forKey: .warmup_steps)
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
    /// With `fields`: jobs as objects (`jobs`), or as rows of the fields' values (`rows`).
    public var shape: ListingShape

    public init(jobs: [JobView], nextCursor: String? = nil, more: Int = 0, fields: [String]? = nil, shape: ListingShape = .objects) {
        self.jobs = jobs
        self.nextCursor = nextCursor
        self.more = more
        self.fields = fields
        self.shape = shape
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
        shape = .objects
    }
}

extension JobList: SnakeCaseEncodable {
    public func encode(to encoder: any Encoder) throws {
        try encodeListingPage(jobs, as: "jobs", fields: fields, shape: shape, nextCursor: nextCursor, more: more, to: encoder)
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
