public import BerthCore
public import Foundation
import GRDB

/// One page of a listing, newest first (highest id first), and how many more items match after
/// it. The next page starts below the last item's id.
public struct ListingPage<Item: Sendable>: Sendable {
    public var items: [Item]
    /// Items that match the filters and come after this page: 0 on the last page.
    public var more: Int

    public init(items: [Item], more: Int) {
        self.items = items
        self.more = more
    }
}

/// Which jobs `GET /v1/jobs` lists: each filter given narrows the list.
public struct JobFilter: Sendable, Equatable {
    /// Jobs in any of these statuses; empty for any status.
    public var statuses: Set<JobStatus>
    /// Jobs of the reservations of this name. A name can be used again once its reservation
    /// has ended, so it may name several.
    public var reservation: String?
    public var owner: String?
    public var kind: JobKind?
    /// Jobs submitted at or after this time.
    public var since: Date?

    public init(statuses: Set<JobStatus> = [], reservation: String? = nil, owner: String? = nil, kind: JobKind? = nil, since: Date? = nil) {
        self.statuses = statuses
        self.reservation = reservation
        self.owner = owner
        self.kind = kind
        self.since = since
    }
}

/// Which reservations `GET /v1/reservations` lists: each filter given narrows the list.
public struct ReservationFilter: Sendable, Equatable {
    /// Reservations in any of these statuses (as the ledger keeps them); empty for any status.
    public var statuses: Set<ReservationStatus>
    public var owner: String?
    public var purpose: Purpose?
    /// Reservations created (reserved) at or after this time.
    public var since: Date?

    public init(statuses: Set<ReservationStatus> = [], owner: String? = nil, purpose: Purpose? = nil, since: Date? = nil) {
        self.statuses = statuses
        self.owner = owner
        self.purpose = purpose
        self.since = since
    }
}

/// The conditions of a listing's WHERE clause, with their arguments.
struct ListingConditions {
    private(set) var clauses: [String] = []
    private(set) var arguments: StatementArguments = []

    mutating func add(_ clause: String, _ values: [any DatabaseValueConvertible]) {
        clauses.append(clause)
        arguments += StatementArguments(values)
    }

    /// `column IN (?, ?)` for a set of enum values, in a fixed order so that the same set
    /// makes the same statement (statements are cached by their text).
    mutating func add<T: RawRepresentable>(_ column: String, in values: Set<T>) where T.RawValue == String {
        guard !values.isEmpty else { return }
        let sorted = values.map(\.rawValue).sorted()
        add("\(column) IN (\(Array(repeating: "?", count: sorted.count).joined(separator: ", ")))", sorted)
    }

    /// ` WHERE a AND b`, or nothing.
    var sql: String {
        clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
    }
}

extension LedgerTransaction {
    /// A page of the jobs `filter` lets through, newest first: at most `limit`, and only jobs
    /// older than `before` (the last id of the previous page) when given.
    /// Without `hyperparameters`, the jobs come without them (a listing whose `fields` leave
    /// them out): decoding them was a tenth of answering for a page.
    public func jobs(_ filter: JobFilter, before: Int64?, limit: Int, hyperparameters: Bool = true) throws -> ListingPage<JobRecord> {
        var conditions = ListingConditions()
        conditions.add("status", in: filter.statuses)
        if let name = filter.reservation {
            let ids = try Int64.fetchAll(db.cachedStatement(sql: "SELECT id FROM reservations WHERE name = ?"), arguments: [name])
            guard !ids.isEmpty else { return ListingPage(items: [], more: 0) }
            conditions.add("reservation_id IN (SELECT value FROM json_each(?))", [Self.jsonArray(ids)])
        }
        if let owner = filter.owner { conditions.add("owner = ?", [owner]) }
        if let kind = filter.kind { conditions.add("kind = ?", [kind.rawValue]) }
        if let since = filter.since { conditions.add("submitted_at >= ?", [since]) }
        let (ids, more) = try listingPage(
            table: "jobs",
            conditions,
            since: filter.since.map { ("submitted_at", $0) },
            before: before,
            limit: limit
        )
        let jobs = try JobRecord.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT \(JobRecord.selection) FROM jobs WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id DESC
                    """
            ),
            arguments: [Self.jsonArray(ids)],
            hyperparameters: hyperparameters
        )
        return ListingPage(items: jobs, more: more)
    }

    /// A page of the reservations `filter` lets through, newest first, as `jobs(_:before:limit:)`.
    public func reservations(_ filter: ReservationFilter, before: Int64?, limit: Int) throws -> ListingPage<Reservation> {
        var conditions = ListingConditions()
        conditions.add("status", in: filter.statuses)
        if let owner = filter.owner { conditions.add("owner = ?", [owner]) }
        if let purpose = filter.purpose { conditions.add("purpose = ?", [purpose.rawValue]) }
        if let since = filter.since { conditions.add("created_at >= ?", [since]) }
        let (ids, more) = try listingPage(
            table: "reservations",
            conditions,
            since: filter.since.map { ("created_at", $0) },
            before: before,
            limit: limit
        )
        let reservations = try ReservationRecord.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT \(ReservationRecord.selection) FROM reservations WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id DESC
                    """
            ),
            arguments: [Self.jsonArray(ids)]
        ).map(\.reservation)
        return ListingPage(items: reservations, more: more)
    }

    /// The ids of one page, and how many rows match after it. Ids come first, from an index
    /// wherever a filter has one, and rows are read for the page alone: reading whole rows
    /// to sort them (a reservation's jobs are in its index by submission time, not by id) cost
    /// 80 ms for 5,000 jobs of 100,000.
    ///
    /// `since` is the time filter's column and time, if any. Rows are made in time order, so
    /// SQLite reads a time filter's page newest id first and stops after `limit`; but when
    /// fewer match, it read every older row to be sure (30 ms for 60 of 100,000 jobs). The page
    /// is therefore also bounded below by the smallest id that matches, which the time's index
    /// gives: that bound holds whatever the clock did, so it changes nothing in the answer.
    private func listingPage(
        table: String,
        _ conditions: ListingConditions,
        since: (column: String, time: Date)?,
        before: Int64?,
        limit: Int
    ) throws -> (ids: [Int64], more: Int) {
        var paged = conditions
        if let before { paged.add("id < ?", [before]) }
        if let since {
            // `+id`: MIN(id) would walk the rowids from the oldest until one matched.
            paged.add("id >= (SELECT MIN(+id) FROM \(table) WHERE \(since.column) >= ?)", [since.time])
        }
        let ids = try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT id FROM \(table)\(paged.sql) ORDER BY id DESC LIMIT ?"),
            arguments: paged.arguments + [limit + 1]
        )
        guard ids.count > limit, let last = ids.prefix(limit).last else { return (ids, 0) }
        let more: Int
        if conditions.clauses.isEmpty {
            // A whole table's COUNT(*) counts the cells of its narrowest index page by page;
            // `id < ?` would step through every (wide) row older than the page instead: 1 ms
            // against 60 ms for 100,000 jobs. The rows from `last` on are the few pages seen.
            more =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT (SELECT COUNT(*) FROM \(table)) - (SELECT COUNT(*) FROM \(table) WHERE id >= ?)"),
                    arguments: [last]
                ) ?? 0
        } else {
            // A range of the filter's index, whose entries end with the id.
            var older = conditions
            older.add("id < ?", [last])
            more = try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM \(table)\(older.sql)"), arguments: older.arguments) ?? 0
        }
        return (Array(ids.prefix(limit)), more)
    }

    /// `[1,2,3]`, for `IN (SELECT value FROM json_each(?))`: one statement for any number of ids.
    static func jsonArray(_ ids: [Int64]) -> String {
        "[" + ids.map(String.init).joined(separator: ",") + "]"
    }
}
