public import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// HTTP/1.1 to loopback ports over kept-alive connections: berthd's calls to its serve
/// processes. Opening a TCP connection per call costs more than the call itself.
///
/// A call writes its request to the channel from its own task, and the channel's handler
/// resumes that task with the answer from the event loop: no task of its own per connection
/// to hand the exchange to and back (two thread hops per call fewer; each one is a wake-up).
public final class KeepAliveClient: Sendable {
    /// One connection, taking one exchange at a time (a caller takes it from the idle list).
    final class Connection: Sendable {
        let channel: any Channel
        let state: ConnectionState

        init(channel: any Channel, state: ConnectionState) {
            self.channel = channel
            self.state = state
        }

        var isOpen: Bool { state.open.withLock { $0 } }
    }

    /// Idle connections per port, behind a lock: every call takes one and gives it back.
    private let idle = Mutex<[Int: [Connection]]>([:])
    /// Idle connections kept per port; more are opened under load and closed when returned.
    private let keepPerPort: Int

    public init(keepPerPort: Int = 64) {
        self.keepPerPort = keepPerPort
    }

    /// Sends one request to `127.0.0.1:port`; a connection the server closed is replaced once.
    public func send(port: Int, method: String, path: String, body: Data, headers: [(String, String)] = []) async throws -> Response {
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Content-Length", value: String(body.count))
        for (name, value) in headers { head.headers.replaceOrAdd(name: name, value: value) }
        for attempt in 0..<2 {
            let (connection, reused) = try await take(port)
            do {
                let response = try await withCheckedThrowingContinuation { continuation in
                    let exchange = Exchange(head: head, body: body, answer: continuation)
                    connection.channel.writeAndFlush(exchange).whenFailure { error in
                        // Never reached the handler (the channel closed first), or failed on the
                        // way out: whichever side fails it first answers the caller.
                        exchange.finish(.failure(ClientError.transport("127.0.0.1:\(port): \(error)")))
                    }
                }
                give(connection, port: port)
                return response
            } catch {
                // A kept connection may have been closed by the server meanwhile: try a new one.
                if !(reused && attempt == 0) { throw error }
            }
        }
        throw ClientError.transport("no answer from 127.0.0.1:\(port)")
    }

    private func take(_ port: Int) async throws -> (Connection, Bool) {
        let kept = idle.withLock { idle -> Connection? in
            while let connection = idle[port]?.popLast() {
                if connection.isOpen { return connection }
            }
            return nil
        }
        if let kept { return (kept, true) }
        do {
            return (try await Self.connect(port), false)
        } catch {
            throw ClientError.transport("cannot connect to 127.0.0.1:\(port): \(error)")
        }
    }

    private func give(_ connection: Connection, port: Int) {
        guard connection.isOpen else { return }
        let kept = idle.withLock { idle -> Bool in
            guard idle[port, default: []].count < keepPerPort else { return false }
            idle[port, default: []].append(connection)
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Forgets the connections to a port (its server is gone).
    public func forget(port: Int) {
        let dropped = idle.withLock { idle in idle.removeValue(forKey: port) ?? [] }
        for connection in dropped { connection.channel.close(promise: nil) }
    }

    static func connect(_ port: Int) async throws -> Connection {
        let state = ConnectionState()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ExchangeHandler(state: state, port: port))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return Connection(channel: channel, state: state)
    }
}

/// Whether a connection can take another exchange; its handler clears it when the connection
/// ends, from the event loop, and callers look before they take it.
final class ConnectionState: Sendable {
    let open = Mutex(true)
}

/// One request and the caller waiting for its answer, which is given once: by the handler
/// when the response ends or the connection fails, or by the write's failure if the request
/// never reached the handler.
final class Exchange: Sendable {
    let head: HTTPRequestHead
    let body: Data
    private let answer: Mutex<CheckedContinuation<Response, any Error>?>

    init(head: HTTPRequestHead, body: Data, answer: CheckedContinuation<Response, any Error>) {
        self.head = head
        self.body = body
        self.answer = Mutex(answer)
    }

    func finish(_ result: Result<Response, any Error>) {
        answer.withLock { $0.take() }?.resume(with: result)
    }
}

/// Sends each exchange's request and collects its response, on the connection's event loop.
/// A response without keep-alive, an error or the peer closing ends the connection; a caller
/// waiting on it then gets an error, never a hang.
final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Exchange
    typealias OutboundOut = HTTPClientRequestPart

    private let state: ConnectionState
    private let port: Int
    private var pending: Exchange?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    init(state: ConnectionState, port: Int) {
        self.state = state
        self.port = port
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard pending == nil else {
            exchange.finish(.failure(ClientError.transport("127.0.0.1:\(port): a request is already under way on this connection")))
            promise?.succeed()
            return
        }
        pending = exchange
        head = nil
        body.clear()
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if !exchange.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: exchange.body)))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let received):
            head = received
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head, let exchange = pending else { return }
            pending = nil
            let keepAlive = head.isKeepAlive
            if !keepAlive { state.open.withLock { $0 = false } }
            exchange.finish(
                .success(
                    Response(
                        status: Int(head.status.code),
                        headers: head.headers.map { ($0.name, $0.value) },
                        body: Data(body.readableBytesView)
                    )
                )
            )
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(ClientError.transport("127.0.0.1:\(port): \(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ClientError.transport("127.0.0.1:\(port) closed the connection"))
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        state.open.withLock { $0 = false }
        pending?.finish(.failure(error))
        pending = nil
    }
}
