import BerthCore
import BerthStore
import Foundation
import Hummingbird

extension CommitGroup {
    /// Runs a change once per `Idempotency-Key`: a retry with the same key and body gets the
    /// first answer back, from the same transaction that made the change, so a crash between
    /// the two cannot make it act twice. The scheduler runs after `perform`, before the answer
    /// is rendered.
    func respond(
        to request: Hummingbird.Request,
        caller: Caller,
        body: Data,
        route: String,
        perform: @escaping @Sendable (LedgerTransaction) throws -> Change
    ) async throws -> Response {
        let key = request.headers[.init("Idempotency-Key")!]
        if let key, key.isEmpty || key.utf8.count > 255 {
            throw APIError.invalid(field: "Idempotency-Key", "must be 1 to 255 characters; a UUID is a good key")
        }
        let answer = try await commit(owner: caller.user, key: key, route: route, body: body, perform: perform).encoded()
        return Requests.respond(status: answer.status, body: answer.body)
    }
}

/// The serve processes, as the handlers use them. `ServeSupervisor` is the daemon's; a route
/// test gives one that has none.
protocol ServeProcesses: Sendable {
    /// The port of a ready process, waiting while it starts; nil if there is none.
    func port(for key: ServeSupervisor.Key) async -> Int?
    /// The port of a process ready now, without waiting.
    func readyPort(for key: ServeSupervisor.Key) -> Int?
    /// A base model's on-demand process, started if need be.
    func onDemandPort(model: Model) async -> Int?
    /// Looks at the processes now rather than at the next pass.
    func wake()
    /// The header every call to that process carries: its token (`ServeTokens`).
    func authorization(for key: ServeSupervisor.Key) -> (String, String)
}

extension ServeSupervisor: ServeProcesses {}
