import BerthCore
public import FoundationEssentials

/// JSON as the control socket speaks it: snake_case keys, RFC 3339 times in UTC.
public enum Wire {
    /// Times are kept to the millisecond: a time with a fraction of a second is written with
    /// its milliseconds (`2026-12-04T18:41:18.123Z`), a whole-second one as it always was.
    public static func formatDate(_ date: Date) -> String {
        // 12.9996 s is 13.000 to the millisecond: a whole second, written as 13, never 12.
        let rounded = date.forTruncatingFormatter
        if date.isWholeSecond { return RFC3339.wholeSeconds(rounded) ?? Date.ISO8601FormatStyle().format(rounded) }
        return RFC3339.milliseconds(date) ?? Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(rounded)
    }

    static var dateEncoding: JSONEncoder.DateEncodingStrategy {
        .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
    }

    /// RFC 3339 with or without a fraction of a second.
    public static var dateDecoding: JSONDecoder.DateDecodingStrategy {
        .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = TimeExpression.parseRFC3339(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "'\(text)' is not an RFC 3339 time, such as 2026-12-01T09:00:00Z"
                )
            }
            return date
        }
    }

    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = dateEncoding
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = dateDecoding
        return decoder
    }

    /// Encodes an answer. A `SnakeCaseEncodable` value writes its own snake_case keys, so
    /// the encoder need not convert them: converting every key was half the cost of encoding
    /// a job. The bytes are the same either way.
    public static func encode(_ value: some Encodable) throws -> Data {
        guard value is any SnakeCaseEncodable else { return try encoder().encode(value) }
        return try writtenKeysEncoder().encode(value)
    }

    /// Encodes a value whose type is known to write its own keys, without `encode(_:)`'s check
    /// at run time: that check is a conformance lookup, a scan of every record in the binary,
    /// which a CLI command would pay for each type it sends.
    public static func encode(asWritten value: some SnakeCaseEncodable) throws -> Data {
        try writtenKeysEncoder().encode(value)
    }

    private static func writtenKeysEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = dateEncoding
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Decodes an answer: a `KeysAsSent` type with no key conversion, any other with
    /// `decoder()`.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        guard type is any KeysAsSent.Type else { return try decoder().decode(type, from: data) }
        return try keysAsSentDecoder().decode(type, from: data)
    }

    /// Decodes a type known to be `KeysAsSent`, without `decode(_:from:)`'s check at run time
    /// (a conformance lookup, as for `encode(asWritten:)`).
    public static func decode<T: KeysAsSent>(asSent type: T.Type, from data: Data) throws -> T {
        try keysAsSentDecoder().decode(type, from: data)
    }

    private static func keysAsSentDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = dateDecoding
        return decoder
    }

    /// `model_units` → `modelUnits`, as `convertFromSnakeCase` does.
    public static func camelCase(_ key: String) -> String {
        let parts = key.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return key }
        return parts.enumerated().map { i, part in i == 0 ? String(part) : part.prefix(1).uppercased() + part.dropFirst() }.joined()
    }

    /// `modelUnits` → `model_units`, for naming a field in an error as the client wrote it.
    public static func snakeCase(_ key: String) -> String {
        var out = ""
        for ch in key {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }
}

/// A wire type whose `encode(to:)` writes snake_case keys itself, nested values included
/// (`Wire.encode` then skips the key conversion). It still decodes with `Wire.decoder()`.
public protocol SnakeCaseEncodable: Encodable {}

/// Where a view's fields go, one call per field: the keys of a JSON object, or the values of a
/// listing's row (`shape=rows`), in the order of its `fields`, `null` for an absent one.
///
/// Strings and numbers have their own requirements, so they reach the encoder's own methods for
/// them instead of its generic one, which checks each value's type at run time.
protocol FieldSink<Key> {
    associatedtype Key: CodingKey
    mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws
    mutating func put(_ value: String?, _ key: Key) throws
    mutating func put(_ value: Int?, _ key: Key) throws
    mutating func put(_ value: Int64?, _ key: Key) throws
    mutating func put(_ value: Double?, _ key: Key) throws
    mutating func put(_ value: Bool?, _ key: Key) throws
    /// A time as the encoders' date strategy writes it (`Wire.formatDate`), without the
    /// strategy's closure and single-value container per date.
    mutating func put(_ value: Date?, _ key: Key) throws
    mutating func put(_ value: [String]?, _ key: Key) throws
}

/// A view written as an object: an absent field is left out.
struct ObjectFields<Key: CodingKey>: FieldSink {
    var container: KeyedEncodingContainer<Key>

    mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: String?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: Int?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: Int64?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: Double?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: Bool?, _ key: Key) throws { try container.encodeIfPresent(value, forKey: key) }
    mutating func put(_ value: Date?, _ key: Key) throws { try container.encodeIfPresent(value.map(Wire.formatDate), forKey: key) }
    mutating func put(_ value: [String]?, _ key: Key) throws {
        guard let value else { return }
        var list = container.nestedUnkeyedContainer(forKey: key)
        for text in value { try list.encode(text) }
    }
}

/// A view written as a row: its fields' values in order, `null` for an absent one.
struct RowFields<Key: CodingKey>: FieldSink {
    var container: any UnkeyedEncodingContainer

    mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: String?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: Int?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: Int64?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: Double?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: Bool?, _ key: Key) throws {
        if let value { try container.encode(value) } else { try container.encodeNil() }
    }
    mutating func put(_ value: Date?, _ key: Key) throws {
        if let value { try container.encode(Wire.formatDate(value)) } else { try container.encodeNil() }
    }
    mutating func put(_ value: [String]?, _ key: Key) throws {
        guard let value else { return try container.encodeNil() }
        var list = container.nestedUnkeyedContainer()
        for text in value { try list.encode(text) }
    }
}

/// How a listing with `fields` writes its items (`shape`): as objects, or as rows, arrays of
/// the fields' values in their order, which are cheaper to write and to read: a row repeats
/// no key, and a reader builds no dictionary of keys per item.
public enum ListingShape: String, Sendable, CaseIterable {
    case objects, rows
}

/// A view whose fields go out one at a time through a `FieldSink`: the same switch writes it as
/// an object and as a row.
protocol FieldedView {
    associatedtype WireKeys: CodingKey & CaseIterable & Equatable
    func put(_ fields: [WireKeys], into sink: inout some FieldSink<WireKeys>) throws
}

/// A view as an object with only `fields` (every field: `WireKeys.allCases`).
struct ObjectOf<View: FieldedView>: Encodable {
    var view: View
    var fields: [View.WireKeys]

    func encode(to encoder: any Encoder) throws {
        var sink = ObjectFields(container: encoder.container(keyedBy: View.WireKeys.self))
        try view.put(fields, into: &sink)
    }
}

/// A page of a listing as berthd writes it: `items` under `name` (or under `rows` with
/// `shape=rows`), each with only the `fields` named when they are, then the cursor and how
/// many more match. One writer for every listing, so their pages cannot drift apart.
func encodeListingPage<View: FieldedView & Encodable>(
    _ items: [View],
    as name: String,
    fields: [String]?,
    shape: ListingShape,
    nextCursor: String?,
    more: Int,
    to encoder: any Encoder
) throws {
    var c = encoder.container(keyedBy: NamedKey.self)
    if let fields {
        let named = wireKeys(fields, as: View.WireKeys.self)
        // Each item straight into a container of the page's, with no wrapper per item: a
        // thousand copies of a view (and their retains) were a tenth of a page's CPU.
        var list = c.nestedUnkeyedContainer(forKey: NamedKey(shape == .rows ? "rows" : name))
        for item in items {
            switch shape {
            case .objects:
                var sink = ObjectFields(container: list.nestedContainer(keyedBy: View.WireKeys.self))
                try item.put(named, into: &sink)
            case .rows:
                var sink = RowFields<View.WireKeys>(container: list.nestedUnkeyedContainer())
                try item.put(named, into: &sink)
            }
        }
        try c.encode(fields, forKey: NamedKey("fields"))
    } else {
        try c.encode(items, forKey: NamedKey(name))
    }
    try c.encodeIfPresent(nextCursor, forKey: NamedKey("next_cursor"))
    try c.encode(more, forKey: NamedKey("more"))
}

/// The names `fields` gives, as a view's keys, each once.
func wireKeys<Key: CodingKey & Equatable>(_ fields: [String], as: Key.Type) -> [Key] {
    var keys: [Key] = []
    for key in fields.compactMap(Key.init(stringValue:)) where !keys.contains(key) { keys.append(key) }
    return keys
}

/// A request body whose every field is known: anything else is refused, naming the field.
public protocol StrictBody: Codable, Sendable {
    associatedtype CodingKeys: CodingKey & CaseIterable
}

/// The error codes of the API. The CLI maps the HTTP status to its exit code.
public enum ErrorCode: String, Codable, Sendable {
    case invalidArgument = "invalid-argument"
    case notFound = "not-found"
    case forbidden
    case insufficientCapacity = "insufficient-capacity"
    case commitmentActive = "commitment-active"
    case nameTaken = "name-taken"
    case invalidState = "invalid-state"
    case idempotencyKeyReused = "idempotency-key-reused"
    case payloadTooLarge = "payload-too-large"
    case onDemandNotSupported = "on-demand-not-supported"
    case unsupportedModality = "unsupported-modality"
    case throttled
    case shuttingDown = "shutting-down"
    /// A user's queued jobs are at `[limits] max_queued_jobs_per_user`.
    case tooManyQueuedJobs = "too-many-queued-jobs"
    /// The control socket serves `[limits] max_connections` already.
    case tooManyConnections = "too-many-connections"
    /// A request did not arrive whole within `[limits] request_timeout_seconds`.
    case requestTimeout = "request-timeout"
    /// The ledger's file system is full: the change was not recorded, and none will be until
    /// there is room. Nothing recorded before is lost.
    case ledgerFull = "ledger-full"
    case `internal`

    public var httpStatus: Int {
        switch self {
        case .invalidArgument: 400
        case .forbidden: 403
        case .notFound: 404
        case .insufficientCapacity, .commitmentActive, .nameTaken, .invalidState, .idempotencyKeyReused,
            .onDemandNotSupported, .unsupportedModality, .tooManyQueuedJobs:
            409
        case .requestTimeout: 408
        case .payloadTooLarge: 413
        case .throttled: 429
        case .shuttingDown, .tooManyConnections, .ledgerFull: 503
        case .internal: 500
        }
    }
}

public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
    }

    public var error: Detail

    public init(code: String, message: String) {
        self.error = Detail(code: code, message: message)
    }
}

/// Exit codes of the CLI (SPEC.md).
public enum ExitStatus: Int32, Sendable {
    case success = 0
    case failure = 1
    case usage = 2
    case notFound = 3
    case refused = 4
    case throttled = 5
    case unreachable = 6

    public init(httpStatus: Int) {
        switch httpStatus {
        case 200..<300: self = .success
        case 400, 413, 422: self = .usage
        case 404: self = .notFound
        case 403, 409: self = .refused
        case 429: self = .throttled
        default: self = .failure
        }
    }
}

// MARK: - Bodies

public struct HealthView: Codable, Sendable, Equatable {
    public struct UnitCounts: Codable, Sendable, Equatable {
        public var dedicated: Int
        public var shared: Int
        public var leased: Int
        public var free: Int
        public init(dedicated: Int, shared: Int, leased: Int, free: Int) {
            self.dedicated = dedicated
            self.shared = shared
            self.leased = leased
            self.free = free
        }
    }
    public struct ReservationCounts: Codable, Sendable, Equatable {
        public var pending: Int
        public var active: Int
        public init(pending: Int, active: Int) {
            self.pending = pending
            self.active = active
        }
    }

    /// Whether the ledger takes writes. `folder` is where to make room, given only when full.
    public struct LedgerState: Codable, Sendable, Equatable {
        public var full: Bool
        public var folder: String?
        public init(full: Bool, folder: String? = nil) {
            self.full = full
            self.folder = folder
        }
    }

    public var status: String
    public var version: String
    public var startedAt: Date
    public var uptimeSeconds: Int
    public var units: UnitCounts
    public var reservations: ReservationCounts
    /// Optional so that the CLI still reads a berthd that does not send it.
    public var ledger: LedgerState?
    /// What the kernel confines runners with: `cpu yes, memory yes, devices no — not root`.
    public var confinement: String?

    public init(
        status: String,
        version: String,
        startedAt: Date,
        uptimeSeconds: Int,
        units: UnitCounts,
        reservations: ReservationCounts,
        ledger: LedgerState? = nil
    ) {
        self.status = status
        self.version = version
        self.startedAt = startedAt
        self.uptimeSeconds = uptimeSeconds
        self.units = units
        self.reservations = reservations
        self.ledger = ledger
    }

    /// Its own snake_case keys, so the CLI reads `berth status`'s answer with no key conversion:
    /// with `convertFromSnakeCase`, JSONDecoder also looks up a protocol conformance for each
    /// nested type, a scan of every record in the binary each, a tenth of the command.
    enum CodingKeys: String, CodingKey {
        case status, version, units, reservations, ledger, confinement
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
    }
}

extension HealthView: KeysAsSent, SnakeCaseEncodable {}

public struct UnitView: Codable, Sendable, Equatable {
    public var id: String
    public var kind: String
    public var device: Int?
    public var pool: String
    /// The reservation holding it now, if any.
    public var holder: String?
    /// `lost`: the config and discovery no longer list it, and it stays only while leased.
    public var state: UnitState

    public init(id: String, kind: String, device: Int?, pool: String, holder: String?, state: UnitState = .present) {
        self.id = id
        self.kind = kind
        self.device = device
        self.pool = pool
        self.holder = holder
        self.state = state
    }
}

/// Whether a unit in the catalog is still on the machine as the config and discovery see it.
public enum UnitState: String, Codable, Sendable, CaseIterable {
    case present
    /// Gone from the config or from discovery (a GPU the driver no longer lists) while a
    /// lease holds it: the lease is kept, and the unit leaves when it ends.
    case lost
}

public struct UnitList: Codable, Sendable, Equatable {
    public var units: [UnitView]
    public init(units: [UnitView]) { self.units = units }
}

public struct RangeView<Bound: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var min: Bound
    public var max: Bound
    public init(min: Bound, max: Bound) {
        self.min = min
        self.max = max
    }
}

public struct HyperparametersView: Codable, Sendable, Equatable {
    public var epochs: RangeView<Int>
    public var batchSize: RangeView<Int>
    public var learningRate: RangeView<Double>
    public var warmupSteps: RangeView<Int>
    public init(epochs: RangeView<Int>, batchSize: RangeView<Int>, learningRate: RangeView<Double>, warmupSteps: RangeView<Int>) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
    }
}

/// On-demand prices are per 1,000 tokens (`..._per_thousand`: a digit inside a key would not
/// survive the snake_case conversion).
public struct PriceView: Codable, Sendable, Equatable {
    /// Per model unit and hour, keyed by commitment (`none`, `1m`, `6m`).
    public var modelUnitHour: [String: Double]
    public var onDemandInputPerThousand: Double?
    public var onDemandOutputPerThousand: Double?
    public init(modelUnitHour: [String: Double], onDemandInputPerThousand: Double?, onDemandOutputPerThousand: Double?) {
        self.modelUnitHour = modelUnitHour
        self.onDemandInputPerThousand = onDemandInputPerThousand
        self.onDemandOutputPerThousand = onDemandOutputPerThousand
    }
}

public struct ModelView: Codable, Sendable, Equatable {
    public var id: String
    public var provider: String
    public var inputModalities: [String]
    public var outputModalities: [String]
    public var maxTokens: Int
    public var onDemand: Bool
    public var customizations: [String]
    public var custom: Bool
    public var baseModel: String?
    public var owner: String?
    public var unitsPerModelUnit: Int
    public var tokensPerMinute: Int
    public var hyperparameters: HyperparametersView
    public var price: PriceView
    /// Custom models only: how and when it was made, its artifacts, final metrics, its job.
    public var customization: String?
    public var createdAt: Date?
    public var artifactDir: String?
    public var finalMetrics: [String: Double]?
    public var jobId: Int64?

    public init(
        id: String,
        provider: String,
        inputModalities: [String],
        outputModalities: [String],
        maxTokens: Int,
        onDemand: Bool,
        customizations: [String],
        custom: Bool,
        baseModel: String?,
        owner: String?,
        unitsPerModelUnit: Int,
        tokensPerMinute: Int,
        hyperparameters: HyperparametersView,
        price: PriceView,
        customization: String? = nil,
        createdAt: Date? = nil,
        artifactDir: String? = nil,
        finalMetrics: [String: Double]? = nil,
        jobId: Int64? = nil
    ) {
        self.id = id
        self.provider = provider
        self.inputModalities = inputModalities
        self.outputModalities = outputModalities
        self.maxTokens = maxTokens
        self.onDemand = onDemand
        self.customizations = customizations
        self.custom = custom
        self.baseModel = baseModel
        self.owner = owner
        self.unitsPerModelUnit = unitsPerModelUnit
        self.tokensPerMinute = tokensPerMinute
        self.hyperparameters = hyperparameters
        self.price = price
        self.customization = customization
        self.createdAt = createdAt
        self.artifactDir = artifactDir
        self.finalMetrics = finalMetrics
        self.jobId = jobId
    }
}

public struct ModelList: Codable, Sendable, Equatable {
    public var models: [ModelView]
    public init(models: [ModelView]) { self.models = models }
}

public struct LeaseView: Codable, Sendable, Equatable {
    public var unit: String
    public var reservation: String
    public var start: Date
    public var end: Date?
    public init(unit: String, reservation: String, start: Date, end: Date?) {
        self.unit = unit
        self.reservation = reservation
        self.start = start
        self.end = end
    }
}

public struct ReservationView: Codable, Sendable, Equatable {
    public var name: String
    public var owner: String
    public var model: String
    public var purpose: String
    public var modelUnits: Int
    /// Compute units held: model units × the model's units per model unit.
    public var units: Int
    public var commitment: String
    public var start: Date
    public var end: Date?
    public var status: String
    /// Queued for capacity with `--wait`.
    public var waiting: Bool
    public var spillover: Bool
    public var createdAt: Date
    /// When it was expired, released or failed, and why.
    public var endedAt: Date?
    public var statusReason: String?
    public var leases: [LeaseView]
    /// Inference reservations, in the single view: calls through it so far.
    public var invocations: InvocationCountsView?
    /// Inference reservations: times its serve process was restarted after dying.
    public var serveRestarts: Int?
    /// Inference reservations: the loopback port its serve process listens on, once ready.
    public var servePort: Int?
    /// Inference reservations, in the single view: CPU time its ended serve processes used and
    /// the most memory one held, as their cgroups counted them (absent where none was confined).
    public var serveCpuSeconds: Double?
    public var servePeakMemoryBytes: Int64?
    /// A pending reservation on Slurm units: the units it will hold from its start, chosen when
    /// it was admitted (their nodes are reserved on the cluster from then).
    public var pinnedUnits: [String]?

    public init(
        name: String,
        owner: String,
        model: String,
        purpose: String,
        modelUnits: Int,
        units: Int,
        commitment: String,
        start: Date,
        end: Date?,
        status: String,
        waiting: Bool,
        spillover: Bool,
        createdAt: Date,
        endedAt: Date? = nil,
        statusReason: String? = nil,
        leases: [LeaseView]
    ) {
        self.name = name
        self.owner = owner
        self.model = model
        self.purpose = purpose
        self.modelUnits = modelUnits
        self.units = units
        self.commitment = commitment
        self.start = start
        self.end = end
        self.status = status
        self.waiting = waiting
        self.spillover = spillover
        self.createdAt = createdAt
        self.endedAt = endedAt
        self.statusReason = statusReason
        self.leases = leases
    }
}

/// How many items a page of a listing (`GET /v1/jobs`, `GET /v1/reservations`) holds: the
/// server's bounds on `limit`, which the CLI checks before it asks.
public enum ListingLimit {
    /// When a request gives no `limit`.
    public static let standard = 100
    /// The most a `limit` may be.
    public static let maximum = 10_000
}

/// `GET /v1/reservations`: one page of reservations, newest first.
public struct ReservationList: Codable, Sendable, Equatable {
    public var reservations: [ReservationView]
    /// Given back as `cursor`, asks for the page after this one; absent on the last page.
    /// Opaque to clients.
    public var nextCursor: String?
    /// How many reservations match after this page.
    public var more: Int
    /// The fields each reservation is written with, when the request named them (`fields`);
    /// every field when nil. Names of `ReservationView.fieldNames`.
    public var fields: [String]?
    /// With `fields`: reservations as objects (`reservations`), or as rows of the fields' values
    /// (`rows`).
    public var shape: ListingShape

    public init(
        reservations: [ReservationView],
        nextCursor: String? = nil,
        more: Int = 0,
        fields: [String]? = nil,
        shape: ListingShape = .objects
    ) {
        self.reservations = reservations
        self.nextCursor = nextCursor
        self.more = more
        self.fields = fields
        self.shape = shape
    }

    enum CodingKeys: String, CodingKey {
        case reservations, nextCursor, more, fields
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reservations = try c.decode([ReservationView].self, forKey: .reservations)
        nextCursor = try c.decodeIfPresent(String.self, forKey: .nextCursor)
        more = try c.decodeIfPresent(Int.self, forKey: .more) ?? 0
        fields = try c.decodeIfPresent([String].self, forKey: .fields)
        shape = .objects
    }
}

extension LeaseView: SnakeCaseEncodable {}

extension ReservationView: SnakeCaseEncodable, FieldedView {
    /// The names of a reservation's fields on the wire, which a listing's `fields` may name.
    public static let fieldNames = WireKeys.allCases.map(\.rawValue)

    enum WireKeys: String, CodingKey, CaseIterable {
        case name, owner, model, purpose, model_units, units, commitment, start, end, status, waiting, spillover, created_at
        case ended_at, status_reason, leases, invocations, serve_restarts, serve_port, serve_cpu_seconds, serve_peak_memory_bytes
        case pinned_units
    }

    enum InvocationKeys: String, CodingKey {
        case calls, served, throttled, input_tokens, output_tokens
    }

    public func encode(to encoder: any Encoder) throws {
        try ObjectOf(view: self, fields: WireKeys.allCases).encode(to: encoder)
    }

    /// One call per named key, through a switch (no `Set` hashing each key of each item).
    func put(_ fields: [WireKeys], into sink: inout some FieldSink<WireKeys>) throws {
        for key in fields {
            switch key {
            case .name: try sink.put(name, key)
            case .owner: try sink.put(owner, key)
            case .model: try sink.put(model, key)
            case .purpose: try sink.put(purpose, key)
            case .model_units: try sink.put(modelUnits, key)
            case .units: try sink.put(units, key)
            case .commitment: try sink.put(commitment, key)
            case .start: try sink.put(start, key)
            case .end: try sink.put(end, key)
            case .status: try sink.put(status, key)
            case .waiting: try sink.put(waiting, key)
            case .spillover: try sink.put(spillover, key)
            case .created_at: try sink.put(createdAt, key)
            case .ended_at: try sink.put(endedAt, key)
            case .status_reason: try sink.put(statusReason, key)
            case .leases: try sink.put(leases, key)
            case .serve_restarts: try sink.put(serveRestarts, key)
            case .serve_port: try sink.put(servePort, key)
            case .serve_cpu_seconds: try sink.put(serveCpuSeconds, key)
            case .serve_peak_memory_bytes: try sink.put(servePeakMemoryBytes, key)
            case .pinned_units: try sink.put(pinnedUnits, key)
            case .invocations: try sink.put(invocations.map(InvocationFields.init), key)
            }
        }
    }

    /// An inference reservation's call counts, with the wire's own keys.
    struct InvocationFields: Encodable {
        var counts: InvocationCountsView

        init(_ counts: InvocationCountsView) { self.counts = counts }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: InvocationKeys.self)
            try c.encode(counts.calls, forKey: .calls)
            try c.encode(counts.served, forKey: .served)
            try c.encode(counts.throttled, forKey: .throttled)
            try c.encode(counts.inputTokens, forKey: .input_tokens)
            try c.encode(counts.outputTokens, forKey: .output_tokens)
        }
    }
}

extension ReservationList: SnakeCaseEncodable {
    public func encode(to encoder: any Encoder) throws {
        try encodeListingPage(
            reservations,
            as: "reservations",
            fields: fields,
            shape: shape,
            nextCursor: nextCursor,
            more: more,
            to: encoder
        )
    }
}

/// `POST /v1/reservations`. `start` is a TIME (`now`, RFC 3339, `+2h`); `duration` a DUR (`8h`).
public struct CreateReservationRequest: StrictBody, Equatable {
    public var name: String
    public var model: String
    public var modelUnits: Int
    public var purpose: String?
    public var commitment: String?
    public var start: String?
    public var duration: String?
    public var wait: Bool?
    public var spillover: Bool?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case name, model, modelUnits, purpose, commitment, start, duration, wait, spillover
    }

    public init(
        name: String,
        model: String,
        modelUnits: Int,
        purpose: String? = nil,
        commitment: String? = nil,
        start: String? = nil,
        duration: String? = nil,
        wait: Bool? = nil,
        spillover: Bool? = nil
    ) {
        self.name = name
        self.model = model
        self.modelUnits = modelUnits
        self.purpose = purpose
        self.commitment = commitment
        self.start = start
        self.duration = duration
        self.wait = wait
        self.spillover = spillover
    }
}

/// `PATCH /v1/reservations/{name}`: any of a new name, a model of the same base, more model units.
public struct UpdateReservationRequest: StrictBody, Equatable {
    public var name: String?
    public var model: String?
    public var modelUnits: Int?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case name, model, modelUnits
    }

    public init(name: String? = nil, model: String? = nil, modelUnits: Int? = nil) {
        self.name = name
        self.model = model
        self.modelUnits = modelUnits
    }
}

/// Their own snake_case keys, so `berth reserve` and `berth update` send them with no key
/// conversion (as `SubmitJobRequest`).
extension CreateReservationRequest: SnakeCaseEncodable {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: NamedKey.self)
        try c.encode(name, forKey: NamedKey("name"))
        try c.encode(model, forKey: NamedKey("model"))
        try c.encode(modelUnits, forKey: NamedKey("model_units"))
        try c.encodeIfPresent(purpose, forKey: NamedKey("purpose"))
        try c.encodeIfPresent(commitment, forKey: NamedKey("commitment"))
        try c.encodeIfPresent(start, forKey: NamedKey("start"))
        try c.encodeIfPresent(duration, forKey: NamedKey("duration"))
        try c.encodeIfPresent(wait, forKey: NamedKey("wait"))
        try c.encodeIfPresent(spillover, forKey: NamedKey("spillover"))
    }
}

extension UpdateReservationRequest: SnakeCaseEncodable {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: NamedKey.self)
        try c.encodeIfPresent(name, forKey: NamedKey("name"))
        try c.encodeIfPresent(model, forKey: NamedKey("model"))
        try c.encodeIfPresent(modelUnits, forKey: NamedKey("model_units"))
    }
}

public struct FreeStepView: Codable, Sendable, Equatable {
    public var start: Date
    public var end: Date
    public var free: Int
    public init(start: Date, end: Date, free: Int) {
        self.start = start
        self.end = end
        self.free = free
    }
}

public struct CapacityView: Codable, Sendable, Equatable {
    public var from: Date
    public var to: Date
    /// Dedicated units in the pool.
    public var total: Int
    public var steps: [FreeStepView]
    /// Each executor's own units, when the pool has more than one (this host's and Slurm's):
    /// a reservation is admitted on the units of one, so these say what can be reserved.
    public var executors: [ExecutorCapacityView]?
    public init(from: Date, to: Date, total: Int, steps: [FreeStepView], executors: [ExecutorCapacityView]? = nil) {
        self.from = from
        self.to = to
        self.total = total
        self.steps = steps
        self.executors = executors
    }
}

public struct ExecutorCapacityView: Codable, Sendable, Equatable {
    /// `local` (this host) or `slurm`.
    public var executor: String
    public var total: Int
    public var steps: [FreeStepView]
    public init(executor: String, total: Int, steps: [FreeStepView]) {
        self.executor = executor
        self.total = total
        self.steps = steps
    }
}

public enum BerthVersion {
    public static let current = "0.1.0"
}

public struct InvocationCountsView: Codable, Sendable, Equatable {
    public var calls: Int
    public var served: Int
    public var throttled: Int
    public var inputTokens: Int
    public var outputTokens: Int

    public init(calls: Int, served: Int, throttled: Int, inputTokens: Int, outputTokens: Int) {
        self.calls = calls
        self.served = served
        self.throttled = throttled
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}
