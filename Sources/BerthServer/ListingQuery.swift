import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird

/// The query of a listing (`GET /v1/jobs`, `GET /v1/reservations`), checked. Both take
/// `owner`, `since`, `limit` and `cursor`, and each its own filters (`status` and more). A
/// value that does not parse, a parameter given twice that takes one value, and a parameter
/// the listing does not know are each a 400 naming the parameter.
struct ListingQuery {
    private let parameters: Parameters
    /// Items per page.
    let limit: Int
    /// The cursor: items older than this id. A cursor is the last id of the page before,
    /// which clients are told to treat as opaque so that it may change.
    let before: Int64?
    let since: Date?
    /// Whose items: `nil` for everyone's, which only an admin gets (by naming nobody).
    let owner: String?

    /// `what` names the items in messages (`jobs`); `filters` are the parameters this listing
    /// takes besides the common ones.
    init(_ parameters: Parameters, path: String, what: String, filters: [String], caller: Caller, now: Date) throws {
        self.parameters = parameters
        let known = filters + ["owner", "since", "limit", "cursor", "fields", "shape"]
        for (name, _) in parameters where !known.contains(String(name)) {
            throw APIError.invalid(field: String(name), "is not a parameter of \(path); use \(known.joined(separator: ", "))")
        }
        for name in known where name != "status" && parameters.getAll(name).count > 1 {
            throw APIError.invalid(field: name, "given more than once; give it once")
        }

        let limitText = parameters.get("limit")
        if let limitText {
            guard let limit = Int(limitText), (1...ListingLimit.maximum).contains(limit) else {
                throw APIError.invalid(field: "limit", "'\(limitText)' must be a whole number from 1 to \(ListingLimit.maximum)")
            }
            self.limit = limit
        } else {
            self.limit = ListingLimit.standard
        }

        if let cursor = parameters.get("cursor") {
            guard let id = Int64(cursor), id > 0 else {
                throw APIError.invalid(field: "cursor", "'\(cursor)' is not a cursor: give back next_cursor as an earlier answer had it")
            }
            self.before = id
        } else {
            self.before = nil
        }

        if let text = parameters.get("since") {
            guard let since = TimeExpression.parse(text, now: now) else {
                throw APIError.invalid(field: "since", "'\(text)' is not a time: use RFC 3339 (2026-12-01T09:00:00Z), now, or an offset such as -7d")
            }
            self.since = since
        } else {
            self.since = nil
        }

        switch parameters.get("owner") {
        case nil:
            self.owner = caller.isAdmin ? nil : caller.user
        case let named? where named.isEmpty:
            throw APIError.invalid(field: "owner", "is empty; give a user name, or leave it out")
        case let named? where caller.canSee(owner: named):
            self.owner = named
        case _:
            throw APIError(.forbidden, "owner: you can list only your own \(what); leave out owner, or give your own name (\(caller.user))")
        }
    }

    /// The values of a parameter that takes several of an enum's, separated by commas or given
    /// more than once (`status=queued,running`); empty when it is not given.
    func values<T: RawRepresentable & CaseIterable & Hashable>(_ name: String, _ what: String) throws -> Set<T> where T.RawValue == String {
        var values = Set<T>()
        for text in parameters.getAll(name) {
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let value = T(rawValue: String(item)) else {
                    throw APIError.invalid(field: name, "'\(item)' is not \(what): use \(Self.choices(T.self)), or several separated by commas")
                }
                values.insert(value)
            }
        }
        return values
    }

    /// The value of a parameter that takes one of an enum's.
    func value<T: RawRepresentable & CaseIterable>(_ name: String, _ what: String) throws -> T? where T.RawValue == String {
        guard let text = parameters.get(name) else { return nil }
        guard let value = T(rawValue: text) else {
            throw APIError.invalid(field: name, "'\(text)' is not \(what): use \(Self.choices(T.self))")
        }
        return value
    }

    /// `fields`: the names, separated by commas, of the fields each item is to be written with,
    /// each once, in the order given; nil when it is not given (every field).
    func fields(of what: String, _ known: [String]) throws -> [String]? {
        guard let text = parameters.get("fields") else { return nil }
        var fields: [String] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) where !fields.contains(item) {
            guard known.contains(item) else {
                throw APIError.invalid(
                    field: "fields",
                    "'\(item)' is not a field of \(what): use \(known.joined(separator: ", ")), separated by commas"
                )
            }
            fields.append(item)
        }
        return fields
    }

    /// `shape`: items as objects (the default) or as rows of their `fields`' values, which
    /// only a listing that names its fields can have.
    func shape(fields: [String]?) throws -> ListingShape {
        guard let text = parameters.get("shape") else { return .objects }
        guard let shape = ListingShape(rawValue: text) else {
            throw APIError.invalid(field: "shape", "'\(text)' is not a shape: use objects or rows")
        }
        if shape == .rows && fields == nil {
            throw APIError.invalid(field: "shape", "rows needs fields, the values each row holds in order: add fields=")
        }
        return shape
    }

    func text(_ name: String) -> String? {
        parameters.get(name)
    }

    /// `a, b or c`.
    static func choices<T: RawRepresentable & CaseIterable>(_ type: T.Type) -> String where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        return names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names.last! : names.joined()
    }

    /// The cursor of the page after one that ends with `lastID`, when more items follow.
    static func nextCursor(after lastID: Int64?, more: Int) -> String? {
        more > 0 ? lastID.map(String.init) : nil
    }
}
