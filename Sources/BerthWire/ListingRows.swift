public import FoundationEssentials

/// A wire type whose `CodingKeys` are the JSON's own snake_case keys: `Wire.decode` reads it
/// with no key conversion. Converting every key of every object (`convertFromSnakeCase`) was
/// two fifths of the time the CLI spent decoding a listing.
public protocol KeysAsSent: Decodable {}

/// A job as `berth jobs` shows it in a table: the fields of a `JobView` that the table prints,
/// read from the same answer of `GET /v1/jobs`, whose other fields are skipped.
public struct JobRow: KeysAsSent, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    public var kind: String
    public var reservation: String
    public var status: String
    public var reason: String?
    public var progress: Double
    public var units: [String]
    public var submittedAt: Date
    public var slurmState: String?
    /// The last point of its curve, as lists show it; none before the first.
    public var metrics: [Point]

    /// A point of the curve, with the losses the table shows.
    public struct Point: KeysAsSent, Sendable, Equatable {
        public var trainingLoss: Double?
        public var validationLoss: Double?

        enum CodingKeys: String, CodingKey {
            case trainingLoss = "training_loss"
            case validationLoss = "validation_loss"
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, owner, kind, reservation, status, reason, progress, units, metrics
        case submittedAt = "submitted_at"
        case slurmState = "slurm_state"
    }

    /// The fields a row is read from, for a listing's `fields`: berthd then writes no others.
    public static let fields = CodingKeys.allCases.map(\.rawValue)

    /// How the status reads to a person, as `JobView.shownStatus` has it.
    public var shownStatus: String {
        JobView.shownStatus(status: status, slurmState: slurmState)
    }
}

/// A page of `GET /v1/jobs` as `berth jobs` shows it in a table.
public struct JobRowList: KeysAsSent, Sendable, Equatable {
    public var jobs: [JobRow]
    public var nextCursor: String?
    public var more: Int

    enum CodingKeys: String, CodingKey {
        case jobs, rows, fields, more
        case nextCursor = "next_cursor"
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything. One
    /// asked for `shape=rows` has `rows` in the order of its `fields`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try c.contains(.rows) ? decodeRows(in: c, rows: .rows, fields: .fields) : c.decode([JobRow].self, forKey: .jobs)
        nextCursor = try c.decodeIfPresent(String.self, forKey: .nextCursor)
        more = try c.decodeIfPresent(Int.self, forKey: .more) ?? 0
    }
}

/// A reservation as `berth reservations` shows it in a table: the fields of a `ReservationView`
/// that the table prints, read from the same answer of `GET /v1/reservations`.
public struct ReservationRow: KeysAsSent, Sendable, Equatable {
    public var name: String
    public var owner: String
    public var model: String
    public var purpose: String
    public var modelUnits: Int
    public var units: Int
    public var commitment: String
    public var start: Date
    public var end: Date?
    public var status: String
    public var waiting: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, owner, model, purpose, units, commitment, start, end, status, waiting
        case modelUnits = "model_units"
    }

    /// The fields a row is read from, for a listing's `fields`: berthd then writes no others.
    public static let fields = CodingKeys.allCases.map(\.rawValue)

}

/// A page of `GET /v1/reservations` as `berth reservations` shows it in a table.
public struct ReservationRowList: KeysAsSent, Sendable, Equatable {
    public var reservations: [ReservationRow]
    public var nextCursor: String?
    public var more: Int

    enum CodingKeys: String, CodingKey {
        case reservations, rows, fields, more
        case nextCursor = "next_cursor"
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything. One
    /// asked for `shape=rows` has `rows` in the order of its `fields`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reservations =
            try c.contains(.rows)
            ? decodeRows(in: c, rows: .rows, fields: .fields) : c.decode([ReservationRow].self, forKey: .reservations)
        nextCursor = try c.decodeIfPresent(String.self, forKey: .nextCursor)
        more = try c.decodeIfPresent(Int.self, forKey: .more) ?? 0
    }
}

/// A table's row type that can also be read from a listing's row (`shape=rows`).
protocol TableRow {
    associatedtype CodingKeys: CodingKey & CaseIterable & Equatable
    init(row: inout any UnkeyedDecodingContainer, fields: [CodingKeys]) throws
}

extension JobRow: TableRow {}
extension ReservationRow: TableRow {}

/// A page's `rows`, read in the order of its `fields`, every one of which the row type reads
/// must be there, or the rows cannot fill it.
private func decodeRows<Row: TableRow, Page: CodingKey>(
    in page: KeyedDecodingContainer<Page>,
    rows rowsKey: Page,
    fields fieldsKey: Page
) throws -> [Row] {
    let names = try page.decode([String].self, forKey: fieldsKey)
    let fields = names.compactMap(Row.CodingKeys.init(stringValue:))
    guard fields.count == names.count, Row.CodingKeys.allCases.allSatisfy(fields.contains) else {
        throw DecodingError.dataCorruptedError(
            forKey: fieldsKey,
            in: page,
            debugDescription:
                "rows of \(names.joined(separator: ",")) cannot fill a row of \(Row.CodingKeys.allCases.map(\.stringValue).joined(separator: ","))"
        )
    }
    var rows = try page.nestedUnkeyedContainer(forKey: rowsKey)
    var items: [Row] = []
    while !rows.isAtEnd {
        var row = try rows.nestedUnkeyedContainer()
        items.append(try Row(row: &row, fields: fields))
    }
    return items
}

extension JobRow {
    /// A row of a listing with `shape=rows`: the values of `fields`, in their order.
    init(row: inout any UnkeyedDecodingContainer, fields: [CodingKeys]) throws {
        self.init(id: 0, name: "", owner: "", kind: "", reservation: "", status: "", progress: 0, units: [], submittedAt: .distantPast, metrics: [])
        for key in fields {
            switch key {
            case .id: id = try row.decode(Int64.self)
            case .name: name = try row.decode(String.self)
            case .owner: owner = try row.decode(String.self)
            case .kind: kind = try row.decode(String.self)
            case .reservation: reservation = try row.decode(String.self)
            case .status: status = try row.decode(String.self)
            case .reason: reason = try row.decodeIfPresent(String.self)
            case .progress: progress = try row.decode(Double.self)
            case .units: units = try row.decode([String].self)
            case .metrics: metrics = try row.decode([Point].self)
            case .submittedAt: submittedAt = try row.decode(Date.self)
            case .slurmState: slurmState = try row.decodeIfPresent(String.self)
            }
        }
    }
}

extension ReservationRow {
    /// A row of a listing with `shape=rows`: the values of `fields`, in their order.
    init(row: inout any UnkeyedDecodingContainer, fields: [CodingKeys]) throws {
        self.init(
            name: "",
            owner: "",
            model: "",
            purpose: "",
            modelUnits: 0,
            units: 0,
            commitment: "",
            start: .distantPast,
            status: "",
            waiting: false
        )
        for key in fields {
            switch key {
            case .name: name = try row.decode(String.self)
            case .owner: owner = try row.decode(String.self)
            case .model: model = try row.decode(String.self)
            case .purpose: purpose = try row.decode(String.self)
            case .modelUnits: modelUnits = try row.decode(Int.self)
            case .units: units = try row.decode(Int.self)
            case .commitment: commitment = try row.decode(String.self)
            case .start: start = try row.decode(Date.self)
            case .end: end = try row.decodeIfPresent(Date.self)
            case .status: status = try row.decode(String.self)
            case .waiting: waiting = try row.decode(Bool.self)
            }
        }
    }
}
