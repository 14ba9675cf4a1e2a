import BerthClient
import BerthWire
import FoundationEssentials

/// `berth invoke --stream`: the call through berthd's OpenAI route with `stream: true`, the
/// same call as `invoke`'s (the same budget, refusals and metering), its text printed as the
/// server-sent events bring it. A prompt alone is a text completion; with an image it is a chat
/// completion whose one message holds both, as `invoke` sends it on.
struct InvocationStream {
    var global: GlobalOptions
    var target: String
    var prompt: String
    var maxTokens: Int?
    /// Base64.
    var image: String?

    func run() throws(CommandFailure) {
        var fields: [String: JSONField] = [
            "model": .string(target),
            "stream": .bool(true),
            "stream_options": .object(["include_usage": .bool(true)]),
        ]
        if let maxTokens { fields["max_tokens"] = .number(Double(maxTokens)) }
        let path: String
        if let image {
            path = "/openai/v1/chat/completions"
            let url = "data:\(Self.mediaType(image));base64,\(image)"
            fields["messages"] = .array([
                .object([
                    "role": .string("user"),
                    "content": .array([
                        .object(["type": .string("text"), "text": .string(prompt)]),
                        .object(["type": .string("image_url"), "image_url": .object(["url": .string(url)])]),
                    ]),
                ])
            ])
        } else {
            path = "/openai/v1/completions"
            fields["prompt"] = .string(prompt)
        }
        let body: Data
        do {
            body = try JSONEncoder().encode(JSONField.object(fields))
        } catch {
            throw CommandFailure(code: "internal", message: "cannot encode the request: \(error)", status: .failure)
        }
        let started = ContinuousClock.now
        var events = ServerSentEvents()
        var usage: CompletionUsage?
        var failure: CommandFailure?
        var text = ""
        let json = global.json
        let response: Response
        let connection = try global.connection
        do {
            // Never retried, as `invoke`: a call is metered.
            response = try connection.send(method: "POST", path: path, body: body, headers: [("Content-Type", "application/json")]) {
                bytes in
                for event in events.feed(bytes) where event != "[DONE]" {
                    guard case .object(let chunk)? = try? JSONDecoder().decode(JSONField.self, from: Data(event.utf8)) else { continue }
                    if case .object? = chunk["error"], let error = try? JSONDecoder().decode(OpenAIErrorBody.self, from: Data(event.utf8)) {
                        failure = Self.failure(error, status: 503)
                        continue
                    }
                    if json {
                        print(event)
                        continue
                    }
                    if case .object? = chunk["usage"] {
                        usage = try? JSONDecoder().decode(StreamUsage.self, from: Data(event.utf8)).usage
                    }
                    if case .array(let choices)? = chunk["choices"], case .object(let choice)? = choices.first {
                        var piece = ""
                        if case .string(let value)? = choice["text"] { piece = value }
                        if case .object(let delta)? = choice["delta"], case .string(let value)? = delta["content"] { piece = value }
                        text += piece
                        StandardStream.write(piece)
                    }
                }
            }
        } catch {
            throw CommandFailure(error)
        }
        guard (200..<300).contains(response.status) else {
            if let error = try? JSONDecoder().decode(OpenAIErrorBody.self, from: response.body) {
                var failure = Self.failure(error, status: response.status)
                if let retryAfter = response.header("Retry-After"), failure.status == .throttled, !failure.message.contains("retry after") {
                    failure.message += " (retry after \(retryAfter)s)"
                }
                throw failure
            }
            throw CommandFailure(response.apiError)
        }
        if let failure { throw failure }
        guard !json else { return }
        if !text.isEmpty, text.last?.isNewline != true { print() }
        let elapsed = (ContinuousClock.now - started).components
        let milliseconds = Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        let tier = response.header("Berth-Served-By") ?? "?"
        let model = response.header("Berth-Model") ?? target
        let reservation = response.header("Berth-Reservation").map { "reservation '\($0)', " } ?? ""
        let tokens = usage.map { "\($0.promptTokens) in, \($0.completionTokens) out tokens, " } ?? ""
        print("served by \(tier) (\(reservation)model \(model)): \(tokens)\(Berth.Invoke.latency(milliseconds))")
    }

    /// The usage chunk at the end of the stream.
    struct StreamUsage: Decodable {
        var usage: CompletionUsage
    }

    /// An error of the OpenAI route as `invoke` reports berth's own: the code is berth's, and
    /// the exit status is the one berth's code has, whatever status OpenAI's clients are given.
    static func failure(_ error: OpenAIErrorBody, status: Int) -> CommandFailure {
        let code = error.error.code ?? "http-\(status)"
        let httpStatus = ErrorCode(rawValue: code)?.httpStatus ?? status
        return CommandFailure(code: code, message: error.error.message, status: ExitStatus(httpStatus: httpStatus))
    }

    /// The media type in a data URL; berthd and the serve process check the bytes themselves.
    static func mediaType(_ base64: String) -> String {
        switch base64.prefix(4) {
        case "iVBO": "image/png"
        case "/9j/": "image/jpeg"
        case "R0lG": "image/gif"
        case "UklG": "image/webp"
        default: "application/octet-stream"
        }
    }
}
