import BerthTestSupport
import Foundation
import Testing

extension OpenAPITests {
    /// The OpenAI routes and the API keys, for `answersMatchTheDocument`: after `invocations`,
    /// when `chat` is root's inference reservation, `tiny` is over its budget and `custom-ft`
    /// is a custom model.
    func openAIRoutesAndKeys(_ api: ExchangeRecorder) async throws {
        try await api.send("make an API key", "POST", "/v1/api-keys", json: #"{"name":"laptop"}"#, expect: 201)
        try await api.send("an API key of a name in use", "POST", "/v1/api-keys", json: #"{"name":"laptop"}"#, expect: 409)
        try await api.send("an API key with a bad name", "POST", "/v1/api-keys", json: #"{"name":"Laptop!"}"#, request: .invalid, expect: 400)
        try await api.send("an API key with an unknown field", "POST", "/v1/api-keys", json: #"{"name":"x","ttl":3}"#, request: .invalid, expect: 400)
        try await api.send("nobody's API key", "POST", "/v1/api-keys", json: #"{"name":"scripts"}"#, as: .nobody, expect: 201)
        try await api.send("the API keys", "GET", "/v1/api-keys", expect: 200)
        try await api.send("nobody's API keys", "GET", "/v1/api-keys", as: .nobody, expect: 200)
        try await api.send("another's API keys", "GET", "/v1/api-keys?owner=root", as: .nobody, expect: 403)
        try await api.send("API keys: an unknown parameter", "GET", "/v1/api-keys?colour=red", expect: 400)
        try await api.send("revoke an API key", "DELETE", "/v1/api-keys/laptop", expect: 200)
        try await api.send("revoke it again", "DELETE", "/v1/api-keys/laptop", expect: 404)
        try await api.send("revoke another's API key", "DELETE", "/v1/api-keys/scripts?owner=root", as: .nobody, expect: 403)

        try await api.send("OpenAI models", "GET", "/openai/v1/models", expect: 200)
        try await api.send(
            "an OpenAI completion",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"chat","prompt":"what does the ledger keep","max_tokens":6,"temperature":1}"#,
            expect: 200
        )
        try await api.send(
            "an OpenAI chat completion on demand",
            "POST",
            "/openai/v1/chat/completions",
            json: #"{"model":"\#(Self.model)","messages":[{"role":"user","content":"hello"}],"max_completion_tokens":4}"#,
            expect: 200
        )
        try await api.send(
            "a streamed OpenAI chat completion",
            "POST",
            "/openai/v1/chat/completions",
            json:
                #"{"model":"chat","messages":[{"role":"user","content":"hello"}],"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}"#,
            expect: 200
        )
        try await api.send(
            "an OpenAI completion without a prompt",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"chat"}"#,
            request: .invalid,
            expect: 400
        )
        try await api.send(
            "an OpenAI completion with two choices",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"chat","prompt":"hello","n":2}"#,
            request: .invalid,
            expect: 400
        )
        try await api.send(
            "a custom model on demand, through the OpenAI route",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"custom-ft","prompt":"hello"}"#,
            expect: 400
        )
        try await api.send(
            "no such model, through the OpenAI route",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"nope","prompt":"hello"}"#,
            expect: 404
        )
        try await api.send(
            "someone else's reservation, through the OpenAI route",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"chat","prompt":"hello"}"#,
            as: .nobody,
            expect: 403
        )
        let words = Array(repeating: "word", count: 40).joined(separator: " ")
        try await api.send(
            "over the budget, through the OpenAI route",
            "POST",
            "/openai/v1/completions",
            json: #"{"model":"tiny","prompt":"\#(words)","max_tokens":10}"#,
            expect: 429
        )
    }
}
