public import BerthConfig
import BerthWire
import Foundation
public import Hummingbird
public import Logging
import NIOCore
import ServiceLifecycle

/// Assembles the `[openai] listen` application: the OpenAI routes and nothing else, on TCP, for
/// clients that cannot reach a UNIX socket. TCP carries no peer credentials, so every request
/// names its caller with an API key (`Authorization: Bearer KEY`) and acts as the key's owner.
/// Its calls share the socket's budgets: a reservation's bucket is one, however it is called.
public func buildOpenAIApplication(
    services: ControlServices,
    address: DaemonConfig.ListenAddress,
    connections: ConnectionPolicy,
    logger: Logger
)
    -> some ApplicationProtocol
{
    let router = Router(context: BerthRequestContext.self)
    router.add(middleware: OpenAINotFoundMiddleware())
    OpenAIController(calls: Invocations(services, serve: services.serve), callers: .apiKeys(services.keyring))
        .addRoutes(to: router.group("openai/v1"))
    return Application(
        router: router,
        server: .http1(configuration: connections.http1Configuration(logger: logger)),
        configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "berthd/\(BerthVersion.current)"),
        onServerRunning: { _ in logger.info("serving the OpenAI routes", metadata: ["address": "\(address)"]) },
        logger: logger
    )
}

/// Any other path on the OpenAI listener is 404 in OpenAI's shape: nothing of the control
/// socket's API is reachable there.
struct OpenAINotFoundMiddleware: RouterMiddleware {
    typealias Context = BerthRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound || error.status == .methodNotAllowed {
            return OpenAIError(
                status: 404,
                message:
                    "no route \(request.method) \(request.uri.path) here: this address serves only /openai/v1/completions, /openai/v1/chat/completions and /openai/v1/models",
                code: ErrorCode.notFound.rawValue
            ).response
        }
    }
}
