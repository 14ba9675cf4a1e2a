import BerthStore
import BerthTestSupport
import BerthWire
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The reservation endpoints' request rules, against the router in-process.
@Suite("Reservation routes")
struct ReservationRouteTests {
    @Test("malformed JSON, unknown fields, wrong types and bad names are 400 naming the field")
    func strictBodies() async throws {
        try await RouteTestApp().test { client in
            let cases: [(String, String)] = [
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1"#, "JSON"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1, "colour": "red"}"#, "colour"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": "1"}"#, "model_units"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1.5}"#, "model_units"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1e30}"#, "model_units"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": -3}"#, "model_units"),
                (#"{"name": "../etc", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#, "name"),
                (#"{"model": "amazon.nova-micro-v1:0", "model_units": 1}"#, "name"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "fun"}"#, "purpose"),
                (#"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 1, "modelUnits": 1}"#, "modelUnits"),
                (#"[1, 2]"#, "object"),
            ]
            for (json, field) in cases {
                let response = try await client.send(.post, "/v1/reservations", json: json)
                #expect(response.status == .badRequest, "\(json)")
                #expect(response.error?.error.code == "invalid-argument")
                #expect(response.error?.error.message.contains(field) == true, "\(json): \(String(buffer: response.body))")
            }
            let list = try await client.send(.get, "/v1/reservations")
            #expect(String(buffer: list.body) == #"{"more":0,"reservations":[]}"#)
        }
    }

    @Test("a reservation starting in year 9999 is refused 400 naming start (SQLite could not read its end back: a 500)")
    func farFutureStart() async throws {
        try await RouteTestApp().test { client in
            let refused = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "far", "model": "amazon.nova-micro-v1:0", "model_units": 1, "start": "9999-12-31T23:59:59Z", "duration": "2d"}"#
            )
            #expect(refused.status == .badRequest)
            #expect(refused.error?.error.message.hasPrefix("start: ") == true, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.message.contains("10 years ahead") == true)
            let near = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "near", "model": "amazon.nova-micro-v1:0", "model_units": 1, "start": "+3650d", "duration": "2d"}"#
            )
            #expect(near.status == .created, "\(String(buffer: near.body))")
            // And it reads back.
            let list = try await client.send(.get, "/v1/reservations")
            #expect(list.status == .ok)
            #expect(String(buffer: list.body).contains(#""name":"near""#))
        }
    }

    @Test("another user cannot see, update or release my reservation, nor list it; an admin sees it")
    func ownership() async throws {
        let bob = Caller(uid: 1001, gid: 1001, user: "bob", isAdmin: false)
        try await RouteTestApp().test { client in
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "alices", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#,
                as: RouteTestApp.alice
            )
            #expect(made.status == .created)
            #expect(try made.decoded(ReservationView.self).owner == "alice")

            let peek = try await client.send(.get, "/v1/reservations/alices", as: bob)
            #expect(peek.status == .forbidden)
            #expect(peek.error?.error.code == "forbidden")
            let update = try await client.send(.patch, "/v1/reservations/alices", json: #"{"model_units": 2}"#, as: bob)
            #expect(update.status == .forbidden)
            let release = try await client.send(.delete, "/v1/reservations/alices", as: bob)
            #expect(release.status == .forbidden)
            let theirs = try await client.send(.get, "/v1/reservations", as: bob)
            #expect(String(buffer: theirs.body) == #"{"more":0,"reservations":[]}"#)

            // root is an admin: it sees everyone's, and alice's is untouched.
            let all = try await client.send(.get, "/v1/reservations").decoded(ReservationList.self)
            #expect(all.reservations.map(\.name) == ["alices"])
            let hers = try await client.send(.get, "/v1/reservations/alices", as: RouteTestApp.alice).decoded(ReservationView.self)
            #expect(hers.status == "active" && hers.modelUnits == 1)
        }
    }

    @Test("GET /v1/health counts what is committed: a reservation shows at once, and its release too")
    func healthFollowsChanges() async throws {
        try await RouteTestApp().test { client in
            func health() async throws -> HealthView { try await client.send(.get, "/v1/health").decoded(HealthView.self) }
            // The first answer reads the ledger; the second is the snapshot that read kept.
            for _ in 0..<2 {
                let idle = try await health()
                #expect(idle.units.leased == 0 && idle.units.free == idle.units.dedicated && idle.reservations.active == 0)
            }
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "counted", "model": "amazon.nova-micro-v1:0", "model_units": 2}"#
            )
            #expect(made.status == .created, "\(String(buffer: made.body))")
            for _ in 0..<2 {
                let busy = try await health()
                #expect(busy.units.leased == 2 && busy.units.free == busy.units.dedicated - 2 && busy.reservations.active == 1)
            }
            #expect(try await client.send(.delete, "/v1/reservations/counted").status == .ok)
            for _ in 0..<2 {
                let released = try await health()
                #expect(released.units.leased == 0 && released.reservations.active == 0)
            }
        }
    }

    @Test("the serve supervisor is woken for an inference reservation made or released, never for a training one")
    func serveWokenForInferenceOnly() async throws {
        let app = try RouteTestApp()
        let wakes = app.serveWakes
        try await app.test { client in
            for (purpose, woken) in [("training", false), ("inference", true)] {
                let before = wakes.value
                let made = try await client.send(
                    .post,
                    "/v1/reservations",
                    json: #"{"name": "\#(purpose)", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "\#(purpose)"}"#
                )
                #expect(made.status == .created, "\(String(buffer: made.body))")
                #expect((wakes.value > before) == woken, "\(purpose): made")
                let released = wakes.value
                #expect(try await client.send(.delete, "/v1/reservations/\(purpose)").status == .ok)
                #expect((wakes.value > released) == woken, "\(purpose): released")
            }
        }
    }

    @Test("a name is taken while its reservation is live, by a new one or a rename, and free again once it is released")
    func namesTakenWhileLive() async throws {
        try await RouteTestApp().test { client in
            func reserve(_ name: String) async throws -> TestResponse {
                try await client.send(.post, "/v1/reservations", json: #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#)
            }
            #expect(try await reserve("a").status == .created)
            #expect(try await reserve("b").status == .created)
            #expect(try await reserve("a").error?.error.code == "name-taken")
            let renamed = try await client.send(.patch, "/v1/reservations/b", json: #"{"name": "a"}"#)
            #expect(renamed.error?.error.code == "name-taken", "\(String(buffer: renamed.body))")
            #expect(try await client.send(.delete, "/v1/reservations/a").status == .ok)
            let again = try await reserve("a")
            #expect(again.status == .created, "\(String(buffer: again.body))")
            #expect(try await client.send(.delete, "/v1/reservations/a").status == .ok)
            let renamedNow = try await client.send(.patch, "/v1/reservations/b", json: #"{"name": "a"}"#)
            #expect(renamedNow.status == .ok, "\(String(buffer: renamedNow.body))")
        }
    }

    @Test("a body over 1 MiB is refused with 413")
    func tooLarge() async throws {
        try await RouteTestApp().test { client in
            let padding = String(repeating: "x", count: (1 << 20) + 10)
            let response = try await client.send(.post, "/v1/reservations", json: #"{"name": "\#(padding)"}"#)
            #expect(response.status == .contentTooLarge)
            #expect(response.error?.error.code == "payload-too-large")
            #expect(try await client.send(.get, "/v1/health").status == .ok)
        }
    }

    @Test("a POST retried with the same Idempotency-Key returns the first answer and reserves once")
    func idempotencyKey() async throws {
        try await RouteTestApp().test { client in
            let request = #"{"name": "once", "model": "amazon.nova-micro-v1:0", "model_units": 2}"#
            let key: HTTPFields = [.init("Idempotency-Key")!: "k-1"]
            let first = try await client.send(.post, "/v1/reservations", json: request, headers: key)
            let retry = try await client.send(.post, "/v1/reservations", json: request, headers: key)
            #expect(first.status == .created)
            #expect(retry.status == .created)
            #expect(first.body == retry.body)
            // Without the key the same request is a new one, refused because the name is taken.
            let again = try await client.send(.post, "/v1/reservations", json: request)
            #expect(again.status == .conflict)
            #expect(again.error?.error.code == "name-taken")
            // The same key for a different request is refused.
            let other = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "twice", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#,
                headers: key
            )
            #expect(other.status == .conflict)
            #expect(other.error?.error.code == "idempotency-key-reused")
            let health = try await client.send(.get, "/v1/health").decoded(HealthView.self)
            #expect(health.units.leased == 2)
        }
    }

    @Test(
        "over capacity: 409 insufficient-capacity (the CLI's exit 4) with the free count and the earliest start that fits, which is then accepted; a pool that can never hold it says so"
    )
    func overCapacity() async throws {
        try await RouteTestApp().test { client in
            let big = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "big", "model": "amazon.nova-micro-v1:0", "model_units": 6, "duration": "2h"}"#
            )
            #expect(big.status == .created, "\(String(buffer: big.body))")
            let bigEnd = Wire.formatDate(try #require(try await client.send(.get, "/v1/reservations/big").decoded(ReservationView.self).end))
            let refused = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "more", "model": "amazon.nova-micro-v1:0", "model_units": 4, "duration": "1h"}"#
            )
            #expect(refused.status == .conflict)
            #expect(ExitStatus(httpStatus: Int(refused.status.code)) == .refused)
            #expect(refused.error?.error.code == "insufficient-capacity")
            #expect(refused.error?.error.message.contains("only 2 of 8 are free") == true, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.message.contains("earliest start that fits is \(bigEnd)") == true, "\(String(buffer: refused.body))")
            // Nothing changed: the refused reservation is not in the ledger.
            let missing = try await client.send(.get, "/v1/reservations/more")
            #expect(missing.status == .notFound)
            #expect(ExitStatus(httpStatus: Int(missing.status.code)) == .notFound)
            // And starting at the suggested time is accepted, as an advance reservation.
            let later = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "more", "model": "amazon.nova-micro-v1:0", "model_units": 4, "duration": "1h", "start": "\#(bigEnd)"}"#
            )
            #expect(later.status == .created, "\(String(buffer: later.body))")
            #expect(try await client.send(.get, "/v1/reservations/more").decoded(ReservationView.self).status == "pending")
            // A pool that can never hold it says so.
            let never = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "huge", "model": "amazon.nova-micro-v1:0", "model_units": 9}"#
            )
            #expect(never.status == .conflict)
            #expect(ExitStatus(httpStatus: Int(never.status.code)) == .refused)
            #expect(never.error?.error.message.contains("never fit") == true, "\(String(buffer: never.body))")
        }
    }

    @Test("a burst of reservations is group-committed: those that fit are made, the rest refused, none lost; one key acts once")
    func burst() async throws {
        let app = try RouteTestApp(config: TemporaryDaemon.config(dedicated: 4))
        let ledger = app.ledger
        try await app.test { client in
            func reserve(_ name: String, key: String? = nil) async throws -> (String, HTTPResponse.Status, String) {
                let response = try await client.send(
                    .post,
                    "/v1/reservations",
                    json: #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training", "duration": "1h"}"#,
                    headers: key.map { [.init("Idempotency-Key")!: $0] } ?? [:]
                )
                return (name, response.status, String(buffer: response.body))
            }
            // 12 one-unit reservations at once for 4 units, and 8 retries of one keyed request.
            let answers = try await withThrowingTaskGroup(of: (String, HTTPResponse.Status, String).self) { group in
                for i in 0..<12 { group.addTask { try await reserve("r\(i)") } }
                for _ in 0..<8 { group.addTask { try await reserve("keyed", key: "k-1") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let made = answers.filter { $0.1 == .created }
            let refused = answers.filter { $0.1 == .conflict }
            #expect(made.count + refused.count == answers.count, "\(answers.filter { $0.1 != .created && $0.1 != .conflict })")
            // The keyed request is one reservation, answered the same every time; or it is refused
            // every time (a refusal is not stored: its message names the second it was refused in).
            let keyed = answers.filter { $0.0 == "keyed" }
            #expect(Set(keyed.map(\.1.code)).count == 1, "\(keyed)")
            if keyed.first?.1 == .created { #expect(Set(keyed.map(\.2)).count == 1, "\(keyed)") }
            // Exactly 4 units' worth were made, each answered active with its lease.
            let distinct = Set(made.map(\.0))
            #expect(distinct.count == 4)
            for answer in made { #expect(answer.2.contains(#""status":"active""#)) }
            // The ledger holds exactly the acknowledged ones.
            let names = try ledger.readNow { tx in try tx.reservations().map(\.name) }
            #expect(Set(names) == distinct)
            #expect(names.count == distinct.count)
        }
    }

    @Test(
        "an unknown model is 404 naming the model (the CLI's exit 3); a start in the past and a commitment with a duration are 400 naming the field (exit 2); nothing is made"
    )
    func badInput() async throws {
        try await RouteTestApp().test { client in
            let noModel = try await client.send(.post, "/v1/reservations", json: #"{"name": "x", "model": "no.such-model", "model_units": 1}"#)
            #expect(noModel.status == .notFound, "\(String(buffer: noModel.body))")
            #expect(ExitStatus(httpStatus: Int(noModel.status.code)) == .notFound)
            #expect(noModel.error?.error.message.contains("model") == true, "\(String(buffer: noModel.body))")
            let past = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "x", "model": "amazon.nova-micro-v1:0", "model_units": 1, "start": "-2d"}"#
            )
            #expect(past.status == .badRequest, "\(String(buffer: past.body))")
            #expect(ExitStatus(httpStatus: Int(past.status.code)) == .usage)
            #expect(past.error?.error.message.contains("start") == true, "\(String(buffer: past.body))")
            let reel = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "x", "model": "amazon.nova-micro-v1:0", "model_units": 1, "commitment": "1m", "duration": "2h"}"#
            )
            #expect(reel.status == .badRequest, "\(String(buffer: reel.body))")
            #expect(ExitStatus(httpStatus: Int(reel.status.code)) == .usage)
            #expect(reel.error?.error.message.contains("duration") == true, "\(String(buffer: reel.body))")
            #expect(try await client.send(.get, "/v1/reservations").decoded(ReservationList.self).reservations.isEmpty)
        }
    }

    @Test("a model of two compute units per model unit holds twice as many units")
    func sizingFollowsTheModel() async throws {
        try await RouteTestApp().test { client in
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "llama", "model": "meta.llama3-8b-instruct-v1:0", "model_units": 2, "purpose": "training"}"#
            )
            #expect(made.status == .created, "\(String(buffer: made.body))")
            let shown = try await client.send(.get, "/v1/reservations/llama").decoded(ReservationView.self)
            #expect(shown.units == 4)
            #expect(shown.leases.count == 4)
        }
    }
    @Test("update renames, moves within the base's family, adds units, and never takes units away")
    func update() async throws {
        try await RouteTestApp().test { client in
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "grow", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#
            )
            #expect(made.status == .created)
            let grown = try await client.send(.patch, "/v1/reservations/grow", json: #"{"model_units": 3, "name": "grown"}"#)
            #expect(grown.status == .ok, "\(String(buffer: grown.body))")
            let shown = try await client.send(.get, "/v1/reservations/grown").decoded(ReservationView.self)
            #expect(shown.modelUnits == 3)
            #expect(shown.leases.count == 3)
            let shrink = try await client.send(.patch, "/v1/reservations/grown", json: #"{"model_units": 2}"#)
            #expect(shrink.error?.error.code == "invalid-argument")
            #expect(shrink.error?.error.message.contains("never taken away") == true)
            let otherFamily = try await client.send(.patch, "/v1/reservations/grown", json: #"{"model": "meta.llama3-8b-instruct-v1:0"}"#)
            #expect(otherFamily.error?.error.code == "invalid-argument")
            #expect(otherFamily.error?.error.message.contains("same base") == true)
            let tooMany = try await client.send(.patch, "/v1/reservations/grown", json: #"{"model_units": 9}"#)
            #expect(tooMany.error?.error.code == "insufficient-capacity")
            #expect(try await client.send(.get, "/v1/reservations/grown").decoded(ReservationView.self).modelUnits == 3)
        }
    }

    @Test("capacity shows free units over time")
    func capacity() async throws {
        try await RouteTestApp().test { client in
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "a", "model": "amazon.nova-micro-v1:0", "model_units": 3, "duration": "1h"}"#
            )
            #expect(made.status == .created)
            let view = try await client.send(.get, "/v1/capacity?to=2026-11-01T03:00:00Z").decoded(CapacityView.self)
            #expect(view.total == 8)
            #expect(view.steps.map(\.free) == [5, 8])
        }
    }
    @Test("release inside a commitment is refused commitment-active; without one it is released")
    func releaseInsideCommitment() async throws {
        try await RouteTestApp().test { client in
            let committed = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "committed", "model": "amazon.nova-micro-v1:0", "model_units": 1, "commitment": "1m"}"#
            )
            #expect(committed.status == .created)
            let refused = try await client.send(.delete, "/v1/reservations/committed")
            #expect(refused.error?.error.code == "commitment-active")
            #expect(try await client.send(.get, "/v1/reservations/committed").decoded(ReservationView.self).status == "active")

            let free = #"{"name": "free", "model": "amazon.nova-micro-v1:0", "model_units": 1}"#
            #expect(try await client.send(.post, "/v1/reservations", json: free).status == .created)
            let released = try await client.send(.delete, "/v1/reservations/free")
            #expect(released.status == .ok, "\(String(buffer: released.body))")
            let shown = try await client.send(.get, "/v1/reservations/free").decoded(ReservationView.self)
            #expect(shown.status == "deleted")
            #expect(shown.leases.allSatisfy { $0.end != nil })
            // The name can be used again once released.
            #expect(try await client.send(.post, "/v1/reservations", json: free).status == .created)
        }
    }
    @Test("admission books a reservation on one executor's units: two and two fit three local and three Slurm units, a third two does not")
    func oneExecutorPerReservation() async throws {
        let app = try RouteTestApp(config: TemporaryDaemon.config(dedicated: 6))
        let ledger = app.ledger
        ledger.setUnitExecutors(["cpu-3": "slurm", "cpu-4": "slurm", "cpu-5": "slurm"])
        try await app.test { client in
            func reserve(_ name: String, start: String = "now") async throws -> TestResponse {
                try await client.send(
                    .post,
                    "/v1/reservations",
                    json:
                        #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": 2, "purpose": "training", "start": "\#(start)", "duration": "1h"}"#
                )
            }
            let first = try await reserve("a")
            #expect(first.status == .created, "\(String(buffer: first.body))")
            #expect(try first.decoded(ReservationView.self).leases.map(\.unit).sorted() == ["cpu-0", "cpu-1"])
            let second = try await reserve("b")
            #expect(second.status == .created, "\(String(buffer: second.body))")
            #expect(try second.decoded(ReservationView.self).leases.map(\.unit).sorted() == ["cpu-3", "cpu-4"])
            // Two units are free in all, but one of each executor: refused, not left pending for ever.
            let third = try await reserve("c")
            #expect(third.error?.error.code == "insufficient-capacity", "\(String(buffer: third.body))")
            let message = third.error?.error.message ?? ""
            #expect(message.contains("only 1 of 3") && message.contains("one executor: 3 on this host, 3 on Slurm"), "\(message)")
            // An advance reservation is booked on the executor it was admitted on, and starts there.
            let later = try await reserve("later", start: "+2h")
            #expect(later.status == .created, "\(String(buffer: later.body))")
            let booked = try ledger.readNow { tx in try tx.reservation(named: "later") }
            #expect(booked?.executor == "", "\(String(describing: booked))")
            let onSlurm = try ledger.readNow { tx in try tx.reservation(named: "b") }
            #expect(onSlurm?.executor == "slurm")
            // The capacity calendar shows each executor's own: 1 free here and 1 on Slurm now.
            let capacity = try await client.send(.get, "/v1/capacity?to=%2B1h").decoded(CapacityView.self)
            #expect(capacity.total == 6 && capacity.steps.first?.free == 2, "\(capacity)")
            let executors = try #require(capacity.executors, "\(capacity)")
            #expect(executors.map(\.executor) == ["local", "slurm"])
            #expect(executors.map(\.total) == [3, 3])
            #expect(executors.map { $0.steps.first?.free } == [1, 1], "\(executors)")
        }
    }

    @Test(
        "a reservation on Slurm units has its units pinned at admission, shown while pending; growing it first pins more; others keep off them only over its window"
    )
    func pinsSlurmUnits() async throws {
        let app = try RouteTestApp(config: TemporaryDaemon.config(dedicated: 6))
        let ledger = app.ledger
        ledger.setUnitExecutors(["cpu-3": "slurm", "cpu-4": "slurm", "cpu-5": "slurm"])
        try await app.test { client in
            func reserve(_ name: String, units: Int, start: String, duration: String?) async throws -> ReservationView {
                let length = duration.map { #", "duration": "\#($0)""# } ?? ""
                let made = try await client.send(
                    .post,
                    "/v1/reservations",
                    json:
                        #"{"name": "\#(name)", "model": "amazon.nova-micro-v1:0", "model_units": \#(units), "purpose": "training", "start": "\#(start)"\#(length)}"#
                )
                #expect(made.status == .created, "\(String(buffer: made.body))")
                return try made.decoded(ReservationView.self)
            }
            // This host's three units, open-ended: the rest goes to Slurm.
            let here = try await reserve("here", units: 3, start: "now", duration: nil)
            #expect(here.pinnedUnits == nil && here.leases.count == 3)
            let later = try await reserve("later", units: 1, start: "+2h", duration: "1h")
            #expect(later.status == "pending" && later.pinnedUnits == ["cpu-3"], "\(later)")
            // Grown before its start: one more unit free over its window is pinned too.
            let grown = try await client.send(.patch, "/v1/reservations/later", json: #"{"model_units": 2}"#).decoded(ReservationView.self)
            #expect(grown.pinnedUnits == ["cpu-3", "cpu-4"], "\(grown)")
            // One that ends before the pinned window may use those units meanwhile; it starts now,
            // so it is active and shows leases, not pins.
            let before = try await reserve("before", units: 1, start: "now", duration: "1h")
            #expect(before.status == "active" && before.pinnedUnits == nil && before.leases.map(\.unit) == ["cpu-3"], "\(before)")
            // One across the pinned window gets the unit no one has pinned.
            let across = try await reserve("across", units: 1, start: "now", duration: "3h")
            #expect(across.leases.map(\.unit) == ["cpu-5"], "\(across)")
            // The pins are kept in the ledger, not worked out again.
            let stored = try ledger.readNow { tx in try tx.reservation(named: "later") }
            #expect(stored?.pinnedUnits == ["cpu-3", "cpu-4"])
        }
    }
}
