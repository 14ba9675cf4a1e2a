import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// `docs/openapi.yaml` against the real daemon: every endpoint is driven, with its answers and
/// its refusals, and `Tests/openapi/validate.py` checks every exchange against the document.
@Suite("OpenAPI document", .serialized)
struct OpenAPITests {
    static let model = "amazon.nova-micro-v1:0"

    /// Now plus some days, as RFC 3339.
    static func rfc3339(days: Double) -> String {
        ISO8601DateFormatter().string(from: Date().addingTimeInterval(days * 86_400))
    }

    @Test("every answer of a real daemon, driven through every endpoint, validates against docs/openapi.yaml")
    func answersMatchTheDocument() async throws {
        let scripts = try TemporaryDirectory(prefix: "berth-openapi")
        defer { scripts.remove() }
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(runner: try FakeRunner.install(in: scripts)))
        try daemon.start()
        let api = ExchangeRecorder(daemon: daemon)

        try await daemonAndCatalog(api)
        try await reservations(api)
        try await capacity(api)
        try await jobs(api, daemon: daemon)
        try await invocations(api)
        try await openAIRoutesAndKeys(api)
        try await usageAndMetrics(api)

        let result = try OpenAPIValidator.run(api.exchanges, keepAt: ProcessInfo.processInfo.environment["BERTH_OPENAPI_EXCHANGES"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test("the validator refuses answers and requests that drift from the document")
    func validatorCatchesDrift() throws {
        let health =
            #"{"reservations":{"active":0,"pending":0},"started_at":"2026-11-25T02:58:16Z","status":"ok","units":{"dedicated":8,"free":8,"leased":0,"shared":2},"uptime_seconds":7,"version":"0.1.0"}"#
        let cases: [(Exchange, String)] = [
            (
                .answer("no version", "GET", "/v1/health", 200, health.replacingOccurrences(of: #","version":"0.1.0""#, with: "")),
                "'version' is a required property"
            ),
            (
                .answer(
                    "a time that is not RFC 3339",
                    "GET",
                    "/v1/health",
                    200,
                    health.replacingOccurrences(of: "2026-11-25T02:58:16Z", with: "yesterday")
                ),
                "is not a 'date-time'"
            ),
            (
                .answer(
                    "an undocumented field",
                    "GET",
                    "/v1/units",
                    200,
                    #"{"units":[{"id":"cpu-0","kind":"cpu","pool":"dedicated","colour":"red"}]}"#
                ),
                "Additional properties are not allowed ('colour'"
            ),
            (
                .answer("an undocumented status", "GET", "/v1/health", 418, #"{"error":{"code":"internal","message":"teapot"}}"#),
                "status 418 is not documented"
            ),
            (
                .answer("an error without its JSON body", "GET", "/v1/models/x", 404, "not found", contentType: "text/plain"),
                "Content-Type 'text/plain' is not documented"
            ),
            (
                .answer("a code of another status", "GET", "/v1/models/x", 404, #"{"error":{"code":"throttled","message":"no"}}"#),
                "'not-found' was expected"
            ),
            (
                .answer(
                    "429 without Retry-After",
                    "POST",
                    "/v1/invoke",
                    429,
                    #"{"error":{"code":"throttled","message":"slow down"}}"#,
                    requestBody: #"{"target":"chat","prompt":"hello"}"#
                ),
                "header Retry-After: required, missing"
            ),
            (
                .answer("an undocumented path", "GET", "/v1/nothing", 404, #"{"error":{"code":"not-found","message":"no"}}"#),
                "GET /v1/nothing is not in the document"
            ),
            (
                .answer(
                    "a body the daemon took and the document refuses",
                    "POST",
                    "/v1/reservations",
                    400,
                    #"{"error":{"code":"invalid-argument","message":"x"}}"#,
                    requestBody: #"{"name":"a","model":"m","model_units":1,"colour":"red"}"#
                ),
                "request refused by the document, but the daemon took it"
            ),
            (
                .answer(
                    "a body the daemon refused and the document takes",
                    "POST",
                    "/v1/reservations",
                    400,
                    #"{"error":{"code":"invalid-argument","message":"x"}}"#,
                    requestBody: #"{"name":"a","model":"m","model_units":1}"#,
                    request: .invalid
                ),
                "the daemon refused the request's shape, but the document accepts it"
            ),
        ]
        let result = try OpenAPIValidator.run(cases.map(\.0))
        #expect(result.status == 1, "\(result)")
        for (exchange, message) in cases {
            let line = result.stdout.split(separator: "\n").first { $0.contains("[\(exchange.label)]") } ?? ""
            #expect(line.contains(message), "\(exchange.label): expected \(message), got: \(line.isEmpty ? result.stdout : String(line))")
        }
    }

    // MARK: The flow, in the order a user meets the API

    func daemonAndCatalog(_ api: ExchangeRecorder) async throws {
        try await api.send("health", "GET", "/v1/health", expect: 200)
        try await api.send("units, none held", "GET", "/v1/units", expect: 200)
        try await api.send("catalog", "GET", "/v1/models", expect: 200)
        try await api.send("a model, percent-encoded", "GET", "/v1/models/amazon.nova-micro-v1%3A0", expect: 200)
        try await api.send("a model, as is", "GET", "/v1/models/\(Self.model)", expect: 200)
        try await api.send("no such model", "GET", "/v1/models/no.such-model", expect: 404)
        try await api.send("metrics before anything", "GET", "/metrics", expect: 200)
        try await api.send("an unknown path", "GET", "/v1/nothing", routed: false, expect: 404)
        try await api.send("a wrong method on a known path", "PUT", "/v1/health", routed: false, expect: 404)
        try await api.send("DELETE on a list", "DELETE", "/v1/jobs", routed: false, expect: 404)
    }

    func reservations(_ api: ExchangeRecorder) async throws {
        let train = #"{"name":"train","model":"\#(Self.model)","model_units":2,"purpose":"training","duration":"2h"}"#
        try await api.send("reserve for training", "POST", "/v1/reservations", json: train, headers: [("Idempotency-Key", "k-train")], expect: 201)
        try await api.send(
            "the same, retried with its key",
            "POST",
            "/v1/reservations",
            json: train,
            headers: [("Idempotency-Key", "k-train")],
            expect: 201
        )
        try await api.send(
            "the key for another request",
            "POST",
            "/v1/reservations",
            json: #"{"name":"other","model":"\#(Self.model)","model_units":1}"#,
            headers: [("Idempotency-Key", "k-train")],
            expect: 409
        )
        try await api.send("the same name again", "POST", "/v1/reservations", json: train, expect: 409)
        try await api.send(
            "more units than the pool",
            "POST",
            "/v1/reservations",
            json: #"{"name":"big","model":"\#(Self.model)","model_units":50,"purpose":"training"}"#,
            expect: 409
        )
        try await api.send(
            "an advance reservation",
            "POST",
            "/v1/reservations",
            json: #"{"name":"later","model":"\#(Self.model)","model_units":1,"purpose":"training","start":"+1d","duration":"1h","wait":null}"#,
            expect: 201
        )
        try await api.send(
            "a month's commitment",
            "POST",
            "/v1/reservations",
            json: #"{"name":"held","model":"\#(Self.model)","model_units":1,"purpose":"training","commitment":"1m"}"#,
            expect: 201
        )
        try await api.send(
            "reserve for inference",
            "POST",
            "/v1/reservations",
            json: #"{"name":"chat","model":"\#(Self.model)","model_units":1,"purpose":"inference","spillover":false}"#,
            expect: 201
        )
        try await api.send("a tiny budget", "POST", "/v1/reservations", json: #"{"name":"tiny","model":"test.tiny-v1","model_units":1}"#, expect: 201)

        // Bodies whose shape the daemon refuses: the document must refuse them too.
        let refusedShapes: [(String, String)] = [
            ("not JSON", #"{"name": "a", "model": "x""#),
            ("not an object", "[1, 2]"),
            ("an unknown field", #"{"name":"a","model":"\#(Self.model)","model_units":1,"colour":"red"}"#),
            ("a camelCase field", #"{"name":"a","model":"\#(Self.model)","model_units":1,"modelUnits":1}"#),
            ("a string for an integer", #"{"name":"a","model":"\#(Self.model)","model_units":"1"}"#),
            ("a fraction for an integer", #"{"name":"a","model":"\#(Self.model)","model_units":1.5}"#),
            ("no model units", #"{"name":"a","model":"\#(Self.model)","model_units":0}"#),
            ("too many model units", #"{"name":"a","model":"\#(Self.model)","model_units":100001}"#),
            ("a bad name", #"{"name":"Bad_Name","model":"\#(Self.model)","model_units":1}"#),
            ("a missing name", #"{"model":"\#(Self.model)","model_units":1}"#),
            ("a null name", #"{"name":null,"model":"\#(Self.model)","model_units":1}"#),
            ("an unknown purpose", #"{"name":"a","model":"\#(Self.model)","model_units":1,"purpose":"fun"}"#),
            ("an unknown commitment", #"{"name":"a","model":"\#(Self.model)","model_units":1,"commitment":"2y"}"#),
            ("a string for a bool", #"{"name":"a","model":"\#(Self.model)","model_units":1,"wait":"yes"}"#),
        ]
        for (label, body) in refusedShapes {
            try await api.send("reserve: \(label)", "POST", "/v1/reservations", json: body, request: .invalid, expect: 400)
        }
        try await api.send(
            "reserve: an Idempotency-Key of 300 characters",
            "POST",
            "/v1/reservations",
            json: #"{"name":"a","model":"\#(Self.model)","model_units":1}"#,
            headers: [("Idempotency-Key", String(repeating: "k", count: 300))],
            request: .invalid,
            expect: 400
        )
        // Well-formed bodies the daemon refuses for what they mean.
        let refusedValues: [(String, String)] = [
            ("a start that is not a time", #"{"name":"a","model":"\#(Self.model)","model_units":1,"start":"yesterday"}"#),
            ("a start in the past", #"{"name":"a","model":"\#(Self.model)","model_units":1,"start":"-1d"}"#),
            (
                "a start the ledger could not store the end of",
                #"{"name":"a","model":"\#(Self.model)","model_units":1,"purpose":"training","commitment":"6m","start":"9999-12-31T23:59:59Z"}"#
            ),
            ("a duration with a commitment", #"{"name":"a","model":"\#(Self.model)","model_units":1,"commitment":"1m","duration":"2h"}"#),
            ("a duration that is not one", #"{"name":"a","model":"\#(Self.model)","model_units":1,"duration":"forever"}"#),
            ("training a model without customizations", #"{"name":"a","model":"test.tiny-v1","model_units":1,"purpose":"training"}"#),
            ("spillover for training", #"{"name":"a","model":"\#(Self.model)","model_units":1,"purpose":"training","spillover":true}"#),
        ]
        for (label, body) in refusedValues {
            try await api.send("reserve: \(label)", "POST", "/v1/reservations", json: body, expect: 400)
        }
        try await api.send(
            "reserve: no such model",
            "POST",
            "/v1/reservations",
            json: #"{"name":"a","model":"no.such-model","model_units":1}"#,
            expect: 404
        )
        try await api.send(
            "reserve: over 1 MiB",
            "POST",
            "/v1/reservations",
            json: #"{"name":"\#(String(repeating: "x", count: (1 << 20) + 10))"}"#,
            expect: 413
        )

        try await api.send("list", "GET", "/v1/reservations", expect: 200)
        try await api.send("one, training", "GET", "/v1/reservations/train", expect: 200)
        try await api.send("one, inference", "GET", "/v1/reservations/chat", expect: 200)
        try await api.send("one, pending", "GET", "/v1/reservations/later", expect: 200)
        try await api.send("no such reservation", "GET", "/v1/reservations/nope", expect: 404)
        try await api.send("list, as another user", "GET", "/v1/reservations", as: .nobody, expect: 200)
        try await api.send("units, as another user", "GET", "/v1/units", as: .nobody, expect: 200)
        try await api.send("someone else's", "GET", "/v1/reservations/train", as: .nobody, expect: 403)

        try await api.send("add units", "PATCH", "/v1/reservations/train", json: #"{"model_units":3}"#, expect: 200)
        try await api.send("rename", "PATCH", "/v1/reservations/later", json: #"{"name":"later2"}"#, expect: 200)
        try await api.send("update: nothing", "PATCH", "/v1/reservations/later2", json: "{}", request: .invalid, expect: 400)
        try await api.send("update: only nulls", "PATCH", "/v1/reservations/later2", json: #"{"name":null}"#, request: .invalid, expect: 400)
        try await api.send("update: an unknown field", "PATCH", "/v1/reservations/later2", json: #"{"colour":"red"}"#, request: .invalid, expect: 400)
        try await api.send("update: a bad name", "PATCH", "/v1/reservations/later2", json: #"{"name":"-x"}"#, request: .invalid, expect: 400)
        try await api.send("update: zero units", "PATCH", "/v1/reservations/later2", json: #"{"model_units":0}"#, request: .invalid, expect: 400)
        try await api.send("update: fewer units", "PATCH", "/v1/reservations/train", json: #"{"model_units":1}"#, expect: 400)
        try await api.send(
            "update: another family",
            "PATCH",
            "/v1/reservations/train",
            json: #"{"model":"meta.llama3-8b-instruct-v1:0"}"#,
            expect: 400
        )
        try await api.send("update: units not free", "PATCH", "/v1/reservations/train", json: #"{"model_units":60}"#, expect: 409)
        try await api.send("update: a taken name", "PATCH", "/v1/reservations/later2", json: #"{"name":"chat"}"#, expect: 409)
        try await api.send("update: no such reservation", "PATCH", "/v1/reservations/nope", json: #"{"model_units":2}"#, expect: 404)
        try await api.send("update: no such model", "PATCH", "/v1/reservations/train", json: #"{"model":"no.such-model"}"#, expect: 404)
        try await api.send("update: someone else's", "PATCH", "/v1/reservations/train", json: #"{"model_units":4}"#, as: .nobody, expect: 403)
        try await api.send(
            "update: over 1 MiB",
            "PATCH",
            "/v1/reservations/train",
            json: #"{"name":"\#(String(repeating: "x", count: (1 << 20) + 10))"}"#,
            expect: 413
        )

        try await api.send("release", "DELETE", "/v1/reservations/later2", expect: 200)
        try await api.send("release again", "DELETE", "/v1/reservations/later2", expect: 409)
        try await api.send("update a released one", "PATCH", "/v1/reservations/later2", json: #"{"model_units":2}"#, expect: 409)
        try await api.send("release inside its commitment", "DELETE", "/v1/reservations/held", expect: 409)
        try await api.send("release: no such reservation", "DELETE", "/v1/reservations/nope", expect: 404)
        try await api.send("release: someone else's", "DELETE", "/v1/reservations/train", as: .nobody, expect: 403)
        try await api.send("list with a released one", "GET", "/v1/reservations", expect: 200)

        let page = try await api.send("list, two at a time", "GET", "/v1/reservations?limit=2", expect: 200)
        let cursor = try #require(try Wire.decoder().decode(ReservationList.self, from: page.body).nextCursor)
        try await api.send("list, the next two", "GET", "/v1/reservations?limit=2&cursor=\(cursor)", expect: 200)
        try await api.send("list, some fields", "GET", "/v1/reservations?fields=" + ReservationRow.fields.joined(separator: ","), expect: 200)
        try await api.send(
            "list, as rows",
            "GET",
            "/v1/reservations?fields=" + ReservationRow.fields.joined(separator: ",") + "&shape=rows",
            expect: 200
        )
        try await api.send("list, a field that is not one", "GET", "/v1/reservations?fields=name,colour", request: .invalid, expect: 400)
        try await api.send("list, filtered", "GET", "/v1/reservations?status=pending,active&purpose=training&owner=root&since=-1d", expect: 200)
        try await api.send("list, a status given twice", "GET", "/v1/reservations?status=deleted&status=expired", expect: 200)
        try await api.send("list, naming oneself", "GET", "/v1/reservations?owner=nobody", as: .nobody, expect: 200)
        try await api.send("list: another user's", "GET", "/v1/reservations?owner=root", as: .nobody, expect: 403)
        try await api.send("list: a limit of 0", "GET", "/v1/reservations?limit=0", request: .invalid, expect: 400)
        try await api.send("list: an unknown status", "GET", "/v1/reservations?status=pending,done", request: .invalid, expect: 400)
        try await api.send("list: an unknown purpose", "GET", "/v1/reservations?purpose=fun", request: .invalid, expect: 400)
        try await api.send("list: not a time", "GET", "/v1/reservations?since=soon", expect: 400)
        try await api.send("list: not a cursor", "GET", "/v1/reservations?cursor=x", expect: 400)
        try await api.send("list: an unknown parameter", "GET", "/v1/reservations?colour=red", expect: 400)
    }

    func capacity(_ api: ExchangeRecorder) async throws {
        try await api.send("capacity", "GET", "/v1/capacity", expect: 200)
        try await api.send("capacity over a window", "GET", "/v1/capacity?from=now&to=%2B2d", expect: 200)
        try await api.send("capacity between dates", "GET", "/v1/capacity?from=\(Self.rfc3339(days: 1))&to=\(Self.rfc3339(days: 30))", expect: 200)
        try await api.send("capacity: not a time", "GET", "/v1/capacity?from=yesterday", expect: 400)
        try await api.send("capacity: backwards", "GET", "/v1/capacity?from=now&to=-1d", expect: 400)
        try await api.send("capacity: over 10 years", "GET", "/v1/capacity?to=%2B5000d", expect: 400)
    }

    func jobs(_ api: ExchangeRecorder, daemon: TemporaryDaemon) async throws {
        func dataset(_ name: String, from example: String = "fine-tuning.jsonl") throws -> String {
            let path = daemon.directory.file(name)
            try FileManager.default.copyItem(atPath: "\(TemporaryDaemon.examples)/\(example)", toPath: path)
            return path
        }
        let ok = try dataset("ok.jsonl")
        let slow = try dataset("slow.jsonl")
        let batch = try dataset("batch.jsonl", from: "batch-inference.jsonl")
        let bad = try dataset("bad.jsonl", from: "fine-tuning-bad-line-37.jsonl")
        let out = daemon.directory.file("out")
        func fineTuning(_ name: String, data: String = ok, extra: String = "") -> String {
            #"{"name":"\#(name)","reservation":"train","kind":"fine-tuning","data":"\#(data)","output":"\#(out)-\#(name)","model_name":"custom-\#(name)"\#(extra)}"#
        }

        let first = try await api.send(
            "submit",
            "POST",
            "/v1/jobs",
            json: fineTuning("ft", extra: #","epochs":1,"priority":5"#),
            headers: [("Idempotency-Key", "k-job")],
            expect: 201
        )
        let ft = try Wire.decoder().decode(JobView.self, from: first.body).id
        try await api.waitForJob(ft, in: ["completed"])
        try await api.send(
            "submit, retried with its key",
            "POST",
            "/v1/jobs",
            json: fineTuning("ft", extra: #","epochs":1,"priority":5"#),
            headers: [("Idempotency-Key", "k-job")],
            expect: 201
        )
        try await api.send(
            "submit: the key for another job",
            "POST",
            "/v1/jobs",
            json: fineTuning("ft2"),
            headers: [("Idempotency-Key", "k-job")],
            expect: 409
        )

        let running = try await api.send("submit a long job", "POST", "/v1/jobs", json: fineTuning("slow", data: slow), expect: 201)
        let slowID = try Wire.decoder().decode(JobView.self, from: running.body).id
        try await api.waitForJob(slowID, in: ["running"])
        let queued = try await api.send("submit behind it", "POST", "/v1/jobs", json: fineTuning("queued"), expect: 201)
        let queuedID = try Wire.decoder().decode(JobView.self, from: queued.body).id
        try await api.send("a running job", "GET", "/v1/jobs/\(slowID)", expect: 200)
        try await api.send("stop a queued job", "POST", "/v1/jobs/\(queuedID)/stop", expect: 200)
        try await api.send("stop a running job", "POST", "/v1/jobs/\(slowID)/stop", expect: 200)
        try await api.waitForJob(slowID, in: ["stopped"])
        try await api.send("stop a stopped job", "POST", "/v1/jobs/\(slowID)/stop", expect: 409)
        try await api.send(
            "batch inference",
            "POST",
            "/v1/jobs",
            json: #"{"name":"batch","reservation":"chat","kind":"batch-inference","data":"\#(batch)","output":"\#(out)-batch","epochs":null}"#,
            expect: 201
        )

        let refusedShapes: [(String, String)] = [
            ("an unknown field", fineTuning("x", extra: #","colour":"red""#)),
            ("an unknown kind", #"{"name":"x","reservation":"train","kind":"cooking","data":"\#(ok)","output":"\#(out)"}"#),
            ("a relative data path", fineTuning("x", data: "ok.jsonl")),
            ("a priority out of range", fineTuning("x", extra: #","priority":5000"#)),
            ("no model units", fineTuning("x", extra: #","model_units":0"#)),
            ("a string for epochs", fineTuning("x", extra: #","epochs":"3""#)),
            ("fine-tuning without a model name", #"{"name":"x","reservation":"train","kind":"fine-tuning","data":"\#(ok)","output":"\#(out)"}"#),
            ("a bad model name", #"{"name":"x","reservation":"train","kind":"fine-tuning","data":"\#(ok)","output":"\#(out)","model_name":"-x"}"#),
            (
                "batch inference with epochs",
                #"{"name":"x","reservation":"chat","kind":"batch-inference","data":"\#(batch)","output":"\#(out)","epochs":2}"#
            ),
            ("a bad job name", fineTuning("X Y")),
            ("no output", #"{"name":"x","reservation":"train","kind":"fine-tuning","data":"\#(ok)","model_name":"m"}"#),
        ]
        for (label, body) in refusedShapes {
            try await api.send("submit: \(label)", "POST", "/v1/jobs", json: body, request: .invalid, expect: 400)
        }
        let refusedValues: [(String, String)] = [
            ("epochs out of the model's range", fineTuning("x", extra: #","epochs":99"#)),
            ("no such data file", fineTuning("x", data: "/nonexistent/data.jsonl")),
            ("a bad dataset line", fineTuning("x", data: bad)),
            ("more units than the reservation", fineTuning("x", extra: #","model_units":10"#)),
            (
                "fine-tuning on an inference reservation",
                #"{"name":"x","reservation":"chat","kind":"fine-tuning","data":"\#(ok)","output":"\#(out)","model_name":"m"}"#
            ),
        ]
        for (label, body) in refusedValues {
            try await api.send("submit: \(label)", "POST", "/v1/jobs", json: body, expect: 400)
        }
        try await api.send(
            "submit: no such reservation",
            "POST",
            "/v1/jobs",
            json: #"{"name":"x","reservation":"nope","kind":"fine-tuning","data":"\#(ok)","output":"\#(out)","model_name":"m"}"#,
            expect: 404
        )
        try await api.send("submit: a taken model name", "POST", "/v1/jobs", json: fineTuning("ft"), expect: 409)
        try await api.send(
            "submit: a released reservation",
            "POST",
            "/v1/jobs",
            json: #"{"name":"x","reservation":"later2","kind":"fine-tuning","data":"\#(ok)","output":"\#(out)","model_name":"m"}"#,
            expect: 409
        )
        try await api.send("submit: someone else's reservation", "POST", "/v1/jobs", json: fineTuning("x"), as: .nobody, expect: 403)
        try await api.send("submit: over 1 MiB", "POST", "/v1/jobs", json: #"{"name":"\#(String(repeating: "x", count: 1 << 20))"}"#, expect: 413)

        try await api.send("jobs", "GET", "/v1/jobs", expect: 200)
        try await api.send("a completed job", "GET", "/v1/jobs/\(ft)", expect: 200)
        try await api.send("a stopped job", "GET", "/v1/jobs/\(queuedID)", expect: 200)
        try await api.send("no such job", "GET", "/v1/jobs/999", expect: 404)
        try await api.send("a job id that is not a number", "GET", "/v1/jobs/abc", request: .invalid, expect: 400)
        try await api.send("job id 0", "GET", "/v1/jobs/0", request: .invalid, expect: 400)
        try await api.send("events", "GET", "/v1/jobs/\(ft)/events", expect: 200)
        try await api.send("events of a stopped job", "GET", "/v1/jobs/\(slowID)/events", expect: 200)
        try await api.send("events: no such job", "GET", "/v1/jobs/999/events", expect: 404)
        try await api.send("events: a bad id", "GET", "/v1/jobs/abc/events", request: .invalid, expect: 400)
        try await api.send("log", "GET", "/v1/jobs/\(ft)/log", expect: 200)
        try await api.send("log from an offset", "GET", "/v1/jobs/\(ft)/log?offset=10", expect: 200)
        try await api.send("log past its end", "GET", "/v1/jobs/\(ft)/log?offset=99999999", expect: 200)
        try await api.send("log: a negative offset", "GET", "/v1/jobs/\(ft)/log?offset=-1", request: .invalid, expect: 400)
        try await api.send("log: an offset that is not a number", "GET", "/v1/jobs/\(ft)/log?offset=x", request: .invalid, expect: 400)
        try await api.send("log: no such job", "GET", "/v1/jobs/999/log", expect: 404)
        try await api.send("log: a bad id", "GET", "/v1/jobs/abc/log", request: .invalid, expect: 400)
        try await api.send("stop: no such job", "POST", "/v1/jobs/999/stop", expect: 404)
        try await api.send("stop: a bad id", "POST", "/v1/jobs/abc/stop", request: .invalid, expect: 400)
        try await api.send("jobs, as another user", "GET", "/v1/jobs", as: .nobody, expect: 200)
        let page = try await api.send("jobs, one at a time", "GET", "/v1/jobs?limit=1", expect: 200)
        let cursor = try #require(try Wire.decoder().decode(JobList.self, from: page.body).nextCursor)
        try await api.send("jobs, the next one", "GET", "/v1/jobs?limit=1&cursor=\(cursor)", expect: 200)
        try await api.send("jobs, some fields", "GET", "/v1/jobs?fields=" + JobRow.fields.joined(separator: ","), expect: 200)
        try await api.send("jobs, as rows", "GET", "/v1/jobs?fields=" + JobRow.fields.joined(separator: ",") + "&shape=rows", expect: 200)
        try await api.send("jobs, a field that is not one", "GET", "/v1/jobs?fields=id,colour", request: .invalid, expect: 400)
        try await api.send(
            "jobs, filtered",
            "GET",
            "/v1/jobs?status=completed,stopped&reservation=train&kind=fine-tuning&owner=root&since=-1d&limit=10000",
            expect: 200
        )
        try await api.send("jobs of a reservation nobody has", "GET", "/v1/jobs?reservation=nope", expect: 200)
        try await api.send("jobs, naming oneself", "GET", "/v1/jobs?owner=nobody", as: .nobody, expect: 200)
        try await api.send("jobs: another user's", "GET", "/v1/jobs?owner=root", as: .nobody, expect: 403)
        try await api.send("jobs: a limit over 10000", "GET", "/v1/jobs?limit=10001", request: .invalid, expect: 400)
        try await api.send("jobs: an unknown status", "GET", "/v1/jobs?status=queued,lost", request: .invalid, expect: 400)
        try await api.send("jobs: an unknown kind", "GET", "/v1/jobs?kind=knitting", request: .invalid, expect: 400)
        try await api.send("jobs: a bad reservation name", "GET", "/v1/jobs?reservation=Not_A_Name", request: .invalid, expect: 400)
        try await api.send("jobs: not a time", "GET", "/v1/jobs?since=yesterday", expect: 400)
        try await api.send("jobs: an unknown parameter", "GET", "/v1/jobs?colour=red", expect: 400)
        try await api.send("someone else's job", "GET", "/v1/jobs/\(ft)", as: .nobody, expect: 403)
        try await api.send("someone else's events", "GET", "/v1/jobs/\(ft)/events", as: .nobody, expect: 403)
        try await api.send("someone else's log", "GET", "/v1/jobs/\(ft)/log", as: .nobody, expect: 403)
        try await api.send("stop someone else's job", "POST", "/v1/jobs/\(ft)/stop", as: .nobody, expect: 403)
        try await api.send("the catalog with a custom model", "GET", "/v1/models", expect: 200)
        try await api.send("a custom model", "GET", "/v1/models/custom-ft", expect: 200)
    }

    func invocations(_ api: ExchangeRecorder) async throws {
        try await api.send(
            "a call",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"what does the ledger keep","max_tokens":8}"#,
            expect: 200
        )
        try await api.send(
            "a call with a key, which is ignored",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"hello","image":null}"#,
            headers: [("Idempotency-Key", "k-call")],
            expect: 200
        )
        try await api.send(
            "a call on demand",
            "POST",
            "/v1/invoke",
            json: #"{"target":"\#(Self.model)","prompt":"hello","max_tokens":4}"#,
            expect: 200
        )
        let words = Array(repeating: "word", count: 40).joined(separator: " ")
        try await api.send(
            "a call that fits the tiny budget",
            "POST",
            "/v1/invoke",
            json: #"{"target":"tiny","prompt":"\#(words)","max_tokens":10}"#,
            expect: 200
        )
        try await api.send(
            "a call over the budget",
            "POST",
            "/v1/invoke",
            json: #"{"target":"tiny","prompt":"\#(words)","max_tokens":10}"#,
            expect: 429
        )
        try await api.send("a custom model on demand", "POST", "/v1/invoke", json: #"{"target":"custom-ft","prompt":"hello"}"#, expect: 409)
        try await api.send(
            "an image to a text model",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"describe","image":"iVBORw0KGgo="}"#,
            expect: 409
        )
        try await api.send("a training reservation", "POST", "/v1/invoke", json: #"{"target":"train","prompt":"hello"}"#, expect: 409)
        try await api.send("no such target", "POST", "/v1/invoke", json: #"{"target":"nope","prompt":"hello"}"#, expect: 404)
        try await api.send("someone else's reservation", "POST", "/v1/invoke", json: #"{"target":"chat","prompt":"hello"}"#, as: .nobody, expect: 403)
        try await api.send(
            "prompt and max_tokens over the model's",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"hello","max_tokens":200000}"#,
            expect: 400
        )
        try await api.send(
            "the largest max_tokens",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"hello","max_tokens":\#(Int64.max)}"#,
            expect: 400
        )
        try await api.send(
            "the largest max_tokens on demand",
            "POST",
            "/v1/invoke",
            json: #"{"target":"\#(Self.model)","prompt":"hello","max_tokens":\#(Int64.max)}"#,
            expect: 400
        )
        let refusedShapes: [(String, String)] = [
            ("an empty prompt", #"{"target":"chat","prompt":""}"#),
            ("no prompt", #"{"target":"chat"}"#),
            ("max_tokens 0", #"{"target":"chat","prompt":"hello","max_tokens":0}"#),
            ("an unknown field", #"{"target":"chat","prompt":"hello","temperature":0.5}"#),
            ("a number for the prompt", #"{"target":"chat","prompt":42}"#),
        ]
        for (label, body) in refusedShapes {
            try await api.send("invoke: \(label)", "POST", "/v1/invoke", json: body, request: .invalid, expect: 400)
        }
        try await api.send(
            "invoke: over 1 MiB",
            "POST",
            "/v1/invoke",
            json: #"{"target":"chat","prompt":"\#(String(repeating: "x", count: 1 << 20))"}"#,
            expect: 413
        )
        try await api.send("an inference reservation after calls", "GET", "/v1/reservations/chat", expect: 200)
        try await api.send("a throttled reservation", "GET", "/v1/reservations/tiny", expect: 200)
    }

    func usageAndMetrics(_ api: ExchangeRecorder) async throws {
        try await api.send("usage", "GET", "/v1/usage", expect: 200)
        for by in ["model", "owner", "day"] {
            try await api.send("usage by \(by)", "GET", "/v1/usage?by=\(by)&from=-1d&buckets=4", expect: 200)
        }
        try await api.send("usage over a window", "GET", "/v1/usage?from=\(Self.rfc3339(days: -30))&to=now&buckets=1000", expect: 200)
        try await api.send("usage, as another user", "GET", "/v1/usage", as: .nobody, expect: 200)
        try await api.send("usage: an unknown grouping", "GET", "/v1/usage?by=week", request: .invalid, expect: 400)
        try await api.send("usage: no buckets", "GET", "/v1/usage?buckets=0", request: .invalid, expect: 400)
        try await api.send("usage: buckets not a number", "GET", "/v1/usage?buckets=many", request: .invalid, expect: 400)
        try await api.send("usage: an unknown parameter", "GET", "/v1/usage?colour=red", expect: 400)
        try await api.send("usage: not a time", "GET", "/v1/usage?from=yesterday", expect: 400)
        try await api.send("usage: backwards", "GET", "/v1/usage?from=now&to=-1d", expect: 400)
        try await api.send("usage: over 400 days", "GET", "/v1/usage?from=-500d", expect: 400)
        try await api.send("metrics after calls", "GET", "/metrics", expect: 200)
        try await api.send("health at the end", "GET", "/v1/health", expect: 200)
        try await api.send("units at the end", "GET", "/v1/units", expect: 200)
    }
}

// MARK: - Recording exchanges

/// How the document must judge a request: `invalid` for one whose shape the daemon refuses.
enum RequestShape: String, Encodable {
    case valid, invalid
}

/// One request and its answer, as `Tests/openapi/validate.py` reads them.
struct Exchange: Encodable {
    var label: String
    var method: String
    var target: String
    var requestHeaders: [[String]]
    var requestBody: String?
    var requestBodyOmitted: Bool
    var expectRequest: RequestShape
    var expectRoute: Bool
    var status: Int
    var responseHeaders: [[String]]
    var responseBody: String

    /// A made-up exchange, for checking the validator itself.
    static func answer(
        _ label: String,
        _ method: String,
        _ target: String,
        _ status: Int,
        _ body: String,
        contentType: String = "application/json",
        requestBody: String? = nil,
        request: RequestShape = .valid
    ) -> Exchange {
        Exchange(
            label: label,
            method: method,
            target: target,
            requestHeaders: [],
            requestBody: requestBody,
            requestBodyOmitted: false,
            expectRequest: request,
            expectRoute: true,
            status: status,
            responseHeaders: [["Content-Type", contentType]],
            responseBody: body
        )
    }
}

/// Sends requests to a daemon, as root through the socket client or as another user through
/// curl, checks each got the status the test meant, and keeps every exchange.
final class ExchangeRecorder {
    let daemon: TemporaryDaemon
    let client: SocketClient
    private(set) var exchanges: [Exchange] = []
    /// Bodies larger than this are sent but not recorded.
    static let recordedBodyLimit = 64 << 10

    init(daemon: TemporaryDaemon) {
        self.daemon = daemon
        self.client = SocketClient(socketPath: daemon.socket)
    }

    @discardableResult
    func send(
        _ label: String,
        _ method: String,
        _ target: String,
        json: String? = nil,
        headers: [(String, String)] = [],
        as user: TestUser? = nil,
        request: RequestShape = .valid,
        routed: Bool = true,
        expect status: Int
    ) async throws -> Response {
        let body = json.map { Data($0.utf8) }
        let response: Response
        if let user {
            response = try Self.curl(daemon.socket, as: user, method: method, target: target, body: body, headers: headers)
        } else {
            response = try await client.send(method: method, path: target, body: body, headers: headers)
        }
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(response.status == status, "\(label): \(method) \(target) answered \(response.status): \(text.prefix(400))")
        let omitted = (body?.count ?? 0) > Self.recordedBodyLimit
        exchanges.append(
            Exchange(
                label: label,
                method: method,
                target: target,
                requestHeaders: headers.map { [$0.0, $0.1] },
                requestBody: omitted ? nil : json,
                requestBodyOmitted: omitted,
                expectRequest: request,
                expectRoute: routed,
                status: response.status,
                responseHeaders: response.headers.map { [$0.0, $0.1] },
                responseBody: text
            )
        )
        return response
    }

    /// Polls (without recording) until job `id` has one of `statuses`.
    func waitForJob(_ id: Int64, in statuses: Set<String>, timeout: TimeInterval = 60) async throws {
        var status = ""
        let reached = try await eventuallyAwaiting(timeout: timeout, every: 0.1) {
            status = try await client.request(JobView.self, method: "GET", path: "/v1/jobs/\(id)").status
            return statuses.contains(status)
        }
        if reached { return }
        Issue.record("job \(id) is \(status), never \(statuses)\n\(daemon.log)")
    }

    /// The request through curl run as `user`, so that the daemon sees that user's uid.
    static func curl(_ socket: String, as user: TestUser, method: String, target: String, body: Data?, headers: [(String, String)]) throws -> Response
    {
        var arguments = ["--reuid=\(user.uid)", "--regid=65534", "--clear-groups", "curl", "-sS", "-g", "-i", "--unix-socket", socket, "-X", method]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", String(decoding: body, as: UTF8.self)] }
        arguments.append("http://localhost\(target)")
        let result = try Products.run("/usr/bin/setpriv", arguments)
        guard result.status == 0, let split = result.stdout.range(of: "\r\n\r\n") else {
            throw CurlFailure(description: "curl \(method) \(target) as \(user.name) failed: \(result)")
        }
        let lines = result.stdout[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
        let fields = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return Response(status: status, headers: fields, body: Data(result.stdout[split.upperBound...].utf8))
    }

    struct CurlFailure: Error, CustomStringConvertible {
        var description: String
    }
}

/// `Tests/openapi/validate.py`, run with the Python that `scripts/install-deps.sh` prepared.
enum OpenAPIValidator {
    static var repository: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }

    /// `BERTH_TEST_PYTHON`, else the virtual environment in `.build/venv`.
    static var python: String {
        ProcessInfo.processInfo.environment["BERTH_TEST_PYTHON"] ?? repository + "/.build/venv/bin/python3"
    }

    /// Validates `exchanges`; `keepAt` keeps the file written for the validator, to run it by hand.
    static func run(_ exchanges: [Exchange], keepAt: String? = nil) throws -> CommandResult {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw MissingPython(
                description:
                    "no Python for the OpenAPI validator at \(python): run scripts/install-deps.sh (make deps), which installs Tests/requirements.txt there"
            )
        }
        let dir = try TemporaryDirectory(prefix: "berth-openapi-exchanges")
        defer { dir.remove() }
        let file = keepAt ?? dir.file("exchanges.json")
        try Wire.encoder(pretty: true).encode(["exchanges": exchanges]).write(to: URL(fileURLWithPath: file))
        return try Products.run(python, [repository + "/Tests/openapi/validate.py", repository + "/docs/openapi.yaml", file], timeout: 120)
    }

    struct MissingPython: Error, CustomStringConvertible {
        var description: String
    }
}
