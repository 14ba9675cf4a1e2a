public import FoundationEssentials
import NIOCore
import NIOEmbedded
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// One blocking HTTP/1.1 exchange with berthd over its control socket, for the CLI: a command
/// makes one or two requests, so it starts no event-loop threads for them. HTTP is NIO's own
/// codec (the encoder and llhttp decoder), driven in an `EmbeddedChannel` on the calling
/// thread; the bytes go through a plain socket. Every exchange has a deadline, so a stopped or
/// wedged daemon ends in `.timedOut` instead of a wait without end.
public struct ControlConnection: Sendable {
    public let socketPath: String
    /// The whole exchange, connect to last byte.
    public var timeout: Duration

    public init(socketPath: String, timeout: Duration = .seconds(30)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// One exchange. With `streaming`, the body of a 2xx answer is handed to it piece by piece
    /// as it arrives (a server-sent event stream) instead of collected, and the timeout is
    /// the longest wait for the next piece rather than for the whole answer.
    public func send(
        method: String,
        path: String,
        body: Data? = nil,
        headers: [(String, String)] = [],
        streaming: ((Data) -> Void)? = nil
    ) throws(ClientError) -> Response {
        var deadline = ContinuousClock.now + timeout
        let fd = try connect()
        defer { close(fd) }

        let head = Self.requestHead(method: method, path: path, body: body, headers: headers)
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            try channel.writeOutbound(HTTPClientRequestPart.head(head))
            if let body, !body.isEmpty { try channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            var request = ByteBuffer()
            while var part = try channel.readOutbound(as: ByteBuffer.self) { request.writeBuffer(&part) }
            try write(request, to: fd, by: deadline, method: method, path: path)
        } catch let error as ClientError {
            throw error
        } catch {
            throw .transport("cannot encode \(method) \(path): \(error)")
        }

        var responseHead: HTTPResponseHead?
        var collected = ByteBuffer()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var sawEnd = false
        do {
            while !sawEnd {
                try wait(fd, for: Int16(POLLIN), by: deadline, method: method, path: path)
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw ClientError.transport("reading the answer to \(method) \(path) failed: \(String(cString: strerror(errno)))")
                }
                if count == 0 {
                    // A body that runs to the end of the connection ends with it.
                    channel.pipeline.fireChannelInactive()
                } else {
                    try channel.writeInbound(ByteBuffer(bytes: chunk[0..<count]))
                }
                while let part = try channel.readInbound(as: HTTPClientResponsePart.self) {
                    switch part {
                    case .head(let received): responseHead = received
                    case .body(var bytes):
                        if let streaming, let status = responseHead?.status.code, (200..<300).contains(status) {
                            streaming(bytes.withUnsafeReadableBytes { Data($0) })
                            deadline = ContinuousClock.now + timeout
                        } else {
                            collected.writeBuffer(&bytes)
                        }
                    case .end: sawEnd = true
                    }
                }
                if count == 0 && !sawEnd {
                    throw ClientError.transport("berthd closed the connection before answering \(method) \(path)")
                }
            }
        } catch let error as ClientError {
            throw error
        } catch {
            throw .transport("the exchange with berthd failed during \(method) \(path): \(error)")
        }
        guard let responseHead else { throw .transport("berthd answered \(method) \(path) without a status line") }
        return Response(
            status: Int(responseHead.status.code),
            headers: responseHead.headers.map { ($0.name, $0.value) },
            // From the raw bytes: `Data(_:)` of a sequence asks the runtime whether it is
            // `ContiguousBytes`, a conformance lookup (a scan of the binary) every command pays.
            body: collected.withUnsafeReadableBytes { Data($0) }
        )
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

    private func connect() throws(ClientError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable(path: socketPath, reason: String(cString: strerror(errno))) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            close(fd)
            throw .unreachable(path: socketPath, reason: "the socket path is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw .unreachable(path: socketPath, reason: Self.describeConnectFailure(code))
        }
        return fd
    }

    /// What a failed `connect` to the control socket means, in words the CLI shows.
    static func describeConnectFailure(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such socket"
        case ECONNREFUSED: "connection refused: nothing is listening"
        case EACCES, EPERM: "permission denied: your user must be in the socket's group, or an admin"
        case ENOTSOCK: "not a socket"
        default: String(cString: strerror(code))
        }
    }

    private func write(_ buffer: ByteBuffer, to fd: Int32, by deadline: ContinuousClock.Instant, method: String, path: String) throws(ClientError) {
        let bytes = Array(buffer.readableBytesView)
        var sent = 0
        while sent < bytes.count {
            try wait(fd, for: Int16(POLLOUT), by: deadline, method: method, path: path)
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                // The daemon may answer (a 413, a 503) and close before taking the whole body:
                // what it said is read next.
                if errno == EPIPE || errno == ECONNRESET { return }
                throw .transport("sending \(method) \(path) failed: \(String(cString: strerror(errno)))")
            }
            sent += count
        }
    }

    /// Waits until `fd` is ready for `events`, or throws `.timedOut` at the deadline.
    private func wait(_ fd: Int32, for events: Int16, by deadline: ContinuousClock.Instant, method: String, path: String) throws(ClientError) {
        while true {
            let left = deadline - ContinuousClock.now
            let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            guard milliseconds > 0 else { throw .timedOut(path: socketPath, after: timeout, request: "\(method) \(path)") }
            var poller = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&poller, 1, Int32(min(milliseconds, Int64(Int32.max))))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw .transport("waiting for berthd failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
