import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird

/// `/v1/units`, `/v1/models` and `/v1/capacity`: what berthd offers, and when.
struct CatalogController: Sendable {
    let ledger: Ledger
    /// The units as the config and discovery describe them now: a leased unit no longer among
    /// them is shown `lost`.
    let hardware: UnitDirectory
    let clock: @Sendable () -> Date

    var now: Date { clock().wholeSeconds }

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.get("units") { _, context in try await units(context) }
        group.get("models") { _, context in try await models(context) }
        group.get("models/:id") { _, context in try await model(context) }
        group.get("capacity") { request, _ in try await capacity(request) }
    }

    func units(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let list = try await ledger.read { tx -> UnitList in
            let holders = try tx.unitHolders()
            let owners = Dictionary(try tx.liveReservations().map { ($0.name, $0.owner) }, uniquingKeysWith: { a, _ in a })
            return UnitList(
                units: try tx.units().map { unit in
                    // Others' reservation names are theirs to see; a unit they hold just shows as taken.
                    let holder = holders[unit.id].map { name in caller.canSee(owner: owners[name] ?? "") ? name : "(another user)" }
                    return UnitView(
                        id: unit.id,
                        kind: unit.kind,
                        device: unit.device,
                        pool: unit.pool.rawValue,
                        holder: holder,
                        state: hardware.state(of: unit)
                    )
                }
            )
        }
        return try Requests.json(list)
    }

    /// The catalog, with the caller's own custom models (everyone's for an admin).
    func models(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let list = try await ledger.read { tx in
            ModelList(models: try tx.models().filter(caller.canSee).map(Views.model))
        }
        return try Requests.json(list)
    }

    func model(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try context.parameter("id")
        guard let model = try await ledger.read({ tx in try tx.model(id: id) }), caller.canSee(model) else {
            throw APIError(.notFound, "no model '\(id)'; `berth models` lists the catalog")
        }
        return try Requests.json(Views.model(model))
    }

    func capacity(_ request: Request) async throws -> Response {
        let now = self.now
        let query = request.uri.queryParameters
        func time(_ name: String, default value: Date) throws -> Date {
            guard let text = query[Substring(name)].map(String.init), !text.isEmpty else { return value }
            guard let date = TimeExpression.parse(text, now: now) else {
                throw APIError.invalid(
                    field: name,
                    "'\(text)' is not a time: use now, RFC 3339 (2026-12-01T09:00:00Z) or an offset such as +2h or -7d"
                )
            }
            return date.wholeSeconds
        }
        let from = try time("from", default: now)
        let to = try time("to", default: from.addingTimeInterval(7 * 86_400))
        guard to > from else { throw APIError.invalid(field: "to", "must be after from") }
        guard to.timeIntervalSince(from) <= 10 * 366 * 86_400 else { throw APIError.invalid(field: "to", "the window is limited to 10 years") }
        let view = try await ledger.read { tx -> CapacityView in
            let calendar = try tx.snapshot().calendar
            return CapacityView(
                from: from,
                to: to,
                total: calendar.total,
                steps: calendar.steps(from: from, to: to).map { FreeStepView(start: $0.start, end: $0.end, free: $0.free) }
            )
        }
        return try Requests.json(view)
    }
}
