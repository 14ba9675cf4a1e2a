import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Where the calls go: berthd's control socket, or a serve process's loopback port.
enum Endpoint: Sendable, CustomStringConvertible {
    case unixSocket(String)
    case loopback(port: Int)

    var description: String {
        switch self {
        case .unixSocket(let path): path
        case .loopback(let port): "127.0.0.1:\(port)"
        }
    }
}

/// The one request a run sends over and over, or, with `vary`, a request made afresh for each
/// call from the connection's number and the call's number on it.
struct CallTemplate: Sendable {
    var endpoint: Endpoint
    var head: HTTPRequestHead
    var body: ByteBuffer
    var vary: (@Sendable (_ connection: Int, _ call: Int) -> (HTTPRequestHead, ByteBuffer))?

    init(endpoint: Endpoint, head: HTTPRequestHead, body: ByteBuffer) {
        self.endpoint = endpoint
        self.head = head
        self.body = body
    }

    /// Requests made per call over the socket: `make` gives the method, path and JSON body.
    static func varying(
        to endpoint: Endpoint,
        _ make: @escaping @Sendable (_ connection: Int, _ call: Int) -> (HTTPMethod, String, Data?)
    ) -> CallTemplate {
        var template = CallTemplate(endpoint: endpoint, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), body: ByteBuffer())
        template.vary = { connection, call in
            let (method, path, json) = make(connection, call)
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: "localhost")
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(json?.count ?? 0))
            return (head, json.map { ByteBuffer(bytes: $0) } ?? ByteBuffer())
        }
        return template
    }

    /// `POST path` with a JSON body, keeping the connection open (HTTP/1.1's default).
    static func post(_ path: String, json: Data, to endpoint: Endpoint) -> CallTemplate {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        switch endpoint {
        case .unixSocket: head.headers.add(name: "Host", value: "localhost")
        case .loopback(let port): head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        }
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Accept", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(json.count))
        return CallTemplate(endpoint: endpoint, head: head, body: ByteBuffer(bytes: json))
    }
}

/// A measured run: how many calls were answered, how fast, and the spread of their latencies.
struct RunFigures: Sendable, Encodable {
    var name: String
    var endpoint: String
    var calls: Int
    var failures: Int
    var firstFailure: String?
    var seconds: Double
    var callsPerSecond: Double
    /// Milliseconds; nil when no call was answered.
    var p50: Double?
    var p90: Double?
    var p99: Double?
    var max: Double?

    /// In `--json`, latencies say their unit.
    enum CodingKeys: String, CodingKey {
        case name, endpoint, calls, failures, firstFailure, seconds, callsPerSecond
        case p50 = "p50Ms"
        case p90 = "p90Ms"
        case p99 = "p99Ms"
        case max = "maxMs"
    }

    init(name: String, endpoint: Endpoint, tally: CallTally, seconds: Double) {
        self.name = name
        self.endpoint = endpoint.description
        calls = tally.latencies.count
        failures = tally.failures
        firstFailure = tally.firstFailure
        self.seconds = seconds
        callsPerSecond = seconds > 0 ? Double(calls) / seconds : 0
        let sorted = tally.latencies.sorted()
        p50 = Self.percentile(sorted, 0.50)
        p90 = Self.percentile(sorted, 0.90)
        p99 = Self.percentile(sorted, 0.99)
        max = sorted.last.map { Double($0) / 1e6 }
    }

    /// Nearest rank: the smallest latency at or above `fraction` of the calls, in milliseconds.
    static func percentile(_ sorted: [Int64], _ fraction: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return Double(sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]) / 1e6
    }
}

/// Numbers connections across runs, so varying requests never repeat a name.
private let connections = Atomic<Int>(0)

/// Many clients, each on its own keep-alive connection, sending one call at a time for a while.
enum LoadRun {
    static func run(
        _ template: CallTemplate,
        clients: Int,
        seconds: Double,
        on eventLoops: any EventLoopGroup
    ) async -> (tally: CallTally, seconds: Double) {
        let start = NIODeadline.now()
        let deadline = start + .nanoseconds(Int64(seconds * 1e9))
        let tally = await withTaskGroup(of: CallTally.self) { group in
            for _ in 0..<clients {
                group.addTask { await client(template, until: deadline, on: eventLoops) }
            }
            var total = CallTally()
            for await one in group { total.merge(one) }
            return total
        }
        // Until the last answer: calls in flight at the deadline are waited for and counted.
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        return (tally, elapsed)
    }

    /// One client: a connection that calls until the deadline, and a new one if the server
    /// closes it earlier. A connection that cannot be made ends the client, counted as a failure.
    private static func client(
        _ template: CallTemplate,
        until deadline: NIODeadline,
        on eventLoops: any EventLoopGroup
    ) async -> CallTally {
        var tally = CallTally()
        while NIODeadline.now() < deadline {
            let done = eventLoops.next().makePromise(of: CallTally.self)
            let bootstrap = ClientBootstrap(group: eventLoops)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            CallLoop(
                                template: template,
                                connection: connections.wrappingAdd(1, ordering: .relaxed).oldValue,
                                deadline: deadline,
                                done: done
                            )
                        )
                    }
                }
            do {
                switch template.endpoint {
                case .unixSocket(let path):
                    _ = try await bootstrap.connect(unixDomainSocketPath: path).get()
                case .loopback(let port):
                    _ = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
                }
            } catch {
                // The handler, if it was added, has already reported; otherwise nothing will.
                done.succeed(CallTally())
                tally.fail("cannot connect to \(template.endpoint): \(error)")
                break
            }
            tally.merge((try? await done.futureResult.get()) ?? CallTally())
        }
        return tally
    }
}
