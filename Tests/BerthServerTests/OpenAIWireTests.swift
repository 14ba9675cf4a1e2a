import BerthCore
import BerthWire
import Foundation
import Testing

@testable import BerthServer

/// The OpenAI routes' bodies as berthd reads them, passes them on, and answers.
@Suite("OpenAI wire shapes")
struct OpenAIWireTests {
    @Test(
        "a body berthd refuses names the field as the client wrote it",
        arguments: [
            (#"not json"#, false, nil),
            (#"[1]"#, false, nil),
            (#"{"prompt":"x"}"#, false, "model"),
            (#"{"model":"","prompt":"x"}"#, false, "model"),
            (#"{"model":"m"}"#, false, "prompt"),
            (#"{"model":"m","prompt":""}"#, false, "prompt"),
            (#"{"model":"m","prompt":["a","b"]}"#, false, "prompt"),
            (#"{"model":"m","prompt":"x","max_tokens":0}"#, false, "max_tokens"),
            (#"{"model":"m","prompt":"x","max_tokens":1.5}"#, false, "max_tokens"),
            (#"{"model":"m","prompt":"x","stream":"yes"}"#, false, "stream"),
            (#"{"model":"m","prompt":"x","stream_options":{"include_usage":true}}"#, false, "stream_options"),
            (#"{"model":"m","prompt":"x","n":2}"#, false, "n"),
            (#"{"model":"m","messages":[]}"#, true, "messages"),
            (#"{"model":"m","messages":[{"content":"x"}]}"#, true, "messages[0]"),
            (#"{"model":"m","messages":[{"role":"user","content":7}]}"#, true, "messages[0].content"),
            (#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-1}"#, true, "max_completion_tokens"),
        ] as [(String, Bool, String?)]
    )
    func refused(body: String, chat: Bool, param: String?) {
        #expect(throws: OpenAICallRequest.Problem.self) { try OpenAICallRequest.parse(Data(body.utf8), chat: chat) }
        do {
            _ = try OpenAICallRequest.parse(Data(body.utf8), chat: chat)
        } catch {
            #expect(error.param == param, "\(body): \(error.message)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test("a chat body: its text one message a line, its images counted, the chat's own token limit first")
    func chat() throws {
        let body = #"""
            {"model":"demo","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
            {"role":"assistant","content":null}],
            "max_tokens":9,"max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true}}
            """#
        let request = try OpenAICallRequest.parse(Data(body.utf8), chat: true)
        #expect(request.model == "demo")
        #expect(request.text == "be brief\nwhat is this")
        #expect(request.images == 1)
        #expect(request.maxTokens == 5)
        #expect(request.stream && request.includeUsage)
    }

    @Test("the serve process gets the client's body with its model name, the sized limit, the usage asked for, and no user")
    func upstream() throws {
        let body = #"{"model":"demo","prompt":["the harbour"],"temperature":0.5,"seed":7,"stop":["."],"user":"alice","stream":true}"#
        let request = try OpenAICallRequest.parse(Data(body.utf8), chat: false)
        #expect(request.text == "the harbour" && request.maxTokens == nil && !request.includeUsage)
        let sent = try JSONDecoder().decode(JSONField.self, from: try request.upstreamBody(model: "amazon.nova-micro-v1:0", maxTokens: 64))
        #expect(
            sent
                == .object([
                    "model": .string("amazon.nova-micro-v1:0"),
                    "prompt": .array([.string("the harbour")]),
                    "temperature": .number(0.5),
                    "seed": .number(7),
                    "stop": .array([.string(".")]),
                    "stream": .bool(true),
                    "stream_options": .object(["include_usage": .bool(true)]),
                    "max_tokens": .number(64),
                ])
        )
        // Whole numbers go out as integers, as the client wrote them.
        let text = String(decoding: try request.upstreamBody(model: "m", maxTokens: 64), as: UTF8.self)
        #expect(text.contains(#""max_tokens":64"#) && text.contains(#""seed":7"#) && text.contains(#""temperature":0.5"#))
    }

    @Test("server-sent events are read whole however the bytes arrive")
    func events() {
        let stream = "data: {\"a\":1}\n\n: a comment\ndata: {\"b\":\r\ndata: 2}\r\n\r\nevent: x\ndata: [DONE]\n\n"
        let bytes = Array(stream.utf8)
        for size in [1, 2, 3, 7, bytes.count] {
            var reader = ServerSentEvents()
            var events: [String] = []
            var start = 0
            while start < bytes.count {
                events += reader.feed(Data(bytes[start..<min(start + size, bytes.count)]))
                start += size
            }
            #expect(events == [#"{"a":1}"#, "{\"b\":\n2}", "[DONE]"], "in pieces of \(size)")
        }
    }

    @Test("an error in OpenAI's shape keeps param and code, null when absent; berth's 409 refusals become 400 or 503")
    func errors() throws {
        let encoded = String(
            decoding: try OpenAIController.encode(OpenAIErrorBody(message: "m", type: "rate_limit_error", code: "throttled")),
            as: UTF8.self
        )
        #expect(encoded == #"{"error":{"code":"throttled","message":"m","param":null,"type":"rate_limit_error"}}"#)
        #expect(OpenAIError(APIError(.onDemandNotSupported, "reserve it")).status == 400)
        #expect(OpenAIError(APIError(.invalidState, "starting", retryAfterSeconds: 2)).status == 503)
        #expect(OpenAIError(APIError(.throttled, "over", retryAfterSeconds: 3)).status == 429)
        #expect(OpenAIError(APIError(.throttled, "over", retryAfterSeconds: 3)).response.headers[.retryAfter] == "3")
        #expect(OpenAIError(APIError.invalid(field: "max_tokens", "too many")).body.error.param == "max_tokens")
        #expect(OpenAIError(APIError(.forbidden, "not yours")).body.error.type == "permission_error")
    }

    @Test("API keys are listed without the key, which only their creation's answer carries; they round-trip")
    func apiKeys() throws {
        let created = APIKeyView(
            name: "laptop",
            owner: "alice",
            createdAt: Date(timeIntervalSince1970: 1_800_000_000),
            lastUsedAt: nil,
            key: "berth_1_ab"
        )
        let list = APIKeyList(apiKeys: [created, APIKeyView(name: "ci", owner: "bob", createdAt: created.createdAt, lastUsedAt: created.createdAt)])
        let bytes = try Wire.encode(list)
        #expect(try Wire.decoder().decode(APIKeyList.self, from: bytes) == list)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""created_at":"2027-01-15T08:00:00Z""#) && text.contains(#""last_used_at""#), "\(text)")
    }

    @Test("keys compare in full: equal bytes, and nothing else, are equal")
    func constantTime() {
        let a = APIKeyring.digest(String(repeating: "ab", count: 32))
        #expect(ConstantTime.equal(a, a))
        for i in a.indices {
            var b = a
            b[i] ^= 1
            #expect(!ConstantTime.equal(a, b))
        }
        #expect(!ConstantTime.equal(a, Array(a.dropLast())))
        #expect(a.count == 32)
    }
}
