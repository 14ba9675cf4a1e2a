public import FoundationEssentials

/// Whether a compute unit can be reserved by one reservation at a time, or serves on-demand calls.
public enum UnitPool: String, Codable, Sendable, CaseIterable {
    case dedicated
    case shared
}

/// One dedicated slot of hardware: a GPU, or a CPU slice.
public struct ComputeUnit: Sendable, Equatable, Hashable {
    public var id: String
    public var kind: String
    public var device: Int?
    public var pool: UnitPool
    /// The CPUs a runner on this unit may use (`"4-7"`), when the config names them. From the
    /// config alone: the ledger keeps what is leased, not the machine's layout.
    public var cpus: String?
    /// The GPU's (or MIG instance's) UUID, from the config: runners are handed GPUs by it,
    /// since indices change across reboots and MIG reconfiguration.
    public var uuid: String?
    /// The GPU's memory, from the config; shown, never enforced.
    public var memoryMiB: Int?
    /// Cores' worth of CPU time a runner on this unit gets (`0.25`: a quarter of one core),
    /// from the config, for slices smaller than a core: a CPU quota, where `cpus` is a set.
    public var cpuShare: Double?
    /// The Slurm node it is on (`executor = "slurm"`): its runners go through sbatch there.
    /// `nil` for this host's units. From the config alone, like `cpus`.
    public var node: String?

    public init(
        id: String,
        kind: String,
        device: Int? = nil,
        pool: UnitPool,
        cpus: String? = nil,
        uuid: String? = nil,
        memoryMiB: Int? = nil,
        cpuShare: Double? = nil,
        node: String? = nil
    ) {
        self.id = id
        self.kind = kind
        self.device = device
        self.pool = pool
        self.cpus = cpus
        self.uuid = uuid
        self.memoryMiB = memoryMiB
        self.cpuShare = cpuShare
        self.node = node
    }

    /// Whether it is a GPU (or a MIG instance): any kind but `cpu` with a device or a UUID.
    public var isGPU: Bool { kind != "cpu" && (device != nil || uuid != nil) }

    /// How CUDA and the NVIDIA container runtime name it: its UUID, else its index.
    public var visibleDeviceName: String? { uuid ?? device.map(String.init) }
}

public enum Modality: String, Codable, Sendable, CaseIterable {
    case text, image, video
}

public enum Customization: String, Codable, Sendable, CaseIterable {
    case fineTuning = "fine-tuning"
    case continuedPretraining = "continued-pretraining"
    case distillation
}

public enum Purpose: String, Codable, Sendable, CaseIterable {
    case training, inference
}

/// A term the owner pays for whether the units are used or not; it runs in calendar months.
public enum Commitment: String, Codable, Sendable, CaseIterable {
    case none
    case oneMonth = "1m"
    case sixMonths = "6m"

    public var months: Int? {
        switch self {
        case .none: nil
        case .oneMonth: 1
        case .sixMonths: 6
        }
    }

    /// The end of the term that starts at `start`, counted in UTC calendar months
    /// (31 January + 1 month is 28 or 29 February, as the calendar says).
    public func termEnd(from start: Date) -> Date? {
        guard let months else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(byAdding: .month, value: months, to: start)
    }
}

/// Inclusive bounds a job's hyperparameters must fall in.
public struct HyperparameterRanges: Sendable, Equatable {
    public var epochs: ClosedRange<Int>
    public var batchSize: ClosedRange<Int>
    public var learningRate: ClosedRange<Double>
    public var warmupSteps: ClosedRange<Int>

    public static let defaults = HyperparameterRanges(
        epochs: 1...5,
        batchSize: 1...256,
        learningRate: 0.000001...0.0001,
        warmupSteps: 0...20
    )

    public init(epochs: ClosedRange<Int>, batchSize: ClosedRange<Int>, learningRate: ClosedRange<Double>, warmupSteps: ClosedRange<Int>) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
    }
}

/// Prices in the config's currency.
public struct ModelPrice: Sendable, Equatable {
    /// Per model unit and hour, by commitment: longer terms are cheaper.
    public var modelUnitHour: [Commitment: Double]
    public var onDemandInputPer1k: Double?
    public var onDemandOutputPer1k: Double?

    public init(modelUnitHour: [Commitment: Double], onDemandInputPer1k: Double? = nil, onDemandOutputPer1k: Double? = nil) {
        self.modelUnitHour = modelUnitHour
        self.onDemandInputPer1k = onDemandInputPer1k
        self.onDemandOutputPer1k = onDemandOutputPer1k
    }
}

/// An entry of the catalog: a base model from the config, or a custom model made by a job.
public struct Model: Sendable, Equatable {
    public var id: String
    public var provider: String
    public var inputModalities: [Modality]
    public var outputModalities: [Modality]
    public var maxTokens: Int
    public var onDemand: Bool
    public var customizations: [Customization]
    public var hyperparameters: HyperparameterRanges
    public var unitsPerModelUnit: Int
    public var tokensPerMinute: Int
    public var price: ModelPrice
    /// Set for custom models: the base whose sizing and capabilities it inherits.
    public var baseModel: String?
    public var owner: String?
    /// For custom models: how it was made, where its artifacts are, its final metrics
    /// (`training_loss`, `validation_loss`) and the job that made it.
    public var customization: Customization?
    public var artifactDir: String?
    public var finalMetrics: [String: Double]
    public var jobID: Int64?
    public var createdAt: Date?

    public var isCustom: Bool { baseModel != nil }
    /// The base model this one belongs to: itself for a base model.
    public var family: String { baseModel ?? id }

    public init(
        id: String,
        provider: String,
        inputModalities: [Modality],
        outputModalities: [Modality],
        maxTokens: Int,
        onDemand: Bool,
        customizations: [Customization],
        hyperparameters: HyperparameterRanges = .defaults,
        unitsPerModelUnit: Int,
        tokensPerMinute: Int,
        price: ModelPrice,
        baseModel: String? = nil,
        owner: String? = nil,
        customization: Customization? = nil,
        artifactDir: String? = nil,
        finalMetrics: [String: Double] = [:],
        jobID: Int64? = nil,
        createdAt: Date? = nil
    ) {
        self.id = id
        self.provider = provider
        self.inputModalities = inputModalities
        self.outputModalities = outputModalities
        self.maxTokens = maxTokens
        self.onDemand = onDemand
        self.customizations = customizations
        self.hyperparameters = hyperparameters
        self.unitsPerModelUnit = unitsPerModelUnit
        self.tokensPerMinute = tokensPerMinute
        self.price = price
        self.baseModel = baseModel
        self.owner = owner
        self.customization = customization
        self.artifactDir = artifactDir
        self.finalMetrics = finalMetrics
        self.jobID = jobID
        self.createdAt = createdAt
    }

    /// A custom model made from `base`: it inherits the base's sizing and capabilities, and is
    /// never served on demand.
    public static func custom(
        id: String,
        base: Model,
        owner: String,
        customization: Customization,
        artifactDir: String,
        finalMetrics: [String: Double],
        jobID: Int64,
        createdAt: Date
    ) -> Model {
        var model = base
        model.id = id
        model.onDemand = false
        model.customizations = []
        model.baseModel = base.id
        model.owner = owner
        model.customization = customization
        model.artifactDir = artifactDir
        model.finalMetrics = finalMetrics
        model.jobID = jobID
        model.createdAt = createdAt
        return model
    }
}

public enum ReservationStatus: String, Codable, Sendable, CaseIterable {
    /// Waiting for its start time, or (with `waiting`) queued for capacity.
    case pending
    case active
    case expired
    case deleted
    /// Its serve process could not start.
    case failed

    public var isTerminal: Bool {
        switch self {
        case .pending, .active: false
        case .expired, .deleted, .failed: true
        }
    }
}

/// Provisioned throughput: dedicated units held for one model, for a window of time.
public struct Reservation: Sendable, Equatable {
    /// Stable identity: names can be changed by `update`, leases point at this.
    public var id: Int64
    public var name: String
    public var owner: String
    public var model: String
    public var purpose: Purpose
    public var modelUnits: Int
    /// Compute units held: `modelUnits × units_per_model_unit`, fixed when admitted.
    public var units: Int
    public var commitment: Commitment
    public var start: Date
    /// `nil` is open-ended.
    public var end: Date?
    /// The length asked for with `--duration`; kept so a reservation queued with `--wait`
    /// gets its end when it finally starts.
    public var duration: TimeInterval?
    public var status: ReservationStatus
    /// Queued for capacity (`--wait`): holds nothing in the calendar until it starts.
    public var waiting: Bool
    public var spillover: Bool
    public var createdAt: Date
    /// When it became expired, deleted or failed, and why.
    public var endedAt: Date?
    public var statusReason: String?
    /// The executor whose units it was admitted on (`""`: this host's, `"slurm"`): a
    /// reservation runs on units of one executor, so it is booked against that one's units.
    /// `nil` for a reservation admitted before executors were recorded, or queued (`--wait`).
    public var executor: String?
    /// The units it will be given when it starts, chosen when it was admitted: set for a
    /// reservation on units whose executor reserves named hosts ahead of time (Slurm), so the
    /// hosts reserved there and the units berth hands out are the same. Empty: any free units
    /// of its executor, chosen when it starts.
    public var pinnedUnits: [String]

    public init(
        id: Int64,
        name: String,
        owner: String,
        model: String,
        purpose: Purpose,
        modelUnits: Int,
        units: Int,
        commitment: Commitment,
        start: Date,
        end: Date?,
        duration: TimeInterval? = nil,
        status: ReservationStatus,
        waiting: Bool = false,
        spillover: Bool = false,
        createdAt: Date,
        endedAt: Date? = nil,
        statusReason: String? = nil,
        executor: String? = nil,
        pinnedUnits: [String] = []
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.model = model
        self.purpose = purpose
        self.modelUnits = modelUnits
        self.units = units
        self.commitment = commitment
        self.start = start
        self.end = end
        self.duration = duration
        self.status = status
        self.waiting = waiting
        self.spillover = spillover
        self.createdAt = createdAt
        self.endedAt = endedAt
        self.statusReason = statusReason
        self.executor = executor
        self.pinnedUnits = pinnedUnits
    }

    /// Whether its window meets `[from, to)` (`nil`: open-ended).
    public func overlaps(_ from: Date, _ to: Date?) -> Bool {
        (end.map { $0 > from } ?? true) && (to.map { start < $0 } ?? true)
    }

    /// Whether it holds capacity in the calendar: active, or admitted for a future start.
    public var holdsCapacity: Bool {
        status == .active || (status == .pending && !waiting)
    }

    /// The end of a window that starts at `start`, from the commitment or the asked duration.
    public static func end(start: Date, commitment: Commitment, duration: TimeInterval?) -> Date? {
        if let termEnd = commitment.termEnd(from: start) { return termEnd }
        return duration.map { start.addingTimeInterval($0) }
    }
}

/// One unit held by one reservation over `[start, end)`; `end` is `nil` while it is held.
public struct Lease: Sendable, Equatable, Hashable {
    public var unit: String
    public var reservationID: Int64
    public var start: Date
    public var end: Date?

    public init(unit: String, reservationID: Int64, start: Date, end: Date?) {
        self.unit = unit
        self.reservationID = reservationID
        self.start = start
        self.end = end
    }
}

/// A list of CPUs as the kernel writes it (`cpuset.cpus`, `Cpus_allowed_list`): "0-3,8".
public enum CPUList {
    public static func isValid(_ text: String) -> Bool {
        !text.isEmpty
            && text.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { part in
                let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0 else { return false }
                guard bounds.count == 2 else { return true }
                guard let high = Int(bounds[1]) else { return false }
                return high >= low
            }
    }
}
