import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// What keeps one client from taking the daemon from everyone else: the connection cap, the
/// request and idle timeouts; and the ledger's file mode. The per-user queued-job cap is a
/// request rule, checked in-process (JobRouteTests).
@Suite("Hardening", .serialized)
struct HardeningTests {
    static let model = "amazon.nova-micro-v1:0"
    static let health = "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"

    func daemon(limits: String) throws -> TemporaryDaemon {
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[limits]\n" + limits))
        try daemon.start()
        return daemon
    }

    /// A kept-alive connection that has been served once, so the daemon counts it as open.
    /// Connections the CLI closed a moment ago may still hold their places: it tries again
    /// until one is free.
    func servedConnection(_ daemon: TemporaryDaemon) throws -> RawSocket {
        var last: RawResponse?
        var served: RawSocket?
        _ = try eventually(timeout: 15) {
            let socket = try RawSocket(path: daemon.socket)
            #expect(socket.send(Self.health))
            last = try socket.readResponse()
            if last?.status == 200 {
                served = socket
                return true
            }
            #expect(last?.error?.code == "too-many-connections", "\(String(describing: last))")
            return false
        }
        if let served { return served }
        throw RawSocket.Failure(description: "never served: \(String(describing: last))")
    }

    @Test("a connection over max_connections is answered 503 too-many-connections in the error shape, and served again once one closes")
    func connectionCap() throws {
        let daemon = try daemon(limits: "max_connections = 2\n")
        var first: RawSocket? = try servedConnection(daemon)
        let second = try servedConnection(daemon)

        let third = try RawSocket(path: daemon.socket)
        #expect(third.send(Self.health))
        let refused = try #require(try third.readResponse())
        #expect(refused.status == 503)
        #expect(refused.error?.code == "too-many-connections")
        #expect(refused.error?.message.contains("max_connections") == true)
        #expect(refused.header("retry-after") == "1")
        #expect(refused.header("connection") == "close")
        #expect(try third.readToEnd().isEmpty && third.sawEOF)

        // The CLI says so, and what to do.
        let status = try daemon.cli(["status"])
        #expect(status.status == 1, "\(status)")
        #expect(status.stderr.contains("too-many-connections"), "\(status)")

        // The two admitted connections are still served.
        #expect(second.send(Self.health))
        #expect(try second.readResponse()?.status == 200)

        // Once one closes, its place is free again.
        first = nil
        _ = first
        #expect(try eventually(timeout: 30, every: 0.1) { try daemon.cli(["status"]).status == 0 }, "\(daemon.log)")
        #expect(daemon.isRunning)
    }

    @Test("a kept-alive connection that sends nothing more is closed after idle_timeout_seconds, as is one that never sends anything")
    func idleTimeout() throws {
        let daemon = try daemon(limits: "idle_timeout_seconds = 1\n")
        let served = try servedConnection(daemon)
        #expect(try served.readToEnd().isEmpty)
        #expect(served.sawEOF)
        let silent = try RawSocket(path: daemon.socket)
        #expect(try silent.readToEnd().isEmpty)
        #expect(silent.sawEOF)
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("half a request that stalls is answered 408 request-timeout and closed; the idle timeout alone would have waited a minute")
    func stalledHead() throws {
        let daemon = try daemon(limits: "request_timeout_seconds = 1\nidle_timeout_seconds = 60\n")
        let socket = try RawSocket(path: daemon.socket)
        #expect(socket.send("GET /v1/health HTTP/1.1\r\nHost: loc"))
        let answer = try #require(try socket.readResponse())
        #expect(answer.status == 408)
        #expect(answer.error?.code == "request-timeout")
        #expect(answer.error?.message.contains("request_timeout_seconds") == true)
        #expect(try socket.readToEnd().isEmpty && socket.sawEOF)
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("a client that trickles its request a byte at a time cannot hold the connection: it is answered 408 and closed")
    func trickle() throws {
        let daemon = try daemon(limits: "request_timeout_seconds = 1\nidle_timeout_seconds = 60\n")
        let socket = try RawSocket(path: daemon.socket)
        #expect(socket.send("GET /v1/health HTTP/1.1\r\nX-Slow: "))
        // A byte every tenth of a second, for as long as the daemon lets it (at most 30 s).
        var sent = 0
        while !socket.readable(within: 0.1), sent < 300 {
            guard socket.send("a") else { break }
            sent += 1
        }
        let answer = try #require(try socket.readResponse())
        #expect(answer.status == 408, "\(answer)")
        #expect(answer.error?.code == "request-timeout")
        #expect(try socket.readToEnd().isEmpty && socket.sawEOF)
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("a request whose body stalls is closed and changes nothing")
    func stalledBody() throws {
        let daemon = try daemon(limits: "request_timeout_seconds = 1\n")
        let socket = try RawSocket(path: daemon.socket)
        #expect(
            socket.send(
                "POST /v1/reservations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{\"name\": \"half\", \"model\": \"\(Self.model)\","
            )
        )
        _ = try socket.readToEnd()
        #expect(socket.sawEOF)
        let list = try daemon.view(ReservationList.self, ["reservations"])
        #expect(list.reservations.isEmpty, "\(list)")
    }

    @Test("bytes that are not HTTP are answered 400 in the API's error shape, and the daemon carries on")
    func notHTTP() throws {
        let daemon = try daemon(limits: "")
        for garbage in [
            "\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\r\n\r\n", "GET /v1/health HTTP/1.1\r\nHost localhost\r\n\r\n",
            "GET /v1/health HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        ] {
            let socket = try RawSocket(path: daemon.socket)
            #expect(socket.send(garbage))
            let answer = try #require(try socket.readResponse(), "\(garbage)")
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.error?.code == "invalid-argument", "\(answer)")
            #expect(answer.error?.message.contains("HTTP") == true, "\(answer)")
        }
        let long = try RawSocket(path: daemon.socket)
        #expect(long.send("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: \(String(repeating: "b", count: 100_000))\r\n\r\n"))
        let answer = try #require(try long.readResponse())
        #expect(answer.status == 400)
        #expect(answer.error?.message.contains("over the limit") == true, "\(answer)")
        #expect(try daemon.cli(["status"]).status == 0)
    }

    // MARK: What the fuzzer found (FuzzTests), kept as regressions

    func post(_ socket: String, _ path: String, rawBody body: [UInt8], contentLength: Int? = nil, chunked: Bool = false) throws -> RawResponse? {
        let connection = try RawSocket(path: socket)
        var head = "POST \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
        head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: \(contentLength ?? body.count)\r\n\r\n"
        connection.send(Array(head.utf8) + body)
        shutdown(connection.fd, Int32(SHUT_WR))
        return try connection.readResponse()
    }

    @Test("berth invoke with --max-tokens 2^63-1 exits 2 (it overflowed and crashed berthd), and berthd carries on")
    func hugeMaxTokens() throws {
        let daemon = try daemon(limits: "")
        let cli = try daemon.cli(["invoke", Self.model, "--prompt", "hello", "--max-tokens", "9223372036854775807"])
        #expect(cli.status == 2, "\(cli)")
        #expect(daemon.isRunning)
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("a body cut short, or whose chunks break, is refused 400 and acts on nothing, even when what came is a whole JSON object")
    func brokenBodies() throws {
        let daemon = try daemon(limits: "")
        let whole = Array(#"{"name": "cut", "model": "\#(Self.model)", "model_units": 1}"#.utf8)
        // Content-Length promises 20 bytes more than come before the client stops sending.
        let cut = try #require(try post(daemon.socket, "/v1/reservations", rawBody: whole, contentLength: whole.count + 20))
        #expect(cut.status == 400, "\(cut)")
        #expect(cut.error?.message.hasPrefix("request body: ") == true, "\(cut)")
        // A first chunk holding the whole object, then a chunk size that is not hex.
        let chunks = Array(String(whole.count, radix: 16).utf8) + [13, 10] + whole + Array("\r\nzz\r\n".utf8)
        let broken = try #require(try post(daemon.socket, "/v1/reservations", rawBody: chunks, chunked: true))
        #expect(broken.status == 400, "\(broken)")
        // The same with 300 KB after the bad size: the decoder's later complaint was a 500.
        let long = chunks + [UInt8](repeating: UInt8(ascii: "{"), count: 300_000)
        let longBroken = try #require(try post(daemon.socket, "/v1/reservations", rawBody: long, chunked: true))
        #expect(longBroken.status == 400, "\(longBroken)")
        #expect(longBroken.error != nil, "\(longBroken)")
        let list = try daemon.view(ReservationList.self, ["reservations"])
        #expect(list.reservations.isEmpty, "\(list)")
    }

    // MARK: The ledger's files

    @Test("berthd's ledger is 0600; one left readable by others is made private at start, with a warning")
    func ledgerMode() throws {
        let daemon = try TemporaryDaemon()
        _ = FileManager.default.createFile(atPath: daemon.database, contents: nil, attributes: [.posixPermissions: 0o644])
        try daemon.start()
        #expect(try daemon.cli(["reserve", "r", "--model", Self.model, "--units", "1"]).status == 0)
        for file in [daemon.database, daemon.database + "-wal", daemon.database + "-shm"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(file)")
        }
        #expect(daemon.log.contains("the ledger was readable by other users; made it private"), "\(daemon.log)")
        #expect(daemon.log.contains("was=644"), "\(daemon.log)")
    }
}
