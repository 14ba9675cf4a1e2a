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

    @Test("shape=rows writes each item as the values of its fields in their order, null for an absent one, read as the table's rows")
    func rows() async throws {
        try await RouteTestApp().test { client in
            for name in ["early", "late"] {
                let made = try await client.send(
                    .post,
                    "/v1/reservations",
                    json: #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training", "start": "+1h"}"#
                )
                #expect(made.status == .created, "\(String(buffer: made.body))")
            }
            let answer = try await client.send(.get, "/v1/reservations?fields=status,name,end,units&shape=rows")
            #expect(answer.status == .ok, "\(String(buffer: answer.body))")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: answer.body)) as? [String: Any])
            #expect(object["fields"] as? [String] == ["status", "name", "end", "units"] && object["reservations"] == nil)
            let rows = try #require(object["rows"] as? [[Any]])
            // Newest first; open-ended, so `end` is null; the values in the order asked.
            #expect(rows.map { $0[1] as? String } == ["late", "early"])
            #expect(rows.allSatisfy { $0.count == 4 && $0[0] as? String == "pending" && $0[2] is NSNull && ($0[3] as? Int) == 1 })

            // The table reads rows and objects alike.
            let table = "/v1/reservations?fields=" + ReservationRow.fields.joined(separator: ",")
            let asRows = try Wire.decode(ReservationRowList.self, from: Data(buffer: try await client.send(.get, table + "&shape=rows").body))
            let asObjects = try Wire.decode(ReservationRowList.self, from: Data(buffer: try await client.send(.get, table).body))
            #expect(asRows == asObjects && asRows.reservations.count == 2)

            // Paged as objects are: the cursor and the count of the rest.
            let first = try await client.send(.get, table + "&shape=rows&limit=1")
            let page = try Wire.decode(ReservationRowList.self, from: Data(buffer: first.body))
            #expect(page.reservations.map(\.name) == ["late"] && page.more == 1 && page.nextCursor != nil)

            // Leases are read when asked for, and only then.
            let now = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "now", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training"}"#
            )
            #expect(now.status == .created, "\(String(buffer: now.body))")
            let leased = try await client.send(.get, "/v1/reservations?fields=name,leases&shape=rows&limit=1")
            let leasedRows = try #require(try JSONSerialization.jsonObject(with: Data(buffer: leased.body)) as? [String: Any])["rows"] as? [[Any]]
            #expect(leasedRows?.first?.first as? String == "now" && (leasedRows?.first?.last as? [Any])?.count == 1, "\(String(buffer: leased.body))")
        }
    }

    @Test(
        "a shape other than objects and rows, or rows without fields, is refused naming shape",
        arguments: ["/v1/jobs?shape=rows", "/v1/jobs?fields=id&shape=table", "/v1/reservations?shape=rows"]
    )
    func badShape(path: String) async throws {
        try await RouteTestApp().test { client in
            let response = try await client.send(.get, path)
            #expect(response.status == .badRequest, "\(path): \(String(buffer: response.body))")
            #expect(response.error?.error.message.hasPrefix("shape: ") == true, "\(path): \(String(buffer: response.body))")
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
