import BerthWire
public import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
import NIOExtras
import NIOPosix
public import ServiceLifecycle

/// Serves the control plane's router on a socket systemd passed in (socket activation).
///
/// Hummingbird's `Application` can only bind an address itself, so this does what its server
/// does, on the passed descriptor: NIO's `ServerBootstrap` adopts the listening socket,
/// Hummingbird's `HTTP1Channel` handles each connection, and NIOExtras' `ServerQuiescingHelper`
/// lets requests in flight finish at shutdown. The socket file is systemd's and stays.
public struct ActivatedSocketServer: Service {
    public let socket: ListeningSocket
    private let responder: RouterResponder<BerthRequestContext>
    /// Names each connection's caller from its peer credentials.
    private let callers: CallerDirectory
    /// The connection cap and the request and idle timeouts, as for a socket berthd binds.
    public let connections: ConnectionPolicy
    public let logger: Logger
    /// Called once connections are being accepted.
    public let onServerRunning: @Sendable () async -> Void

    public init(
        socket: ListeningSocket,
        router: Router<BerthRequestContext>,
        callers: CallerDirectory,
        connections: ConnectionPolicy,
        logger: Logger,
        onServerRunning: @escaping @Sendable () async -> Void = {}
    ) {
        self.socket = socket
        self.responder = router.buildResponder()
        self.callers = callers
        self.connections = connections
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    public func run() async throws {
        let logger = self.logger
        let responder = self.responder
        let serverName = "berthd/\(BerthVersion.current)"
        let connections = CallerIdentifyingChannel(
            inner: HTTP1Channel(
                responder: { request, responseWriter, channel in
                    let context = BerthRequestContext(source: .init(channel: channel, logger: logger))
                    var response: Response
                    do {
                        response = try await responder.respond(to: request, context: context)
                    } catch {
                        // The router's error middleware answers every APIError; this is a last resort.
                        logger.error("unhandled error", metadata: ["error": "\(error)"])
                        response = Response(status: .internalServerError)
                    }
                    response.headers[.server] = serverName
                    try await responseWriter.write(response: response.head, body: response.body)
                },
                configuration: connections.http1Configuration(logger: logger)
            ),
            callers: callers
        )

        let group = MultiThreadedEventLoopGroup.singleton
        let quiescing = ServerQuiescingHelper(group: group)
        let server = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .bind(socket.descriptor) { channel in connections.setup(channel: channel, logger: logger) }

        await withGracefulShutdownHandler {
            await onServerRunning()
            await withDiscardingTaskGroup { tasks in
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            tasks.addTask { await connections.handle(value: connection, logger: logger) }
                        }
                    }
                } catch {
                    logger.error("accepting connections failed", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            // Stop accepting, let each connection finish its request, then close it.
            quiescing.initiateShutdown(promise: nil)
        }
    }
}
