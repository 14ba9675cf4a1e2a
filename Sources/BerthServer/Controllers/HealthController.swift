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
        let counts = try await ledger.poolCounts()
        var view = HealthView(
            status: "ok",
            version: BerthVersion.current,
            startedAt: startedAt,
            uptimeSeconds: Int(now.timeIntervalSince(startedAt)),
            units: .init(
                dedicated: counts.dedicatedUnits,
                shared: counts.sharedUnits,
                leased: counts.leasedUnits,
                free: counts.dedicatedUnits - counts.leasedUnits
            ),
            reservations: .init(pending: counts.pendingReservations, active: counts.activeReservations),
            ledger: ledger.isFull ? .init(full: true, folder: ledger.folder) : .init(full: false)
        )
        view.confinement = confinement
        return try Requests.json(view)
    }
}
