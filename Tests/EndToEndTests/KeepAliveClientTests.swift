import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// berthd's client for its serve processes, against the reference serve process.
@Suite(.serialized) struct KeepAliveClientTests {
    static let model = "amazon.nova-micro-v1:0"

    func serve(port: Int, in folder: TemporaryDirectory) async throws -> RunningProcess {
        let process = try RunningProcess(
            Products.path("berth-runner"),
            ["serve", "--model-dir", folder.file("no-model"), "--port", String(port), "--model-id", Self.model],
            in: folder
        )
        let client = KeepAliveClient()
        var healthy = false
        _ = await eventuallyAwaiting(timeout: 30) {
            healthy = (try? await client.send(port: port, method: "GET", path: "/health", body: Data()))?.status == 200
            return healthy || !process.isRunning
        }
        if healthy { return process }
        throw RunningProcess.Failure("serve did not answer on \(port): \(process.stderr)")
    }

    func completion(
        _ client: KeepAliveClient,
        port: Int,
        prompt: String,
        headers: [(String, String)] = []
    ) async throws -> (status: Int, promptTokens: Int?) {
        let body = try JSONSerialization.data(withJSONObject: ["model": Self.model, "prompt": prompt, "max_tokens": 2])
        let response = try await client.send(
            port: port,
            method: "POST",
            path: "/v1/completions",
            body: body,
            headers: [("Content-Type", "application/json")] + headers
        )
        // OpenAI's shape: its keys are spelled out, not converted from snake case.
        let answer = try? JSONDecoder().decode(CompletionResponse.self, from: response.body)
        return (response.status, answer?.usage?.promptTokens)
    }

    @Test(
        "concurrent calls over kept connections each get their own answer; a server that closes after answering, or is gone, gives errors and never hangs",
        // A hang is for ever; a minute was seen to run out on two cores shared with every other
        // suite, with the serve process still starting.
        .timeLimit(.minutes(3))
    )
    func exchanges() async throws {
        let folder = try TemporaryDirectory(prefix: "berth-keepalive")
        defer { folder.remove() }
        let port = try freePort()
        var process = try await serve(port: port, in: folder)
        defer { process.kill() }
        let client = KeepAliveClient(keepPerPort: 4)

        // 1. 200 calls, 50 at a time, with prompts of 1 to 200 words: each answer counts its own.
        try await withThrowingTaskGroup(of: (Int, Int, Int?).self) { group in
            for words in 1...200 {
                if words > 50 { _ = try await group.next() }
                group.addTask {
                    let answer = try await completion(client, port: port, prompt: Array(repeating: "lease", count: words).joined(separator: " "))
                    return (words, answer.status, answer.promptTokens)
                }
            }
            for try await (words, status, tokens) in group {
                #expect(status == 200)
                #expect(tokens == words, "a prompt of \(words) words was answered with \(tokens.map(String.init) ?? "no") prompt tokens")
            }
        }

        // 2. The server closes the connection after an answer asked to be the last: the next
        //    calls still work.
        #expect(try await completion(client, port: port, prompt: "last one", headers: [("Connection", "close")]).status == 200)
        for _ in 0..<3 { #expect(try await completion(client, port: port, prompt: "and again").promptTokens == 2) }

        // 3. The server is gone: calls fail at once, with or without a kept connection.
        process.kill()
        for _ in 0..<3 {
            let started = ContinuousClock.now
            await #expect(throws: ClientError.self) { try await completion(client, port: port, prompt: "anyone there") }
            #expect(ContinuousClock.now - started < .seconds(5))
        }

        // 4. Back on the same port: calls work again.
        process = try await serve(port: port, in: folder)
        #expect(try await completion(client, port: port, prompt: "back again").status == 200)
    }
}
