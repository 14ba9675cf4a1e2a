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
        let window = WindowRules.window(
            from: query["from"].map(String.init),
            to: query["to"].map(String.init),
            now: now,
            defaultFrom: now,
            defaultTo: { $0.addingTimeInterval(7 * 86_400) },
            longest: 10 * 366 * 86_400,
            tooLong: "the window is limited to 10 years",
            example: "2026-12-01T09:00:00Z"
        )
        let (from, to) = try window.mapError(APIError.init).get()
        let view = try await ledger.read { tx -> CapacityView in
            let snapshot = try tx.snapshot()
            let calendar = snapshot.calendar
            let pools = snapshot.pools
            return CapacityView(
                from: from,
                to: to,
                total: calendar.total,
                steps: calendar.steps(from: from, to: to).map { FreeStepView(start: $0.start, end: $0.end, free: $0.free) },
                executors: pools.count < 2
                    ? nil
                    : pools.map { pool in
                        ExecutorCapacityView(
                            executor: pool.executor.isEmpty ? "local" : pool.executor,
                            total: pool.calendar.total,
                            steps: pool.calendar.steps(from: from, to: to).map { FreeStepView(start: $0.start, end: $0.end, free: $0.free) }
                        )
                    }
            )
        }
        return try Requests.json(view)
    }
}
