import BerthCore
import BerthStore
import BerthWire
import Foundation
import Hummingbird

/// `/v1/api-keys`: the keys with which OpenAI clients call over TCP (`[openai] listen`). Only on
/// the control socket: a key is made, listed and revoked by whom the kernel names, never by
/// another key. A key belongs to its creator and acts as them.
struct APIKeysController: Sendable {
    let keyring: APIKeyring

    func addRoutes(to group: RouterGroup<BerthRequestContext>) {
        group.post("api-keys") { request, context in try await create(request, context) }
        group.get("api-keys") { request, context in try await list(request, context) }
        group.delete("api-keys/:name") { request, context in try await revoke(request, context) }
    }

    /// `POST /v1/api-keys {"name"}`: the answer carries the key, the only time it is shown.
    func create(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let input = try Requests.decode(APIKeyCreateRequest.self, from: try await Requests.body(request, context: context))
        do {
            try ReservationName.validate(input.name)
        } catch {
            throw APIError.invalid(field: error.field, error.message)
        }
        let (key, stored) = try await keyring.create(name: input.name, owner: caller.user)
        return try Requests.json(Self.view(stored, key: key), status: .created)
    }

    /// `GET /v1/api-keys[?owner=]`: the caller's live keys; an admin's are everyone's, or one owner's.
    func list(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let owner = try Self.owner(request, caller: caller, all: true)
        return try Requests.json(APIKeyList(apiKeys: try await keyring.list(owner: owner).map { Self.view($0) }))
    }

    /// `DELETE /v1/api-keys/{name}[?owner=]`: revokes one of the caller's keys (an admin may
    /// name another owner). The key is refused from now on; its row stays, marked revoked.
    func revoke(_ request: Request, _ context: BerthRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let name = try context.parameter("name")
        let owner = try Self.owner(request, caller: caller, all: false) ?? caller.user
        return try Requests.json(Self.view(try await keyring.revoke(name: name, owner: owner)))
    }

    /// The `owner` parameter, which only an admin may give; nil is everyone's (an admin
    /// listing) or the caller's own.
    static func owner(_ request: Request, caller: Caller, all: Bool) throws -> String? {
        let query = request.uri.queryParameters
        for (name, _) in query where name != "owner" {
            throw APIError.invalid(field: String(name), "is not a parameter of /v1/api-keys; the one parameter is owner")
        }
        if let owner = query["owner"].map(String.init), !owner.isEmpty {
            guard caller.isAdmin || owner == caller.user else {
                throw APIError(.forbidden, "only an admin may see or revoke another user's API keys; leave out owner for your own")
            }
            return owner
        }
        return caller.isAdmin && all ? nil : caller.user
    }

    static func view(_ key: StoredAPIKey, key secret: String? = nil) -> APIKeyView {
        APIKeyView(name: key.name, owner: key.owner, createdAt: key.createdAt, lastUsedAt: key.lastUsedAt, key: secret)
    }
}
