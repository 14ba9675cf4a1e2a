import ArgumentParser
import BerthClient
import BerthCore
import BerthWire
import FoundationEssentials

/// A page of a listing as the API answers it: whole (`JobList`, `ReservationList`) for
/// `--json`, or as a table shows it (`JobRowList`, `ReservationRowList`).
protocol ListingPage: Decodable {
    associatedtype Item
    var items: [Item] { get set }
    var nextCursor: String? { get set }
    var more: Int { get set }
}

extension JobList: ListingPage {
    var items: [JobView] {
        get { jobs }
        set { jobs = newValue }
    }
}

extension ReservationList: ListingPage {
    var items: [ReservationView] {
        get { reservations }
        set { reservations = newValue }
    }
}

extension JobRowList: ListingPage {
    var items: [JobRow] {
        get { jobs }
        set { jobs = newValue }
    }
}

extension ReservationRowList: ListingPage {
    var items: [ReservationRow] {
        get { reservations }
        set { reservations = newValue }
    }
}

/// How much of a listing to show: `--limit N` or `--all`, as `berth jobs` and
/// `berth reservations` take them.
struct ListingOptions: ParsableArguments {
    /// Items asked for per request by `--all`: a page of jobs is about 0.7 KB a job.
    static let allPageSize = 1_000

    @Option(
        help: ArgumentHelp(
            "Show at most this many, newest first (default: \(ListingLimit.standard); at most \(ListingLimit.maximum)).",
            valueName: "n"
        )
    )
    var limit: Int?

    @Flag(help: "Show every one that matches, asking berthd page by page.")
    var all = false

    func validate() throws {
        if let limit, !(1...ListingLimit.maximum).contains(limit) {
            throw ValidationError("--limit: must be 1 to \(ListingLimit.maximum), not \(limit); --all shows every one")
        }
        if limit != nil && all {
            throw ValidationError("--limit and --all ask for two things: give one of them")
        }
    }

    /// Whether any was given (they make no sense when one item is shown in full).
    var given: Bool { limit != nil || all }

    /// One page of `path` with `filters`; with `--all`, every page, following `next_cursor`
    /// to the end, as one list whose JSON (under `--json`, of an `Encodable` page) is what
    /// berthd would answer for it in one page.
    ///
    /// `fields` asks berthd for only the fields a table shows, as rows (`shape=rows`): writing
    /// and reading the other fields, and every field's key in every item, was most of a long
    /// listing's time. A berthd that does not know `shape` or `fields` refuses it, and is asked
    /// again without.
    func fetch<Page: ListingPage>(
        _ type: Page.Type,
        _ path: String,
        filters: [(String, String?)],
        fields: [String]? = nil,
        global: GlobalOptions
    ) throws(CommandFailure) -> Reply<Page> {
        var fields = fields.map { $0.joined(separator: ",") }
        var shape = fields.map { _ in ListingShape.rows.rawValue }
        func page(limit: Int?, cursor: String?) throws(CommandFailure) -> Reply<Page> {
            while true {
                let query =
                    path
                    + PercentEncoding.query(
                        filters + [("limit", limit.map(String.init)), ("cursor", cursor), ("fields", fields), ("shape", shape)]
                    )
                do throws(CommandFailure) {
                    return try global.call(Page.self, "GET", query)
                } catch {
                    guard error.code == "invalid-argument" else { throw error }
                    if shape != nil && error.message.hasPrefix("shape:") {
                        shape = nil
                    } else if fields != nil && error.message.hasPrefix("fields:") {
                        (fields, shape) = (nil, nil)
                    } else {
                        throw error
                    }
                }
            }
        }
        guard all else { return try page(limit: limit, cursor: nil) }
        var cursor: String?
        var first: Page?
        var items: [Page.Item] = []
        repeat {
            let page = try page(limit: Self.allPageSize, cursor: cursor)
            first = first ?? page.value
            items += page.value.items
            // A page with nothing on it ends the walk, whatever its cursor says.
            cursor = page.value.items.isEmpty ? nil : page.value.nextCursor
        } while cursor != nil
        guard var list = first else {
            throw CommandFailure(code: "internal", message: "no page came back", status: .failure)
        }
        list.items = items
        list.nextCursor = nil
        list.more = 0
        // A table needs no JSON of the whole list.
        guard global.json, let encodable = list as? any Encodable else { return Reply(value: list, body: Data()) }
        do {
            return Reply(value: list, body: try Wire.encode(encodable))
        } catch {
            throw CommandFailure(code: "internal", message: "cannot encode the list: \(error)", status: .failure)
        }
    }

    /// The line under a table that does not show every match: `… 900 more; --limit 1000 or
    /// --all shows them`.
    static func moreLine(shown: Int, more: Int) -> String? {
        guard more > 0 else { return nil }
        let total = shown + more
        return total <= ListingLimit.maximum ? "… \(more) more; --limit \(total) or --all shows them" : "… \(more) more; --all shows them"
    }
}

/// Checks of listing options that ArgumentParser cannot make itself.
extension ArgumentCheck {
    /// `queued,running`: values of a core enum separated by commas, for `--status`.
    static func values<T: ExpressibleByArgument & CaseIterable & RawRepresentable>(_ text: String) throws -> [T] where T.RawValue == String {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            guard let value = T(argument: String(item)) else {
                throw ValidationError("'\(item)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }
    }

    /// `--since TIME` as RFC 3339, worked out once: every page of `--all` then asks for the
    /// same jobs, where `-7d` sent as it is would move with berthd's clock between pages.
    static func since(_ text: String?) throws(ValidationError) -> String? {
        guard let text else { return nil }
        try time(text, option: "--since")
        return TimeExpression.parse(text, now: Date()).map(TimeExpression.format)
    }

    static func owner(_ name: String?) throws(ValidationError) {
        if let name, name.isEmpty || name.contains(where: \.isWhitespace) {
            throw ValidationError("--owner: '\(name)' is not a user name")
        }
    }
}
