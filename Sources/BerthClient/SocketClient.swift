public import BerthWire
public import Foundation
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

        let head = Self.requestHead(method: method, path: path, body: body, headers: headers)

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

    /// The head of a one-shot request: JSON both ways, and the connection closes after it.
    static func requestHead(method: String, path: String, body: Data?, headers: [(String, String)]) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
        head.headers.add(name: "Host", value: "localhost")
        head.headers.add(name: "Accept", value: "application/json")
        head.headers.add(name: "Connection", value: "close")
        if let body {
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(body.count))
        }
        for (name, value) in headers {
            head.headers.replaceOrAdd(name: name, value: value)
        }
        return head
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

/// A complete response from berthd.
public struct Response: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data

    public init(status: Int, headers: [(String, String)], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, matched without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// The body decoded as `T` if the status is 2xx; otherwise the API error it carries. An empty
    /// body (a 204) decodes as `{}`, so a type with no required fields accepts it.
    public func decoded<T: Decodable>(as type: T.Type = T.self) throws(ClientError) -> T {
        guard (200..<300).contains(status) else { throw apiError }
        do {
            return try Wire.decode(T.self, from: body.isEmpty ? Data("{}".utf8) : body)
        } catch {
            throw .undecodable("the answer of berthd (status \(status)) is not a \(T.self): \(error)")
        }
    }

    /// The error a non-2xx response stands for. A body that is not an `ErrorBody` (a proxy, an
    /// older daemon) becomes `http-<status>` with the body's text as the message.
    public var apiError: ClientError {
        let retryAfter = header("Retry-After").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        if let error = try? Wire.decoder().decode(ErrorBody.self, from: body) {
            return .api(status: status, body: error, retryAfter: retryAfter)
        }
        let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let message = text.isEmpty ? "berthd answered with status \(status)" : text
        return .api(status: status, body: ErrorBody(code: "http-\(status)", message: message), retryAfter: retryAfter)
    }
}

/// Everything that can go wrong talking to berthd, as the CLI reports it.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// No daemon on the other end: the socket is missing, refuses connections, or is not ours to open.
    case unreachable(path: String, reason: String)
    /// The connection broke or the daemon spoke something that is not HTTP.
    case transport(String)
    /// The daemon answered with an error status.
    case api(status: Int, body: ErrorBody, retryAfter: Int?)
    /// A 2xx answer whose body is not what the request promises.
    case undecodable(String)
    /// berthd took the connection but did not answer in time: stopped, wedged or overloaded.
    case timedOut(path: String, after: Duration, request: String)

    public var code: String {
        switch self {
        case .unreachable: "unreachable"
        case .transport: "transport"
        case .api(_, let body, _): body.error.code
        case .undecodable: "bad-response"
        case .timedOut: "timeout"
        }
    }

    public var message: String {
        switch self {
        case .unreachable(let path, let reason): "cannot connect to berthd at \(path): \(reason)"
        case .transport(let reason): reason
        case .api(_, let body, _): body.error.message
        case .undecodable(let reason): reason
        case .timedOut(let path, let limit, let request):
            """
            berthd at \(path) did not answer \(request) within \(limit.components.seconds) s; it may be stopped or wedged: \
            look with `systemctl status berthd` and its log (`journalctl -u berthd`), or wait longer with --timeout
            """
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .unreachable, .timedOut: .unreachable
        case .transport, .undecodable: .failure
        case .api(let status, _, _): ExitStatus(httpStatus: status)
        }
    }

    public var description: String { "\(code): \(message)" }
}

/// Percent-encoding for the pieces of a request target.
public enum PercentEncoding {
    /// RFC 3986 unreserved characters; everything else is escaped, so a model id such as
    /// `amazon.nova-micro-v1:0` stays one path segment.
    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )

    public static func pathSegment(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: unreserved) ?? segment
    }

    /// `?a=1&b=2` from the items that have a value; empty when none has.
    public static func query(_ items: [(String, String?)]) -> String {
        let pairs = items.compactMap { name, value in
            value.map { "\(pathSegment(name))=\(pathSegment($0))" }
        }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }
}
