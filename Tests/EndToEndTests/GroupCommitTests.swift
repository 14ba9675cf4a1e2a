import BerthClient
import BerthStore
import BerthTestSupport
import Foundation
import Testing

/// Reservations and jobs are group-committed: a burst of POSTs shares one transaction. Each one
/// must still succeed or fail on its own, and a key must still act once.
@Suite("Group commit")
struct GroupCommitTests {
    func reserve(_ client: SocketClient, _ name: String, units: Int, key: String? = nil) async throws -> (Int, String) {
        let body = #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": \#(units), "purpose": "training", "duration": "1h"}"#
        let response = try await client.send(
            method: "POST",
            path: "/v1/reservations",
            body: Data(body.utf8),
            headers: key.map { [("Idempotency-Key", $0)] } ?? []
        )
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test("a burst of reservations: those that fit are made, the rest refused, none lost; one key acts once")
    func burst() async throws {
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(dedicated: 4))
        try daemon.start()
        let client = SocketClient(socketPath: daemon.socket)
        // 12 one-unit reservations at once for 4 units, and 8 retries of one keyed request.
        let answers = try await withThrowingTaskGroup(of: (String, Int, String).self) { group in
            for i in 0..<12 {
                group.addTask {
                    let (s, b) = try await reserve(client, "r\(i)", units: 1)
                    return ("r\(i)", s, b)
                }
            }
            for _ in 0..<8 {
                group.addTask {
                    let (s, b) = try await reserve(client, "keyed", units: 1, key: "k-1")
                    return ("keyed", s, b)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let made = answers.filter { $0.1 == 201 }
        let refused = answers.filter { $0.1 == 409 }
        #expect(made.count + refused.count == answers.count, "\(answers.filter { $0.1 != 201 && $0.1 != 409 })")
        // The keyed request is one reservation, answered the same every time; or it is refused
        // every time (a refusal is not stored: its message names the second it was refused in).
        let keyed = answers.filter { $0.0 == "keyed" }
        #expect(Set(keyed.map(\.1)).count == 1, "\(keyed)")
        if keyed.first?.1 == 201 { #expect(Set(keyed.map(\.2)).count == 1, "\(keyed)") }
        // Exactly 4 units' worth were made, each answered active with its lease.
        let distinct = Set(made.map(\.0))
        #expect(distinct.count == 4)
        for answer in made { #expect(answer.2.contains(#""status":"active""#)) }
        // The ledger holds exactly the acknowledged ones.
        _ = daemon.stop()
        let names = try Ledger(path: daemon.database).readNow { tx in try tx.reservations().map(\.name) }
        #expect(Set(names) == distinct)
        #expect(names.count == distinct.count)
    }
}
