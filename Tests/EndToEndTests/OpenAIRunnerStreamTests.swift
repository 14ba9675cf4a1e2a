import BerthClient
import BerthTestSupport
import Foundation
import Testing

/// `berth-runner serve` streaming as vLLM does: the streamed text is the answer's text, a chunk
/// per token, stop strings honoured, the usage chunk only when asked for, then `[DONE]`.
@Suite(.serialized) struct RunnerStreamingTests {
    /// The `data` of each event of a server-sent event stream.
    static func events(_ body: Data) -> [String] {
        String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").compactMap { event in
            event.hasPrefix("data: ") ? String(event.dropFirst(6)) : nil
        }
    }

    @Test func aStreamIsTheAnswerATokenAtATime() async throws {
        let folder = try TemporaryDirectory(prefix: "berth-runner-stream")
        defer { folder.remove() }
        let port = try freePort()
        let process = try RunningProcess(
            Products.path("berth-runner"),
            ["serve", "--model-dir", folder.file("no-model-here"), "--port", String(port), "--model-id", "amazon.nova-micro-v1:0"],
            in: folder
        )
        defer { process.kill() }
        /// The project's own HTTP client, one connection per request.
        func http(_ method: String, _ path: String, body: String? = nil) async throws -> (Data, Int) {
            let response = try await SocketClient(loopbackPort: port).send(
                method: method,
                path: path,
                body: body.map { Data($0.utf8) },
                timeout: .seconds(10)
            )
            return (response.body, response.status)
        }
        #expect(
            try await eventuallyAsync(timeout: 30) { (try? await http("GET", "/health"))?.1 == 200 },
            "serve did not answer /health: \(process.stderr); state: \((try? String(contentsOfFile: "/proc/\(process.process.processIdentifier)/stat", encoding: .utf8)) ?? "gone")"
        )

        for (stop, chat) in [(nil, false), ("the", false), (nil, true), (".", true)] as [(String?, Bool)] {
            let path = chat ? "/v1/chat/completions" : "/v1/completions"
            let input = chat ? #""messages":[{"role":"user","content":"The harbour"}]"# : #""prompt":"The harbour""#
            let stopField = stop.map { #","stop":"\#($0)""# } ?? ""
            let request = #"{"model":"m",\#(input),"max_tokens":20,"seed":3\#(stopField)"#
            let (whole, status) = try await http("POST", path, body: request + "}")
            #expect(status == 200)
            let answer = try #require(try JSONSerialization.jsonObject(with: whole) as? [String: Any])
            let choice = try #require((answer["choices"] as? [[String: Any]])?.first)
            let text = chat ? (choice["message"] as? [String: Any])?["content"] as? String : choice["text"] as? String
            let usage = try #require(answer["usage"] as? [String: Int])

            let (streamed, streamStatus) = try await http(
                "POST",
                path,
                body: request + #","stream":true,"stream_options":{"include_usage":true}}"#
            )
            #expect(streamStatus == 200)
            let events = Self.events(streamed)
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(chunks.count == events.count - 1)
            #expect(chunks.allSatisfy { $0["object"] as? String == (chat ? "chat.completion.chunk" : "text_completion") })
            let pieces = chunks.compactMap { chunk -> String? in
                guard let choice = (chunk["choices"] as? [[String: Any]])?.first else { return nil }
                return chat ? (choice["delta"] as? [String: Any])?["content"] as? String : choice["text"] as? String
            }.filter { !$0.isEmpty }
            #expect(pieces.joined() == text, "stop \(stop ?? "-"), chat \(chat)")
            #expect(pieces.count == usage["completion_tokens"] || stop != nil)
            let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
            #expect(finishes == [choice["finish_reason"] as? String].compactMap { $0 })
            #expect(chunks.last?["usage"] as? [String: Int] == usage && (chunks.last?["choices"] as? [Any])?.isEmpty == true)

            let (plain, _) = try await http("POST", path, body: request + #","stream":true}"#)
            #expect(Self.events(plain).allSatisfy { !$0.contains("\"usage\"") })
        }
        let (refused, refusedStatus) = try await http("POST", "/v1/completions", body: #"{"prompt":"x","stream_options":{}}"#)
        #expect(refusedStatus == 400, "\(String(decoding: refused, as: UTF8.self))")
    }
}

/// Asks `condition` again until it holds or `timeout` seconds have passed.
func eventuallyAsync(timeout: TimeInterval, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try await condition() { return true }
        if Date() >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(50))
    }
}
