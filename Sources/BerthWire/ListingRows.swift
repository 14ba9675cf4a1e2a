public import Foundation

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
        case jobs, more
        case nextCursor = "next_cursor"
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try c.decode([JobRow].self, forKey: .jobs)
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
        case reservations, more
        case nextCursor = "next_cursor"
    }

    /// An answer of a berthd that did not page yet has no `more`: it listed everything.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reservations = try c.decode([ReservationRow].self, forKey: .reservations)
        nextCursor = try c.decodeIfPresent(String.self, forKey: .nextCursor)
        more = try c.decodeIfPresent(Int.self, forKey: .more) ?? 0
    }
}
