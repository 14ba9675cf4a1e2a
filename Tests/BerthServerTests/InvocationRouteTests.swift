import BerthWire
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The call endpoint's request rules, against the router in-process: each refusal is made
/// before a serve process is asked.
@Suite("Invocation routes")
struct InvocationRouteTests {
    @Test("a call with max_tokens of 2^63-1 is refused 400 naming max_tokens (it overflowed and crashed berthd)")
    func hugeMaxTokens() async throws {
        try await RouteTestApp().test { client in
            let response = try await client.send(
                .post,
                "/v1/invoke",
                json: #"{"target": "amazon.nova-micro-v1:0", "prompt": "hello", "max_tokens": 9223372036854775807}"#
            )
            #expect(response.status == .badRequest, "\(String(buffer: response.body))")
            #expect(response.error?.error.message.hasPrefix("max_tokens: ") == true, "\(String(buffer: response.body))")
            #expect(try await client.send(.get, "/v1/health").status == .ok)
        }
    }
}
