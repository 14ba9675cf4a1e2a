import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// The HTTP API itself, as any client (curl, a script) would see it.
@Suite("Control socket API", .serialized)
struct ControlSocketTests {
    func body(_ json: String) -> Data { Data(json.utf8) }

    func error(_ response: Response) -> ErrorBody? {
        try? Wire.decoder().decode(ErrorBody.self, from: response.body)
    }

    @Test(
        "a client that writes a body over 1 MiB whole before reading gets its 413 at once and the connection closes, whether it asked to close or not",
        arguments: [(true, 2 << 20), (false, 2 << 20), (true, 20 << 20)]
    )
    func tooLargeLetsGo(askedToClose: Bool, size: Int) throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        // Sends and reads give up after 5 s: a daemon that answers and then stops reading would
        // leave this blocking send waiting that long.
        let connection = try RawSocket(path: daemon.socket, readTimeout: 5)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
        var head = "POST /v1/reservations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        if askedToClose { head += "Connection: close\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let started = Date()
        let sent = connection.send(Array(head.utf8) + body)
        // Up to 8 MiB are read and dropped after the answer, so the whole send goes through;
        // past that the connection is closed under it.
        #expect(sent == (size <= 8 << 20), "\(connection.sendError)")
        #expect(sent || connection.sendError != EAGAIN, "the send waited for its timeout")
        let answer = try #require(try connection.readResponse())
        #expect(answer.status == 413, "\(answer)")
        #expect(answer.error?.code == "payload-too-large")
        #expect(answer.header("connection") == "close")
        #expect(try connection.readToEnd().isEmpty && connection.sawEOF)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(daemon.isRunning)
    }

    @Test("unknown routes are 404 in the error shape; model ids with ':' are found percent-encoded")
    func routes() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let client = SocketClient(socketPath: daemon.socket)
        let missing = try await client.send(method: "GET", path: "/v1/nothing")
        #expect(missing.status == 404)
        #expect(error(missing)?.error.code == "not-found")
        let model = try await client.request(ModelView.self, method: "GET", path: "/v1/models/amazon.nova-micro-v1%3A0")
        #expect(model.maxTokens == 128_000)
        #expect(model.price.onDemandInputPerThousand == 0.000035)
        let health = try await client.request(HealthView.self, method: "GET", path: "/v1/health")
        #expect(health.units.dedicated == 8)
        #expect(health.units.shared == 2)
    }
}
