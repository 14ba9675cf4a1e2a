import BerthTestSupport
import BerthWire
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

    @Test("since keeps the jobs and reservations made from it on, alone and with other filters; the clock moves, nothing sleeps")
    func since() async throws {
        let app = try RouteTestApp()
        let clock = app.clock
        let folder = try TemporaryDirectory(prefix: "berth-listing-routes")
        defer { folder.remove() }
        try await app.test { client in
            // Reservations that start in a day, so their jobs stay queued.
            func reserve(_ name: String, purpose: String, as caller: Caller = RouteTestApp.root) async throws {
                let made = try await client.send(
                    .post,
                    "/v1/reservations",
                    json:
                        #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "\#(purpose)", "start": "+1d", "duration": "1h"}"#,
                    as: caller
                )
                #expect(made.status == .created, "\(String(buffer: made.body))")
            }
            func submit(_ name: String, to reservation: String, output: String, as caller: Caller = RouteTestApp.root) async throws -> Int64 {
                let data = "\(TemporaryDaemon.examples)/fine-tuning.jsonl"
                let made = try await client.send(
                    .post,
                    "/v1/jobs",
                    json:
                        #"{"name": "\#(name)", "reservation": "\#(reservation)", "kind": "fine-tuning", "data": "\#(data)", "output": "\#(output)", "model_name": "listing-\#(name)"}"#,
                    as: caller
                )
                #expect(made.status == .created, "\(String(buffer: made.body))")
                return try made.decoded(JobView.self).id
            }
            func names(_ query: String) async throws -> [String] {
                try await client.send(.get, "/v1/reservations?\(query)").decoded(ReservationList.self).reservations.map(\.name)
            }
            func jobIDs(_ query: String) async throws -> [Int64] {
                try await client.send(.get, "/v1/jobs?\(query)").decoded(JobList.self).jobs.map(\.id)
            }

            for name in ["r1", "r2", "r3"] { try await reserve(name, purpose: "training") }
            let early = [try await submit("e0", to: "r1", output: folder.file("e0")), try await submit("e1", to: "r1", output: folder.file("e1"))]
            clock.advance(by: 1)
            let since = Wire.formatDate(clock.now)
            clock.advance(by: 1)
            try await reserve("r4", purpose: "inference")
            try await reserve("r5", purpose: "training")
            try await reserve("n1", purpose: "training", as: RouteTestApp.alice)
            var late: [Int64] = []
            for i in 0..<3 { late.append(try await submit("n\(i)", to: "n1", output: "/tmp/berth-listing-route-\(i)", as: RouteTestApp.alice)) }

            #expect(try await names("") == ["n1", "r5", "r4", "r3", "r2", "r1"])
            #expect(try await names("since=\(since)") == ["n1", "r5", "r4"])
            #expect(try await names("since=\(since)&owner=root&purpose=training") == ["r5"])
            #expect(try await jobIDs("") == (early + late).reversed())
            #expect(try await jobIDs("since=\(since)") == late.reversed())
            #expect(try await jobIDs("since=\(since)&owner=root").isEmpty)
        }
    }
}
