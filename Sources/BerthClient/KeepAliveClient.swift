public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// HTTP/1.1 to loopback ports over kept-alive connections: berthd's calls to its serve
/// processes. Opening a TCP connection per call costs more than the call itself.
public final class KeepAliveClient: Sendable {
    /// One connection and the task that owns it, taking one exchange at a time.
    final class Connection: Sendable {
        typealias Job = (head: HTTPRequestHead, body: Data, answer: CheckedContinuation<Response, any Error>)
        let jobs: AsyncStream<Job>.Continuation
        let open = Mutex(true)

        init(jobs: AsyncStream<Job>.Continuation) {
            self.jobs = jobs
        }

        var isOpen: Bool { open.withLock { $0 } }
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
                let response = try await withCheckedThrowingContinuation { answer in
                    if case .terminated = connection.jobs.yield((head, body, answer)) {
                        answer.resume(throwing: ClientError.transport("127.0.0.1:\(port) closed the connection"))
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
        return (try await Self.connect(port), false)
    }

    private func give(_ connection: Connection, port: Int) {
        guard connection.isOpen else { return }
        let kept = idle.withLock { idle -> Bool in
            guard idle[port, default: []].count < keepPerPort else { return false }
            idle[port, default: []].append(connection)
            return true
        }
        if !kept { connection.jobs.finish() }
    }

    /// Forgets the connections to a port (its server is gone).
    public func forget(port: Int) {
        let dropped = idle.withLock { idle in idle.removeValue(forKey: port) ?? [] }
        for connection in dropped { connection.jobs.finish() }
    }

    static func connect(_ port: Int) async throws -> Connection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let (jobs, continuation) = AsyncStream.makeStream(of: Connection.Job.self)
        let connection = Connection(jobs: continuation)
        Task {
            var pending: Connection.Job?
            do {
                try await channel.executeThenClose { inbound, outbound in
                    var responses = inbound.makeAsyncIterator()
                    for await job in jobs {
                        pending = job
                        var parts: [HTTPClientRequestPart] = [.head(job.head)]
                        if !job.body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: job.body)))) }
                        parts.append(.end(nil))
                        try await outbound.write(contentsOf: parts)
                        var head: HTTPResponseHead?
                        var body = ByteBuffer()
                        answer: while let part = try await responses.next() {
                            switch part {
                            case .head(let received): head = received
                            case .body(var chunk): body.writeBuffer(&chunk)
                            case .end:
                                guard let head else { break answer }
                                pending = nil
                                let keep = head.isKeepAlive
                                if !keep { connection.open.withLock { $0 = false } }
                                job.answer.resume(returning: Response(
                                    status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) },
                                    body: Data(body.readableBytesView)))
                                if !keep { return }
                                break answer
                            }
                        }
                        if pending != nil { throw ClientError.transport("127.0.0.1:\(port) closed the connection") }
                    }
                }
            } catch {
                connection.open.withLock { $0 = false }
                pending?.answer.resume(throwing: error)
                pending = nil
            }
            connection.open.withLock { $0 = false }
            pending?.answer.resume(throwing: ClientError.transport("127.0.0.1:\(port) closed the connection"))
            // Anyone who queued on a connection that just closed gets an error, not a hang.
            continuation.finish()
        }
        return connection
    }
}
