import BerthTestSupport
import Foundation
import Testing

/// The HTTP connection itself, as any client (curl, a script) would see it: what only a real
/// socket shows. The routes' answers are checked in-process (CatalogRouteTests).
@Suite("Control socket API", .serialized)
struct ControlSocketTests {
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
}
