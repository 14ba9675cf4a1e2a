import BerthWire
public import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix

/// An HTTP/1.1 client for berthd's control socket: one connection per request, JSON bodies.
/// It also speaks to a loopback TCP port (berthd to its serve processes).
public struct SocketClient: Sendable {
    public let socketPath: String
    /// Set for a TCP client; `socketPath` then only names it in errors.
    public let port: Int?

    public init(socketPath: String) {
        self.socketPath = socketPath
        self.port = nil
    }

    /// A client of `127.0.0.1:port`.
    public init(loopbackPort port: Int) {
        self.socketPath = "127.0.0.1:\(port)"
        self.port = port
    }

    /// Sends one request and collects the whole response. A status that is not 2xx is still a
    /// `Response`; only a failure to talk to the daemon at all throws. With a `timeout`, an
    /// answer not complete by then is a `.transport` error: a peer that took the request and
    /// never answers (a stopped process) would otherwise hold the caller forever.
    public func send(
        method: String,
        path: String,
        body: Data? = nil,
        headers: [(String, String)] = [],
        timeout: Duration? = nil
    ) async throws(ClientError) -> Response {
        let channel = try await connect()

        let head = ControlConnection.requestHead(method: method, path: path, body: body, headers: headers)

        // Closing the connection ends the wait for the answer below.
        let deadline = timeout.map { limit in
            channel.channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { channel.channel.close(promise: nil) }
        }
        defer { deadline?.cancel() }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // One write for the whole request: with a Content-Length the server may answer
                // and close as soon as the body is in, so a separate, empty `.end` write could
                // find the channel already closed.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body, !body.isEmpty {
                    parts.append(.body(.byteBuffer(ByteBuffer(bytes: body))))
                }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)

                var responseHead: HTTPResponseHead?
                var collected = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let received):
                        responseHead = received
                    case .body(var chunk):
                        collected.writeBuffer(&chunk)
                    case .end:
                        guard let responseHead else { break }
                        return Response(
                            status: Int(responseHead.status.code),
                            headers: responseHead.headers.map { ($0.name, $0.value) },
                            body: Data(collected.readableBytesView)
                        )
                    }
                }
                throw ClientError.transport("berthd closed the connection before answering \(method) \(path)")
            }
        } catch let error as ClientError {
            throw error
        } catch {
            throw .transport("the exchange with berthd failed during \(method) \(path): \(error)")
        }
    }

    /// Sends a JSON body (if any) and decodes a 2xx answer; any other status throws `.api`.
    public func request<T: Decodable>(
        _ type: T.Type = T.self,
        method: String,
        path: String,
        body: (any Encodable)? = nil,
        headers: [(String, String)] = []
    ) async throws(ClientError) -> T {
        var data: Data?
        if let body {
            do {
                data = try Wire.encoder().encode(body)
            } catch {
                throw .transport("cannot encode the request body: \(error)")
            }
        }
        return try await send(method: method, path: path, body: data, headers: headers).decoded(as: T.self)
    }

    /// A new connection to the peer (the loopback port, else the socket), ready for HTTP/1.1.
    func connect() async throws(ClientError) -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart> {
        do {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
            let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                }
            }
            if let port {
                return try await bootstrap.connect(host: "127.0.0.1", port: port, channelInitializer: initializer)
            }
            return try await bootstrap.connect(unixDomainSocketPath: socketPath, channelInitializer: initializer)
        } catch {
            throw .unreachable(path: socketPath, reason: Self.describeConnectFailure(error))
        }
    }

    private static func describeConnectFailure(_ error: any Error) -> String {
        if let io = error as? IOError {
            return ControlConnection.describeConnectFailure(io.errnoCode)
        }
        if case SocketAddressError.unixDomainSocketPathTooLong = error {
            return "the socket path is too long"
        }
        return "\(error)"
    }
}
