import BerthTestSupport
import BerthWire
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BerthServer

/// The submission rules, against the router in-process: a training reservation `train` and
/// the repository's example datasets, read as the caller.
@Suite("Job routes")
struct JobRouteTests {
    static var examples: String { TemporaryDaemon.examples }

    /// A training reservation `train`, then `body`.
    func withTrainingReservation(
        config: String = TemporaryDaemon.config(),
        _ body: @escaping @Sendable (any TestClientProtocol, TemporaryDirectory) async throws -> Void
    ) async throws {
        let folder = try TemporaryDirectory(prefix: "berth-job-routes")
        defer { folder.remove() }
        try await RouteTestApp(config: config).test { client in
            let made = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "train", "model": "amazon.nova-micro-v1:0", "model_units": 2, "purpose": "training"}"#
            )
            #expect(made.status == .created, "\(String(buffer: made.body))")
            try await body(client, folder)
        }
    }

    func submission(_ name: String, kind: String = "fine-tuning", data: String, output: String, extra: String = "") -> String {
        let modelName = kind == "batch-inference" ? "" : #", "model_name": "custom-\#(name)""#
        return #"{"name": "\#(name)", "reservation": "train", "kind": "\#(kind)", "data": "\#(data)", "output": "\#(output)"\#(modelName)\#(extra)}"#
    }

    func jobs(_ client: any TestClientProtocol) async throws -> [JobView] {
        try await client.send(.get, "/v1/jobs").decoded(JobList.self).jobs
    }

    @Test("a job listing as rows holds the fields asked for, the hyperparameters only when asked, the same as objects")
    func listedAsRows() async throws {
        try await withTrainingReservation { client, folder in
            let made = try await client.send(
                .post,
                "/v1/jobs",
                json: submission(
                    "tuned",
                    data: "\(Self.examples)/fine-tuning.jsonl",
                    output: folder.file("o"),
                    extra: #", "epochs": 3"#
                )
            )
            #expect(made.status == .created, "\(String(buffer: made.body))")
            func rows(_ fields: String) async throws -> [[Any]] {
                let answer = try await client.send(.get, "/v1/jobs?fields=\(fields)&shape=rows")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: answer.body)) as? [String: Any])
                return try #require(object["rows"] as? [[Any]], "\(String(buffer: answer.body))")
            }
            let withHyperparameters = try await rows("name,hyperparameters")
            #expect(withHyperparameters.first?.first as? String == "tuned")
            #expect((withHyperparameters.first?.last as? [String: Any])?["epochs"] as? Int == 3, "\(withHyperparameters)")
            #expect(try await rows("name,status").first?.count == 2)

            let table = "/v1/jobs?fields=" + JobRow.fields.joined(separator: ",")
            let asRows = try Wire.decode(JobRowList.self, from: Data(buffer: try await client.send(.get, table + "&shape=rows").body))
            let asObjects = try Wire.decode(JobRowList.self, from: Data(buffer: try await client.send(.get, table).body))
            #expect(asRows == asObjects && asRows.jobs.map(\.name) == ["tuned"])
        }
    }

    @Test("a dataset with a bad record on line 37 is refused naming line 37, and nothing is queued")
    func badRecord() async throws {
        try await withTrainingReservation { client, folder in
            let refused = try await client.send(
                .post,
                "/v1/jobs",
                json: submission("bad", data: "\(Self.examples)/fine-tuning-bad-line-37.jsonl", output: folder.file("o"))
            )
            #expect(refused.error?.error.code == "invalid-argument")
            #expect(refused.error?.error.message.contains("line 37") == true, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.message.contains("completion") == true)
            #expect(try await jobs(client).isEmpty)
        }
    }

    @Test("a dataset over the config's max_data_file_bytes is refused with its size and the limit; one at the limit is queued")
    func dataFileLimit() async throws {
        try await withTrainingReservation(config: TemporaryDaemon.config(extra: "\n[limits]\nmax_data_file_bytes = 200\n")) { client, folder in
            let record = #"{"prompt": "what does the ledger keep", "completion": "every lease"}"# + "\n"
            let atLimit = String(repeating: record, count: 200 / record.utf8.count)
            let (fits, over) = (folder.file("fits.jsonl"), folder.file("over.jsonl"))
            try (atLimit + String(repeating: " ", count: 200 - atLimit.utf8.count)).write(toFile: fits, atomically: true, encoding: .utf8)
            try (atLimit + String(repeating: " ", count: 201 - atLimit.utf8.count)).write(toFile: over, atomically: true, encoding: .utf8)
            let refused = try await client.send(.post, "/v1/jobs", json: submission("over", data: over, output: folder.file("o1")))
            #expect(refused.status == .badRequest)
            #expect(refused.error?.error.message.hasPrefix("data: /") == true, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.message.contains("/over.jsonl is 201 bytes, over the config's limit of 200; split the dataset") == true)
            #expect(try await jobs(client).isEmpty)
            let queued = try await client.send(.post, "/v1/jobs", json: submission("fits", data: fits, output: folder.file("o2")))
            #expect(queued.status == .created, "\(String(buffer: queued.body))")
        }
    }

    @Test("concurrent submissions cannot overshoot max_queued_jobs_per_user: exactly the cap are queued")
    func queuedJobCapUnderConcurrency() async throws {
        let folder = try TemporaryDirectory(prefix: "berth-job-routes")
        defer { folder.remove() }
        try await RouteTestApp(config: TemporaryDaemon.config(extra: "\n[limits]\nmax_queued_jobs_per_user = 3\n")).test { client in
            // A reservation that starts tomorrow: its jobs wait in its queue.
            let later = try await client.send(
                .post,
                "/v1/reservations",
                json:
                    #"{"name": "train", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training", "start": "+1d", "duration": "1h"}"#
            )
            #expect(later.status == .created)
            let outcomes = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                for i in 0..<12 {
                    group.addTask {
                        let body = self.submission("c\(i)", data: "\(Self.examples)/fine-tuning.jsonl", output: folder.file("out-c\(i)"))
                        let response = try await client.send(.post, "/v1/jobs", json: body)
                        return (response.status, response.error?.error.code)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0.0 == .created }.count == 3, "\(outcomes)")
            #expect(outcomes.filter { $0.0 == .conflict && $0.1 == "too-many-queued-jobs" }.count == 9, "\(outcomes)")
            #expect(try await jobs(client).filter { $0.status == "queued" }.count == 3)
        }
    }

    /// A reservation `train` that starts tomorrow, so its jobs stay queued, in an app whose
    /// `[limits]` has `limits`; then `body`.
    func withQueueingReservation(
        limits: String = "",
        _ body: @escaping @Sendable (any TestClientProtocol, TemporaryDirectory) async throws -> Void
    ) async throws {
        let folder = try TemporaryDirectory(prefix: "berth-job-routes")
        defer { folder.remove() }
        try await RouteTestApp(config: TemporaryDaemon.config(extra: "\n[limits]\n" + limits)).test { client in
            let later = try await client.send(
                .post,
                "/v1/reservations",
                json:
                    #"{"name": "train", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training", "start": "+1d", "duration": "1h"}"#
            )
            #expect(later.status == .created, "\(String(buffer: later.body))")
            try await body(client, folder)
        }
    }

    @Test(
        "past max_queued_jobs_per_user a submission is refused 409 too-many-queued-jobs (the CLI's exit 4) saying what to do; a stopped job frees a place"
    )
    func queuedJobCap() async throws {
        try await withQueueingReservation(limits: "max_queued_jobs_per_user = 2\n") { client, folder in
            func submit(_ name: String) async throws -> TestResponse {
                try await client.send(
                    .post,
                    "/v1/jobs",
                    json: submission(name, data: "\(Self.examples)/fine-tuning.jsonl", output: folder.file("out-\(name)"))
                )
            }
            let first = try await submit("one")
            #expect(first.status == .created, "\(String(buffer: first.body))")
            #expect(try await submit("two").status == .created)
            let refused = try await submit("three")
            #expect(refused.status == .conflict, "\(String(buffer: refused.body))")
            #expect(ExitStatus(httpStatus: Int(refused.status.code)) == .refused)
            #expect(refused.error?.error.code == "too-many-queued-jobs")
            #expect(refused.error?.error.message.contains("max_queued_jobs_per_user") == true, "\(String(buffer: refused.body))")
            #expect(refused.error?.error.message.contains("berth stop") == true, "\(String(buffer: refused.body))")
            // The refused job left nothing behind: its name is not listed, and its model name is free.
            let listed = try await jobs(client)
            #expect(listed.filter { $0.status == "queued" }.count == 2)
            #expect(!listed.contains { $0.name == "three" })

            let one = try first.decoded(JobView.self).id
            let stopped = try await client.send(.post, "/v1/jobs/\(one)/stop")
            #expect(stopped.status == .ok, "\(String(buffer: stopped.body))")
            let again = try await submit("three")
            #expect(again.status == .created, "\(String(buffer: again.body))")
            #expect(try await jobs(client).filter { $0.status == "queued" }.count == 2)
        }
    }

    @Test(
        "submissions are refused for another user's reservation and for an ended one, whether the ledger was read just now or the reservation is held from an earlier read"
    )
    func refusedWithReservationInMemory() async throws {
        try await withQueueingReservation { client, folder in
            let data = "\(Self.examples)/fine-tuning.jsonl"
            // First from the ledger, then (after root's own submission read it) from memory.
            for attempt in 0..<2 {
                let refused = try await client.send(
                    .post,
                    "/v1/jobs",
                    json: submission("theirs", data: data, output: folder.file("theirs")),
                    as: RouteTestApp.alice
                )
                #expect(refused.status == .forbidden, "attempt \(attempt): \(String(buffer: refused.body))")
                #expect(ExitStatus(httpStatus: Int(refused.status.code)) == .refused)
                #expect(
                    refused.error?.error.message.contains("belongs to another user") == true,
                    "attempt \(attempt): \(String(buffer: refused.body))"
                )
                let own = try await client.send(.post, "/v1/jobs", json: submission("own-\(attempt)", data: data, output: folder.file("o\(attempt)")))
                #expect(own.status == .created, "attempt \(attempt): \(String(buffer: own.body))")
            }
            #expect(try await client.send(.delete, "/v1/reservations/train").status == .ok)
            let late = try await client.send(.post, "/v1/jobs", json: submission("late", data: data, output: folder.file("late")))
            #expect(ExitStatus(httpStatus: Int(late.status.code)) == .refused, "\(String(buffer: late.body))")
            #expect(late.error?.error.message.contains("submit to a pending or active reservation") == true, "\(String(buffer: late.body))")
            #expect(try await jobs(client).count == 2)
        }
    }

    @Test(
        "another user's files are forbidden (the CLI's exit 4): data /etc/shadow from an ordinary user, without echoing it; an output folder they cannot write; another user's reservation"
    )
    func foreignFiles() async throws {
        let nobody = Caller(uid: 65534, gid: 65534, user: "nobody", isAdmin: false)
        try await withTrainingReservation { client, folder in
            let mine = try await client.send(
                .post,
                "/v1/reservations",
                json: #"{"name": "mine", "model": "amazon.nova-micro-v1:0", "model_units": 1, "purpose": "training"}"#,
                as: nobody
            )
            #expect(mine.status == .created, "\(String(buffer: mine.body))")
            func submit(_ name: String, to reservation: String, data: String, output: String) async throws -> TestResponse {
                try await client.send(
                    .post,
                    "/v1/jobs",
                    json:
                        #"{"name": "\#(name)", "reservation": "\#(reservation)", "kind": "fine-tuning", "data": "\#(data)", "output": "\#(output)", "model_name": "\#(name)"}"#,
                    as: nobody
                )
            }
            let steal = try await submit("steal", to: "mine", data: "/etc/shadow", output: "/tmp")
            #expect(steal.status == .forbidden, "\(String(buffer: steal.body))")
            #expect(ExitStatus(httpStatus: Int(steal.status.code)) == .refused)
            #expect(steal.error?.error.code == "forbidden")
            #expect(!String(buffer: steal.body).contains("root:"))
            let output = try await submit("out", to: "mine", data: "\(Self.examples)/fine-tuning.jsonl", output: "/root/stolen")
            #expect(output.status == .forbidden, "\(String(buffer: output.body))")
            #expect(ExitStatus(httpStatus: Int(output.status.code)) == .refused)
            // Nor can anyone submit to a reservation that is not theirs.
            let theirs = try await submit("x", to: "train", data: "\(Self.examples)/fine-tuning.jsonl", output: "/tmp/x")
            #expect(theirs.status == .forbidden, "\(String(buffer: theirs.body))")
            #expect(ExitStatus(httpStatus: Int(theirs.status.code)) == .refused)
            #expect(try await jobs(client).isEmpty)
        }
    }

    @Test("a learning rate of 0.5 is refused naming the range")
    func learningRateRange() async throws {
        try await withTrainingReservation { client, folder in
            let refused = try await client.send(
                .post,
                "/v1/jobs",
                json: submission("lr", data: "\(Self.examples)/fine-tuning.jsonl", output: folder.file("o"), extra: #", "learning_rate": 0.5"#)
            )
            #expect(refused.error?.error.code == "invalid-argument")
            #expect(refused.error?.error.message.contains("learning_rate") == true)
            #expect(refused.error?.error.message.contains("0.000001–0.0001") == true, "\(String(buffer: refused.body))")
        }
    }

    @Test("a customization the model does not accept, or a reservation of the wrong purpose, is refused")
    func wrongKindOrPurpose() async throws {
        try await withTrainingReservation { client, folder in
            let cpt = try await client.send(
                .post,
                "/v1/jobs",
                json: submission("x", kind: "continued-pretraining", data: "\(Self.examples)/continued-pretraining.jsonl", output: folder.file("o"))
            )
            #expect(cpt.error?.error.code == "invalid-argument")
            #expect(cpt.error?.error.message.contains("does not accept continued-pretraining") == true, "\(String(buffer: cpt.body))")
            let batch = try await client.send(
                .post,
                "/v1/jobs",
                json: submission("x", kind: "batch-inference", data: "\(Self.examples)/batch-inference.jsonl", output: folder.file("o"))
            )
            #expect(batch.error?.error.code == "invalid-argument")
            #expect(batch.error?.error.message.contains("inference reservation") == true, "\(String(buffer: batch.body))")
        }
    }
}
