import BerthStore
import Foundation
import Hummingbird
import NIOCore

/// `GET /metrics`, on the socket and on `[metrics] listen`.
struct MetricsController: Sendable {
    let ledger: Ledger
    let metrics: DaemonMetrics
    let clock: @Sendable () -> Date

    func addRoutes(to router: Router<BerthRequestContext>) {
        router.get("metrics") { _, context in try await scrape(context) }
    }

    /// `GET /metrics` on the socket. An admin reads every series. Anyone else in the socket's
    /// group reads only the series that name none of another user's reservations or custom
    /// models (`MetricsScope`): their own reservations' series, and the daemon-wide ones
    /// (units, counts by status, on-demand calls to base models, ledger writes).
    func scrape(_ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let now = clock()
        let (census, scope) = try await ledger.read { tx in
            (try tx.census(now: now), caller.isAdmin ? nil : try tx.metricsScope(owner: caller.user))
        }
        let exposition = refreshed(census)
        return Self.exposition(scope.map { $0.filter(exposition) } ?? exposition)
    }

    /// `GET /metrics` on `[metrics] listen`: every series, to whoever reaches the port.
    func scrapeAll() async throws -> Response {
        let now = clock()
        let census = try await ledger.read { tx in try tx.census(now: now) }
        return Self.exposition(refreshed(census))
    }

    private func refreshed(_ census: LedgerCensus) -> [UInt8] {
        metrics.refresh(from: census)
        metrics.ledger(full: ledger.isFull)
        return metrics.exposition()
    }

    private static func exposition(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}
