import BerthCore
import Foundation
import GRDB

// One record type per table; core types stay free of GRDB. Swift optionals match NOT NULL.

struct UnitRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "units"

    /// Column names, spelled out: GRDB's snake-case conversion cost more than the query on hot reads.
    enum CodingKeys: String, CodingKey {
        case id, kind, device, pool, retired, position
    }

    var id: String
    var kind: String
    var device: Int?
    var pool: UnitPool
    /// Dropped from the config; kept so old leases still point at something.
    var retired: Bool
    var position: Int

    init(_ unit: ComputeUnit, position: Int) {
        id = unit.id
        kind = unit.kind
        device = unit.device
        pool = unit.pool
        retired = false
        self.position = position
    }

    var unit: ComputeUnit {
        ComputeUnit(id: id, kind: kind, device: device, pool: pool)
    }
}

struct ModelRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "models"
    /// Times as GRDB writes them, made without its `DateFormatter` (`LedgerTime`).
    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .custom { $0.stored } }

    /// Column names, spelled out: GRDB's snake-case conversion cost more than the query on hot reads.
    enum CodingKeys: String, CodingKey {
        case id, provider
        case inputModalities = "input_modalities"
        case outputModalities = "output_modalities"
        case maxTokens = "max_tokens"
        case onDemand = "on_demand"
        case customizations, hyperparameters
        case unitsPerModelUnit = "units_per_model_unit"
        case tokensPerMinute = "tokens_per_minute"
        case price
        case baseModel = "base_model"
        case owner, retired
        case createdAt = "created_at"
        case customization
        case artifactDir = "artifact_dir"
        case jobId = "job_id"
        case finalMetrics = "final_metrics"
    }

    struct Range<T: Codable & Comparable>: Codable {
        var min: T
        var max: T
    }
    struct Hyperparameters: Codable {
        var epochs: Range<Int>
        var batchSize: Range<Int>
        var learningRate: Range<Double>
        var warmupSteps: Range<Int>
    }
    struct Price: Codable {
        /// Keyed by commitment; JSON objects take only string keys.
        var modelUnitHour: [String: Double]
        var onDemandInputPer1k: Double?
        var onDemandOutputPer1k: Double?

        init(modelUnitHour: [String: Double], onDemandInputPer1k: Double?, onDemandOutputPer1k: Double?) {
            self.modelUnitHour = modelUnitHour
            self.onDemandInputPer1k = onDemandInputPer1k
            self.onDemandOutputPer1k = onDemandOutputPer1k
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            modelUnitHour = try c.decode([String: Double].self, forKey: .modelUnitHour)
            if let unknown = modelUnitHour.keys.first(where: { Commitment(rawValue: $0) == nil }) {
                throw DecodingError.dataCorruptedError(
                    forKey: .modelUnitHour,
                    in: c,
                    debugDescription: "'\(unknown)' is not a commitment"
                )
            }
            onDemandInputPer1k = try c.decodeIfPresent(Double.self, forKey: .onDemandInputPer1k)
            onDemandOutputPer1k = try c.decodeIfPresent(Double.self, forKey: .onDemandOutputPer1k)
        }
    }

    var id: String
    var provider: String
    var inputModalities: [Modality]
    var outputModalities: [Modality]
    var maxTokens: Int
    var onDemand: Bool
    var customizations: [Customization]
    var hyperparameters: Hyperparameters
    var unitsPerModelUnit: Int
    var tokensPerMinute: Int
    var price: Price
    var baseModel: String?
    var owner: String?
    /// Dropped from the config; kept so reservations made for it can still be shown.
    var retired: Bool
    var createdAt: Date
    var customization: Customization?
    var artifactDir: String?
    var jobId: Int64?
    var finalMetrics: [String: Double]?

    init(_ model: Model, createdAt: Date) {
        id = model.id
        provider = model.provider
        inputModalities = model.inputModalities
        outputModalities = model.outputModalities
        maxTokens = model.maxTokens
        onDemand = model.onDemand
        customizations = model.customizations
        let h = model.hyperparameters
        hyperparameters = Hyperparameters(
            epochs: .init(min: h.epochs.lowerBound, max: h.epochs.upperBound),
            batchSize: .init(min: h.batchSize.lowerBound, max: h.batchSize.upperBound),
            learningRate: .init(min: h.learningRate.lowerBound, max: h.learningRate.upperBound),
            warmupSteps: .init(min: h.warmupSteps.lowerBound, max: h.warmupSteps.upperBound)
        )
        unitsPerModelUnit = model.unitsPerModelUnit
        tokensPerMinute = model.tokensPerMinute
        price = Price(
            modelUnitHour: Dictionary(uniqueKeysWithValues: model.price.modelUnitHour.map { ($0.key.rawValue, $0.value) }),
            onDemandInputPer1k: model.price.onDemandInputPer1k,
            onDemandOutputPer1k: model.price.onDemandOutputPer1k
        )
        baseModel = model.baseModel
        owner = model.owner
        retired = false
        self.createdAt = createdAt
        customization = model.customization
        artifactDir = model.artifactDir
        jobId = model.jobID
        finalMetrics = model.isCustom ? model.finalMetrics : nil
    }

    var model: Model {
        func range<T>(_ r: Range<T>) -> ClosedRange<T> { Swift.min(r.min, r.max)...Swift.max(r.min, r.max) }
        return Model(
            id: id,
            provider: provider,
            inputModalities: inputModalities,
            outputModalities: outputModalities,
            maxTokens: maxTokens,
            onDemand: onDemand,
            customizations: customizations,
            hyperparameters: HyperparameterRanges(
                epochs: range(hyperparameters.epochs),
                batchSize: range(hyperparameters.batchSize),
                learningRate: range(hyperparameters.learningRate),
                warmupSteps: range(hyperparameters.warmupSteps)
            ),
            unitsPerModelUnit: unitsPerModelUnit,
            tokensPerMinute: tokensPerMinute,
            price: ModelPrice(
                modelUnitHour: Dictionary(
                    uniqueKeysWithValues: price.modelUnitHour.compactMap { k, v in
                        Commitment(rawValue: k).map { ($0, v) }
                    }
                ),
                onDemandInputPer1k: price.onDemandInputPer1k,
                onDemandOutputPer1k: price.onDemandOutputPer1k
            ),
            baseModel: baseModel,
            owner: owner,
            customization: customization,
            artifactDir: artifactDir,
            finalMetrics: finalMetrics ?? [:],
            jobID: jobId,
            createdAt: baseModel == nil ? nil : createdAt
        )
    }
}

/// A row of `reservations`, read by position (`init(row:)`) and written by one prepared
/// statement (`LedgerTransaction.insert(_:)`).
struct ReservationRecord: FetchableRecord {
    var id: Int64?
    var name: String
    var owner: String
    var model: String
    var purpose: Purpose
    var modelUnits: Int
    var units: Int
    var commitment: Commitment
    var start: Date
    var end: Date?
    var duration: Double?
    var status: ReservationStatus
    var waiting: Bool
    var spillover: Bool
    var createdAt: Date
    /// When it became expired, deleted or failed.
    var endedAt: Date?
    var statusReason: String?
    var executor: String?
    /// Comma-separated unit ids (unit ids hold no commas); `nil` when none are pinned.
    var pinnedUnits: String?

    /// Every column `init(row:)` reads, in its order. Reads name these columns (never `SELECT *`):
    /// reservations are read on every scheduling cycle and every submission, where decoding
    /// through Codable or by column name cost more than the query. They are written only by
    /// `LedgerTransaction.insert(_:)`'s statement: a column added to the record is added to both.
    static let selection = """
        id, name, owner, model, purpose, model_units, units, commitment, start, "end", duration, status, waiting, \
        spillover, created_at, ended_at, status_reason, executor, pinned_units
        """

    /// A row of `SELECT \(selection)`: the one way a reservation is read.
    init(row: Row) throws {
        id = row[0]
        name = row[1]
        owner = row[2]
        model = row[3]
        purpose = try row.stored(atIndex: 4)
        modelUnits = row[5]
        units = row[6]
        commitment = try row.stored(atIndex: 7)
        start = row[8]
        end = row[9]
        duration = row[10]
        status = try row.stored(atIndex: 11)
        waiting = row[12]
        spillover = row[13]
        createdAt = row[14]
        endedAt = row[15]
        statusReason = row[16]
        executor = row[17]
        pinnedUnits = row[18]
    }

    init(_ r: Reservation) {
        id = r.id > 0 ? r.id : nil
        name = r.name
        owner = r.owner
        model = r.model
        purpose = r.purpose
        modelUnits = r.modelUnits
        units = r.units
        commitment = r.commitment
        start = r.start
        end = r.end
        duration = r.duration
        status = r.status
        waiting = r.waiting
        spillover = r.spillover
        createdAt = r.createdAt
        endedAt = r.endedAt
        statusReason = r.statusReason
        executor = r.executor
        pinnedUnits = r.pinnedUnits.isEmpty ? nil : r.pinnedUnits.joined(separator: ",")
    }

    var reservation: Reservation {
        Reservation(
            id: id ?? 0,
            name: name,
            owner: owner,
            model: model,
            purpose: purpose,
            modelUnits: modelUnits,
            units: units,
            commitment: commitment,
            start: start,
            end: end,
            duration: duration,
            status: status,
            waiting: waiting,
            spillover: spillover,
            createdAt: createdAt,
            endedAt: endedAt,
            statusReason: statusReason,
            executor: executor,
            pinnedUnits: pinnedUnits.map { $0.split(separator: ",").map(String.init) } ?? []
        )
    }
}

struct LeaseRecord: Codable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "leases"

    /// Column names, spelled out: GRDB's snake-case conversion cost more than the query on hot reads.
    enum CodingKeys: String, CodingKey {
        case id
        case unitId = "unit_id"
        case reservationId = "reservation_id"
        case start, end, held
    }

    var id: Int64?
    var unitId: String
    var reservationId: Int64
    var start: Date
    /// The planned end while held (`nil`: open-ended); the real end once closed.
    var end: Date?
    /// Whether the lease still holds its unit.
    var held: Bool

    /// Decoded by hand, as reservations are: every held lease is read on each cycle.
    init(row: Row) throws {
        id = row["id"]
        unitId = row["unit_id"]
        reservationId = row["reservation_id"]
        start = row["start"]
        end = row["end"]
        held = row["held"]
    }

    /// Written by hand: every reservation that starts inserts one per unit.
    func encode(to container: inout PersistenceContainer) {
        container["id"] = id
        container["unit_id"] = unitId
        container["reservation_id"] = reservationId
        container["start"] = start.stored
        container["end"] = end.stored
        container["held"] = held
    }

    init(id: Int64?, unitId: String, reservationId: Int64, start: Date, end: Date?, held: Bool) {
        self.id = id
        self.unitId = unitId
        self.reservationId = reservationId
        self.start = start
        self.end = end
        self.held = held
    }

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    var lease: Lease {
        Lease(unit: unitId, reservationID: reservationId, start: start, end: end)
    }
}

struct IdempotencyRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "idempotency_keys"
    /// Times as GRDB writes them, made without its `DateFormatter` (`LedgerTime`).
    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .custom { $0.stored } }

    /// Column names, spelled out: GRDB's snake-case conversion cost more than the query on hot reads.
    enum CodingKeys: String, CodingKey {
        case owner, key, route, request, status, response
        case createdAt = "created_at"
    }

    var owner: String
    var key: String
    var route: String
    var request: Data
    var status: Int
    var response: Data
    var createdAt: Date
}
