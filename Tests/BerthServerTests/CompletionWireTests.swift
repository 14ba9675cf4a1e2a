import BerthCore
import BerthWire
import Foundation
import Testing

/// The shapes that cross a process, defined once in BerthWire: what one side writes, the other
/// reads back whole.
@Suite("Wire shapes shared across processes")
struct CompletionWireTests {
    static let completion = CompletionResponse(
        id: "cmpl-berth-7",
        created: 1_700_000_000,
        model: "berth-base",
        choices: [.init(index: 0, text: "the cat sat", finishReason: "length")],
        usage: CompletionUsage(promptTokens: 3, completionTokens: 4, totalTokens: 7)
    )

    /// As berth-runner writes its answers.
    static func runnerJSON(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    @Test("a text completion as berth-runner writes it: OpenAI's keys, logprobs null, and berthd reads it back whole")
    func textCompletion() throws {
        let bytes = try Self.runnerJSON(Self.completion)
        #expect(
            String(decoding: bytes, as: UTF8.self) == """
                {"choices":[{"finish_reason":"length","index":0,"logprobs":null,"text":"the cat sat"}],"created":1700000000,\
                "id":"cmpl-berth-7","model":"berth-base","object":"text_completion",\
                "usage":{"completion_tokens":4,"prompt_tokens":3,"total_tokens":7}}
                """
        )
        #expect(try JSONDecoder().decode(CompletionResponse.self, from: bytes) == Self.completion)
    }

    @Test("a chat completion round-trips, its message the text completion's text")
    func chatCompletion() throws {
        let chat = ChatCompletionResponse(Self.completion)
        #expect(chat.id == "chatcmpl-berth-7" && chat.object == "chat.completion")
        #expect(chat.choices.map(\.message) == [.init(role: "assistant", content: "the cat sat")])
        let bytes = try Self.runnerJSON(chat)
        #expect(try JSONDecoder().decode(ChatCompletionResponse.self, from: bytes) == chat)
    }

    @Test("requests berthd sends: OpenAI's keys, decoded back whole", arguments: [false, true])
    func requests(image: Bool) throws {
        if image {
            let body = ChatCompletionRequestBody(
                model: "m",
                messages: [.init(content: [.text("what is this"), .image(url: "data:image/png;base64,AAAA")])],
                maxTokens: 8
            )
            let bytes = try Self.runnerJSON(body)
            #expect(
                String(decoding: bytes, as: UTF8.self) == """
                    {"max_tokens":8,"messages":[{"content":[{"text":"what is this","type":"text"},\
                    {"image_url":{"url":"data:image/png;base64,AAAA"},"type":"image_url"}],"role":"user"}],"model":"m"}
                    """
            )
            #expect(try JSONDecoder().decode(ChatCompletionRequestBody.self, from: bytes) == body)
        } else {
            let body = CompletionRequestBody(model: "m", prompt: "once upon", maxTokens: 8)
            let bytes = try Self.runnerJSON(body)
            #expect(String(decoding: bytes, as: UTF8.self) == #"{"max_tokens":8,"model":"m","prompt":"once upon"}"#)
            #expect(try JSONDecoder().decode(CompletionRequestBody.self, from: bytes) == body)
        }
    }

    @Test("another server's answer with only what berthd reads decodes; one without the text does not")
    func leanAnswers() throws {
        let lean = try JSONDecoder().decode(CompletionResponse.self, from: Data(#"{"choices":[{"text":"hi"}]}"#.utf8))
        #expect(lean.choices.map(\.text) == ["hi"] && lean.choices.first?.finishReason == nil && lean.usage == nil)
        let counted = try JSONDecoder().decode(
            CompletionResponse.self,
            from: Data(#"{"choices":[{"text":"hi"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#.utf8)
        )
        #expect(counted.usage == CompletionUsage(promptTokens: 2, completionTokens: 1, totalTokens: 3))
        let chat = try JSONDecoder().decode(ChatCompletionResponse.self, from: Data(#"{"choices":[{"message":{"content":null}}]}"#.utf8))
        #expect(chat.choices.first?.message.content == nil)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(CompletionResponse.self, from: Data(#"{"choices":[{"finish_reason":"stop"}]}"#.utf8))
        }
    }

    @Test("the usage report's wire view: snake_case keys, and the CLI reads back what berthd sent")
    func usageReport() throws {
        let from = Date(timeIntervalSince1970: 1_793_491_200)
        let to = from.addingTimeInterval(4 * 3600)
        let query = UsageQuery(from: from, to: to, now: to, grouping: .reservation, idleThreshold: 600, buckets: 4)
        var latency = LatencyHistogram()
        latency.add(milliseconds: 12.5)
        let facts = UsageFacts(
            reservations: [
                ReservationFacts(
                    id: 1,
                    name: "chat",
                    owner: "alice",
                    model: "m",
                    purpose: .inference,
                    commitment: .oneMonth,
                    unitsPerModelUnit: 1,
                    tokensPerMinute: 1000,
                    pricePerModelUnitHour: 16,
                    leases: [Span(start: from, end: nil)],
                    jobs: [JobFacts(status: .completed, submittedAt: from, startedAt: from, endedAt: from.addingTimeInterval(60), units: 1)],
                    activity: [Span(start: from.addingTimeInterval(3 * 3600), end: from.addingTimeInterval(3 * 3600 + 60))]
                )
            ],
            invocations: [
                InvocationSlice(
                    at: from.addingTimeInterval(3 * 3600),
                    reservationID: 1,
                    model: "m",
                    owner: "alice",
                    calls: 2,
                    served: 1,
                    throttled: 1,
                    inputTokens: 10,
                    outputTokens: 20,
                    provisionedTokens: 30,
                    cost: 0,
                    latency: latency
                )
            ],
            tokenSamples: []
        )
        let report = UsageReport.compute(facts, query)
        #expect(!report.idle.isEmpty && report.rows.count == 1)
        let view = UsageReportView(report)
        let bytes = try Wire.encode(view)
        let text = String(decoding: bytes, as: UTF8.self)
        for key in ["idle_threshold_seconds", "bucket_seconds", "reserved_unit_hours", "latency_p50_ms", "reserved_units", "idle_cost"] {
            #expect(text.contains("\"\(key)\":"), "no \(key)")
        }
        #expect(text.contains(#""by":"reservation""#) && text.contains(#""commitment":"1m""#) && text.contains(#""purpose":"inference""#))
        #expect(try Wire.decoder().decode(UsageReportView.self, from: bytes) == view)
    }
}
