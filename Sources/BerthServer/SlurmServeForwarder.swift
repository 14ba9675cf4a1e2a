import NIOCore
import NIOPosix

/// A loopback port that forwards every connection to the host and port a serve job on a
/// Slurm node said it listens on. berthd's callers of serve processes (health checks, calls,
/// kept-alive connections) speak to loopback ports; this puts a serve process on any node
/// behind one, byte for byte, one outgoing connection per incoming one.
final class SlurmServeForwarder: Sendable {
    let port: Int
    let target: (host: String, port: Int)
    private let listener: any Channel

    private init(listener: any Channel, port: Int, target: (host: String, port: Int)) {
        self.listener = listener
        self.port = port
        self.target = target
    }

    /// Listens on a free loopback port for connections to forward to `host:port`.
    static func start(to host: String, port targetPort: Int) async throws -> SlurmServeForwarder {
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Nothing is read from a caller before its connection to the serve job is up.
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: host, port: targetPort)
                    .flatMap { outbound in
                        let (toServe, toCaller) = ForwardingHandler.pair()
                        return inbound.pipeline.addHandler(toServe).flatMap {
                            outbound.pipeline.addHandler(toCaller)
                        }.flatMap {
                            inbound.setOption(.autoRead, value: true)
                        }
                    }
                    .flatMapErrorThrowing { error in
                        // The serve job is not there (yet): the caller sees its connection closed.
                        inbound.close(promise: nil)
                        throw error
                    }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = listener.localAddress?.port else {
            try? await listener.close()
            throw ChannelError.unknownLocalAddress
        }
        return SlurmServeForwarder(listener: listener, port: port, target: (host, targetPort))
    }

    func close() {
        listener.close(promise: nil)
    }
}

/// One side of a forwarded connection: what it reads is written to its partner's channel,
/// and either side closing closes both. Reads follow the partner's writability, so a slow
/// side holds the other back instead of piling bytes up in memory.
private final class ForwardingHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    // Both handlers of a pair run on the same event loop (the outbound connection is made on
    // the inbound one's loop), which is what makes these plain references safe.
    private var partner: ForwardingHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (ForwardingHandler, ForwardingHandler) {
        let first = ForwardingHandler()
        let second = ForwardingHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, partner.pendingRead {
            partner.pendingRead = false
            partner.context?.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
