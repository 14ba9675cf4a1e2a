import BerthStore
import Hummingbird
import NIOCore

extension ControlPlane {
    /// `GET /metrics`: every series in the Prometheus text format. Anyone who can connect to
    /// the socket may read it, as with `/v1/health`: the socket's mode and group are the
    /// boundary. It names every live reservation and its model, and shows no owner, prompt or
    /// output.
    func scrape() async throws -> Response {
        let now = clock()
        let census = try await ledger.read { tx in try tx.census(now: now) }
        metrics.refresh(from: census)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
    }
}
