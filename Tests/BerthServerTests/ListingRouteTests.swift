import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The listings' query rules, against the router in-process.
@Suite("Listing routes")
struct ListingRouteTests {
    @Test("bad filters and pages are refused with 400 naming the parameter; good ones are answered")
    func refusals() async throws {
        try await RouteTestApp().test { client in
            let cases: [(String, String)] = [
                ("/v1/jobs?limit=0", "limit"), ("/v1/jobs?limit=10001", "limit"), ("/v1/jobs?limit=many", "limit"), ("/v1/jobs?limit=", "limit"),
                ("/v1/jobs?limit=5&limit=6", "limit"), ("/v1/jobs?since=yesterday", "since"), ("/v1/jobs?since=", "since"),
                ("/v1/jobs?cursor=abc", "cursor"), ("/v1/jobs?cursor=-1", "cursor"), ("/v1/jobs?status=queued,bogus", "status"),
                ("/v1/jobs?kind=knitting", "kind"), ("/v1/jobs?reservation=Not_A_Name", "reservation"), ("/v1/jobs?colour=red", "colour"),
                ("/v1/jobs?owner=", "owner"),
                ("/v1/reservations?limit=0", "limit"), ("/v1/reservations?since=soon", "since"), ("/v1/reservations?status=done", "status"),
                ("/v1/reservations?purpose=fun", "purpose"), ("/v1/reservations?kind=distillation", "kind"),
            ]
            for (path, field) in cases {
                let response = try await client.send(.get, path)
                #expect(response.status == .badRequest, "\(path): \(String(buffer: response.body))")
                #expect(response.error?.error.code == "invalid-argument", "\(path)")
                #expect(response.error?.error.message.hasPrefix("\(field): ") == true, "\(path): \(String(buffer: response.body))")
            }
            #expect(try await client.send(.get, "/v1/jobs?limit=10000&status=queued&status=running").status == .ok)
            #expect(try await client.send(.get, "/v1/reservations?status=active&purpose=training&limit=5").status == .ok)
        }
    }
}
