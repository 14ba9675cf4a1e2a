import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird

/// `GET /v1/health`: `berth status`. It names no caller, so it answers whoever can connect.
struct HealthController: Sendable {
    let ledger: Ledger
    let startedAt: Date
    /// What runners are confined with, as `berth status` shows it.
    let confinement: String
    let clock: @Sendable () -> Date

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.get("health") { _, _ in try await health() }
    }

    func health() async throws -> Response {
        let now = clock()
        let view = try await ledger.read { tx -> HealthView in
            let units = try tx.units()
            let dedicated = units.filter { $0.pool == .dedicated }.count
            let leased = try tx.unitHolders().count
            let live = try tx.liveReservations()
            return HealthView(
                status: "ok",
                version: BerthVersion.current,
                startedAt: self.startedAt,
                uptimeSeconds: Int(now.timeIntervalSince(self.startedAt)),
                units: .init(dedicated: dedicated, shared: units.count - dedicated, leased: leased, free: dedicated - leased),
                reservations: .init(pending: live.filter { $0.status == .pending }.count, active: live.filter { $0.status == .active }.count),
                ledger: self.ledger.isFull ? .init(full: true, folder: self.ledger.folder) : .init(full: false)
            )
        }
        var answer = view
        answer.confinement = confinement
        return try Requests.json(answer)
    }
}
