import BerthWire
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The catalog, health and usage endpoints' answers and query rules, against the router in-process.
@Suite("Catalog routes")
struct CatalogRouteTests {
    @Test("unknown routes are 404 in the error shape; model ids with ':' are found percent-encoded; health counts the pools")
    func routes() async throws {
        try await RouteTestApp().test { client in
            let missing = try await client.send(.get, "/v1/nothing")
            #expect(missing.status == .notFound)
            #expect(missing.error?.error.code == "not-found", "\(String(buffer: missing.body))")
            let found = try await client.send(.get, "/v1/models/amazon.nova-micro-v1%3A0")
            #expect(found.status == .ok, "\(String(buffer: found.body))")
            let model = try found.decoded(ModelView.self)
            #expect(model.maxTokens == 128_000)
            #expect(model.price.onDemandInputPerThousand == 0.000035)
            let health = try await client.send(.get, "/v1/health").decoded(HealthView.self)
            #expect(health.units.dedicated == 8)
            #expect(health.units.shared == 2)
        }
    }

    @Test(
        "GET /v1/usage with a bad by, buckets, from or an unknown parameter is a 400 naming the field",
        arguments: [
            ("by=week", "by"), ("buckets=0", "buckets"), ("from=yesterday", "from"), ("colour=red", "colour"),
        ]
    )
    func usageRefusals(query: String, field: String) async throws {
        let app = try RouteTestApp()
        // A daemon up for an hour: the default window, from its start to now, is not empty.
        app.clock.advance(by: 3600)
        try await app.test { client in
            let response = try await client.send(.get, "/v1/usage?\(query)")
            #expect(response.status == .badRequest, "\(query)")
            #expect(response.error?.error.code == "invalid-argument")
            #expect(response.error?.error.message.hasPrefix("\(field): ") == true, "\(query): \(String(buffer: response.body))")
        }
    }
}
