import BerthWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// `fields` on the listings, against the router in-process: each item has only the fields
/// named, the answer says which, and a name that is not a field is refused.
@Suite("Listing fields")
struct ListingFieldsRouteTests {
    @Test("a listing with fields writes only those of each item, names them, and is read as the table's rows")
    func onlyTheFieldsNamed() async throws {
        try await RouteTestApp().test { client in
            let reserve = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "r1", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training", "start": "+1h", "duration": "1h"}"#
            )
            #expect(reserve.status == .created, "\(String(buffer: reserve.body))")

            let some = try await client.send(.get, "/v1/reservations?fields=name,status,name,end")
            #expect(some.status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: some.body)) as? [String: Any])
            #expect(object["fields"] as? [String] == ["name", "status", "end"])
            let items = try #require(object["reservations"] as? [[String: Any]])
            #expect(items.count == 1 && Set(items[0].keys) == ["name", "status", "end"])

            let rows = try await client.send(.get, "/v1/reservations?fields=" + ReservationRow.fields.joined(separator: ","))
            let table = try Wire.decode(ReservationRowList.self, from: Data(buffer: rows.body))
            let whole = try await client.send(.get, "/v1/reservations").decoded(ReservationList.self)
            #expect(table.reservations.map(\.name) == ["r1"] && table.reservations.first?.start == whole.reservations.first?.start)
            let plain = String(buffer: try await client.send(.get, "/v1/reservations").body)
            #expect(whole.fields == nil && !plain.contains("fields"))

            let jobs = try await client.send(.get, "/v1/jobs?fields=" + JobRow.fields.joined(separator: ","))
            #expect(String(buffer: jobs.body).contains(#""fields":["id","#))
            #expect(try Wire.decode(JobRowList.self, from: Data(buffer: jobs.body)).jobs.isEmpty)
        }
    }

    @Test(
        "a name that is not a field of the item is refused, naming fields",
        arguments: ["/v1/jobs?fields=id,colour", "/v1/jobs?fields=", "/v1/jobs?fields=id&fields=name", "/v1/reservations?fields=id"]
    )
    func unknownField(path: String) async throws {
        try await RouteTestApp().test { client in
            let response = try await client.send(.get, path)
            #expect(response.status == .badRequest, "\(path): \(String(buffer: response.body))")
            #expect(response.error?.error.message.hasPrefix("fields: ") == true, "\(path): \(String(buffer: response.body))")
        }
    }
}
