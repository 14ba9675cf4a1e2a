public import FoundationEssentials

public enum JobKind: String, Codable, Sendable, CaseIterable {
    case fineTuning = "fine-tuning"
    case continuedPretraining = "continued-pretraining"
    case distillation
    case batchInference = "batch-inference"

    /// The customization a training kind is; `nil` for batch inference.
    public var customization: Customization? {
        switch self {
        case .fineTuning: .fineTuning
        case .continuedPretraining: .continuedPretraining
        case .distillation: .distillation
        case .batchInference: nil
        }
    }

    /// The reservation purpose a job of this kind runs under.
    public var purpose: Purpose { self == .batchInference ? .inference : .training }

    /// The string fields every record of this kind's data must have.
    public var requiredFields: [String] {
        switch self {
        case .fineTuning: ["prompt", "completion"]
        case .continuedPretraining: ["input"]
        case .distillation: ["prompt"]
        case .batchInference: ["recordId", "modelInput"]
        }
    }
}

public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, completed, failed, stopping, stopped

    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .stopped: true
        case .queued, .running, .stopping: false
        }
    }
}

/// Why berthd itself ended a job, stored as its reason and its end event's detail. Other
/// reasons (a stop by a user, a runner's exit status) are free text for people.
public enum JobEndReason: String, Sendable, CaseIterable {
    /// Its reservation expired or was released.
    case reservationEnded = "reservation-ended"
    /// berthd found it running when it started, with no runner left to finish it.
    case daemonRestart = "daemon-restart"
    /// berthd stopped while it ran.
    case daemonStop = "daemon-stop"
    /// The kernel killed its runner for going over the memory its units allow.
    case outOfMemory = "out-of-memory"
}

/// A job on a reservation's units: queued in its reservation's queue, then run by a runner.
public struct Job: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    public var kind: JobKind
    public var reservationID: Int64
    public var status: JobStatus
    public var priority: Int
    public var modelUnits: Int
    /// Compute units it needs: `modelUnits × units_per_model_unit`.
    public var unitsNeeded: Int
    /// The units it runs on, set when it starts.
    public var units: [String]
    public var submittedAt: Date

    public init(
        id: Int64,
        name: String,
        owner: String,
        kind: JobKind,
        reservationID: Int64,
        status: JobStatus,
        priority: Int,
        modelUnits: Int,
        unitsNeeded: Int,
        units: [String] = [],
        submittedAt: Date
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.kind = kind
        self.reservationID = reservationID
        self.status = status
        self.priority = priority
        self.modelUnits = modelUnits
        self.unitsNeeded = unitsNeeded
        self.units = units
        self.submittedAt = submittedAt
    }

    /// Queue order: higher priority first, then earlier submission, then lower id.
    public static func queueOrder(_ a: Job, _ b: Job) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.submittedAt != b.submittedAt { return a.submittedAt < b.submittedAt }
        return a.id < b.id
    }
}

/// Checks hyperparameters against a model's ranges.
public enum HyperparameterCheck {
    /// Values used when a submission leaves one out, clamped into the model's range.
    public static func defaults(for ranges: HyperparameterRanges) -> (epochs: Int, batchSize: Int, learningRate: Double, warmupSteps: Int) {
        (clamp(2, ranges.epochs), clamp(8, ranges.batchSize), clamp(0.00001, ranges.learningRate), clamp(0, ranges.warmupSteps))
    }

    /// `0.000001`, not `1e-06`: as people write learning rates.
    public static func plainDecimal(_ value: Double) -> String {
        var text = CFormat.string("%.12f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    static func clamp<T: Comparable>(_ value: T, _ range: ClosedRange<T>) -> T { min(max(value, range.lowerBound), range.upperBound) }

    /// Every value outside its range, each naming the field and the range.
    public static func problems(
        epochs: Int,
        batchSize: Int,
        learningRate: Double,
        warmupSteps: Int,
        ranges: HyperparameterRanges,
        model: String
    ) -> [FieldError] {
        var problems: [FieldError] = []
        func check<T: Comparable>(_ field: String, _ value: T, _ range: ClosedRange<T>, _ show: (T) -> String) {
            if !range.contains(value) {
                problems.append(
                    FieldError(
                        field: field,
                        message:
                            "\(show(value)) is outside \(model)'s range \(show(range.lowerBound))–\(show(range.upperBound)); choose a value in it"
                    )
                )
            }
        }
        check("epochs", epochs, ranges.epochs, String.init)
        check("batch_size", batchSize, ranges.batchSize, String.init)
        if !learningRate.isFinite {
            problems.append(FieldError(field: "learning_rate", message: "must be a finite number"))
        } else {
            check("learning_rate", learningRate, ranges.learningRate, plainDecimal)
        }
        check("warmup_steps", warmupSteps, ranges.warmupSteps, String.init)
        return problems
    }
}

/// The hyperparameters a customization job runs with.
public struct HyperparameterValues: Codable, Sendable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var warmupSteps: Int

    public init(epochs: Int, batchSize: Int, learningRate: Double, warmupSteps: Int) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
    }
}
