import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird

/// `GET /v1/usage`: the usage report.
struct UsageController: Sendable {
    let ledger: Ledger
    let clock: @Sendable () -> Date
    /// Reservations with no job and no call for longer than this are flagged as idle.
    let idleThreshold: TimeInterval

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.get("usage") { request, context in try await usage(request, context) }
    }

    /// `GET /v1/usage?from=&to=&by=&buckets=`: the usage report over `[from, to)`. Admins see
    /// everyone's; others only their own reservations and calls.
    func usage(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        // One reading of the clock, for the window and for what is still open: a report to now
        // holds everything committed before it was asked (a call a moment ago included).
        let now = clock()
        let query = request.uri.queryParameters
        for (name, _) in query where !["from", "to", "by", "buckets"].contains(String(name)) {
            throw APIError.invalid(field: String(name), "is not a parameter of /v1/usage; use from, to, by and buckets")
        }
        let window = WindowRules.window(
            from: query["from"].map(String.init),
            to: query["to"].map(String.init),
            now: now,
            defaultFrom: Self.monthStart(now),
            defaultTo: { _ in now },
            longest: 400 * 86_400,
            tooLong: "a report covers at most 400 days; ask for a shorter window",
            example: "2026-11-01T00:00:00Z"
        )
        let (from, to) = try window.mapError(APIError.init).get()
        let byText = query["by"].map(String.init) ?? UsageGrouping.reservation.rawValue
        guard let by = UsageGrouping(rawValue: byText) else {
            throw APIError.invalid(field: "by", "'\(byText)' is not a grouping: use reservation, model, owner or day")
        }
        let bucketsText = query["buckets"].map(String.init) ?? "24"
        guard let buckets = Int(bucketsText), (1...1000).contains(buckets) else {
            throw APIError.invalid(field: "buckets", "'\(bucketsText)' must be a whole number from 1 to 1000")
        }
        // What is open (a lease, a running job) is counted up to this instant: a reservation
        // made a moment ago has held its units for that moment.
        let usageQuery = UsageQuery(from: from, to: to, now: now, grouping: by, idleThreshold: idleThreshold, buckets: buckets)
        let owner = caller.isAdmin ? nil : caller.user
        let facts = try await ledger.read { tx in try tx.usageFacts(usageQuery, owner: owner) }
        return try Requests.json(UsageReportView(UsageReport.compute(facts, usageQuery)))
    }

    /// The first instant of `date`'s calendar month in UTC: reports cover this month by default.
    static func monthStart(_ date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: calendar.dateComponents([.year, .month], from: date)) ?? date
    }
}
