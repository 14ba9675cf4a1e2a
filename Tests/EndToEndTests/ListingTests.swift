import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// `berth jobs` and `berth reservations` as squeue lists: filtered and paged by berthd, through
/// the real CLI and the API.
@Suite("Listings", .serialized)
struct ListingTests {
    static let model = "amazon.nova-micro-v1:0"

    /// A daemon where root has a training reservation `later` that starts in a day, so that
    /// its jobs stay queued, and a copy of the fine-tuning example anyone can read.
    func queueingDaemon() throws -> (TemporaryDaemon, data: String) {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        try reserve(daemon, "later", purpose: "training")
        let data = daemon.directory.file("train.jsonl")
        try FileManager.default.copyItem(atPath: TemporaryDaemon.examples + "/fine-tuning.jsonl", toPath: data)
        chmod(data, 0o644)
        return (daemon, data)
    }

    /// A one-unit reservation that starts in a day, for an hour.
    func reserve(_ daemon: TemporaryDaemon, _ name: String, purpose: String, as user: TestUser? = nil) throws {
        let reserved = try daemon.cli(
            ["reserve", name, "--model", Self.model, "--units", "1", "--purpose", purpose, "--start", "+1d", "--duration", "1h"],
            as: user
        )
        #expect(reserved.status == 0, "\(reserved)")
    }

    /// Submits `count` fine-tuning jobs to `reservation` through the API, a few at a time, and
    /// returns their ids in the order they were made.
    func submit(_ daemon: TemporaryDaemon, _ count: Int, to reservation: String = "later", data: String, prefix: String = "j") async throws -> [Int64]
    {
        let client = SocketClient(socketPath: daemon.socket)
        let output = daemon.directory.file("out")
        var ids: [Int64] = []
        for batch in stride(from: 0, to: count, by: 10) {
            ids += try await withThrowingTaskGroup(of: Int64.self) { group in
                for i in batch..<min(batch + 10, count) {
                    group.addTask {
                        let body = """
                            {"name": "\(prefix)\(i)", "reservation": "\(reservation)", "kind": "fine-tuning", "data": "\(data)",
                             "output": "\(output)", "model_name": "custom-\(prefix)\(i)"}
                            """
                        return try await client.send(method: "POST", path: "/v1/jobs", body: Data(body.utf8)).decoded(as: JobView.self).id
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        return ids.sorted()
    }

    /// The ids of `berth --json jobs ARGS`.
    func jobIDs(_ daemon: TemporaryDaemon, _ arguments: [String] = [], as user: TestUser? = nil) throws -> [Int64] {
        try daemon.view(JobList.self, ["jobs", "--all"] + arguments, as: user).jobs.map(\.id)
    }

    /// The rows of a table as printed (no header), and the line under it, if any.
    func rows(_ result: CommandResult) -> (rows: [Substring], more: Substring?) {
        var lines = result.stdout.split(separator: "\n").dropFirst()
        let more = lines.last?.hasPrefix("…") == true ? lines.popLast() : nil
        return (Array(lines), more)
    }

    /// The id of the job `berth --json submit` printed.
    func submittedID(_ result: CommandResult) throws -> Int64 {
        #expect(result.status == 0, "\(result)")
        return try Wire.decoder().decode(JobView.self, from: Data(result.stdout.utf8)).id
    }

    func error(_ response: Response) -> ErrorBody.Detail? {
        try? Wire.decoder().decode(ErrorBody.self, from: response.body).error
    }

    @Test(
        "130 jobs: the table shows the newest 100 and says 30 more; --limit 5 shows 5; --all shows all; next_cursor walks every job once, newest first"
    )
    func paging() async throws {
        let (daemon, data) = try queueingDaemon()
        let ids = try await submit(daemon, 130, data: data)
        let newestFirst = Array(ids.reversed())

        let table = try daemon.cli(["jobs"])
        #expect(table.status == 0, "\(table)")
        let shown = rows(table)
        #expect(shown.rows.compactMap { Int64($0.prefix { $0 != " " }) } == Array(newestFirst.prefix(100)))
        #expect(shown.more == "… 30 more; --limit 130 or --all shows them", "\(table)")

        let five = rows(try daemon.cli(["jobs", "--limit", "5"]))
        #expect(five.rows.count == 5)
        #expect(five.more == "… 125 more; --limit 130 or --all shows them")

        let all = rows(try daemon.cli(["jobs", "--all"]))
        #expect(all.rows.compactMap { Int64($0.prefix { $0 != " " }) } == newestFirst)
        #expect(all.more == nil)

        // --json says the same in the document, and has no line under it.
        let page = try daemon.view(JobList.self, ["jobs"])
        #expect(page.jobs.count == 100)
        #expect(page.more == 30)
        #expect(page.nextCursor != nil)
        let whole = try daemon.view(JobList.self, ["jobs", "--all"])
        #expect(whole.jobs.count == 130)
        #expect(whole.more == 0)
        #expect(whole.nextCursor == nil)

        // Over the API, 7 at a time.
        let client = SocketClient(socketPath: daemon.socket)
        var cursor: String?
        var seen: [Int64] = []
        var pages = 0
        repeat {
            let list = try await client.request(JobList.self, method: "GET", path: "/v1/jobs?limit=7" + (cursor.map { "&cursor=\($0)" } ?? ""))
            seen += list.jobs.map(\.id)
            #expect(list.more == 130 - seen.count)
            #expect((list.nextCursor == nil) == (list.more == 0))
            cursor = list.nextCursor
            pages += 1
        } while cursor != nil && pages < 100
        #expect(seen == newestFirst)
        #expect(pages == 19)
    }

    @Test("each filter narrows the list: status, reservation, owner, kind, since; a user may list only their own")
    func filters() async throws {
        let (daemon, data) = try queueingDaemon()
        let later = try await submit(daemon, 12, data: data)
        let stopped = Array(later.prefix(4))
        for id in stopped { #expect(try daemon.cli(["stop", String(id)]).status == 0) }
        try reserve(daemon, "chat-later", purpose: "inference")
        var batch: [Int64] = []
        for i in 0..<2 {
            let result = try daemon.cli([
                "--json", "submit", "b\(i)", "--reservation", "chat-later", "--kind", "batch-inference", "--data",
                "\(TemporaryDaemon.examples)/batch-inference.jsonl", "--output", daemon.directory.file("batch-\(i)"),
            ])
            #expect(result.status == 0, "\(result)")
            batch.append(try submittedID(result))
        }
        try reserve(daemon, "theirs", purpose: "training", as: .nobody)
        var theirs: [Int64] = []
        for i in 0..<3 {
            let result = try daemon.cli(
                [
                    "--json", "submit", "n\(i)", "--reservation", "theirs", "--kind", "fine-tuning", "--data", data,
                    "--output", "/tmp/berth-listing-\(i)", "--model-name", "nobody-\(i)-\(UInt32.random(in: 0...UInt32.max))",
                ],
                as: .nobody
            )
            #expect(result.status == 0, "\(result)")
            theirs.append(try submittedID(result))
        }
        let everything = (later + batch + theirs).sorted(by: >)

        // Root is an admin: everyone's jobs, narrowed by each filter.
        #expect(try jobIDs(daemon) == everything)
        #expect(try jobIDs(daemon, ["--status", "stopped"]) == stopped.reversed())
        #expect(try jobIDs(daemon, ["--status", "queued"]) == everything.filter { !stopped.contains($0) })
        #expect(try jobIDs(daemon, ["--status", "queued,stopped"]) == everything)
        #expect(try jobIDs(daemon, ["--status", "queued", "--status", "stopped"]) == everything)
        #expect(try jobIDs(daemon, ["--status", "running,completed"]) == [])
        #expect(try jobIDs(daemon, ["--reservation", "later"]) == later.reversed())
        #expect(try jobIDs(daemon, ["--reservation", "chat-later"]) == batch.reversed())
        #expect(try jobIDs(daemon, ["--reservation", "no-such-reservation"]) == [])
        #expect(try jobIDs(daemon, ["--reservation", "later", "--status", "queued"]) == later.dropFirst(4).reversed())
        #expect(try jobIDs(daemon, ["--kind", "batch-inference"]) == batch.reversed())
        #expect(try jobIDs(daemon, ["--kind", "fine-tuning"]) == (later + theirs).sorted(by: >))
        #expect(try jobIDs(daemon, ["--owner", "nobody"]) == theirs.reversed())
        #expect(try jobIDs(daemon, ["--owner", "root", "--kind", "fine-tuning"]) == later.reversed())
        // Where since falls between two jobs is checked in-process (ListingRouteTests).
        #expect(try jobIDs(daemon, ["--since", "-1h"]) == everything)
        #expect(try jobIDs(daemon, ["--since", "+1h"]) == [])

        // Anyone else lists only their own, and is told so when asking for another's.
        #expect(try jobIDs(daemon, as: .nobody) == theirs.reversed())
        #expect(try jobIDs(daemon, ["--owner", "nobody"], as: .nobody) == theirs.reversed())
        #expect(try jobIDs(daemon, ["--status", "stopped"], as: .nobody) == [])
        let refused = try daemon.cli(["jobs", "--owner", "root"], as: .nobody)
        #expect(refused.status == 4, "\(refused)")
        #expect(
            refused.stderr == "berth: forbidden: owner: you can list only your own jobs; leave out owner, or give your own name (nobody)\n",
            "\(refused)"
        )

        // The table as a user sees it.
        let table = try daemon.cli(["jobs", "--status", "stopped"])
        #expect(rows(table).rows.count == 4)
        #expect(rows(table).rows.allSatisfy { $0.contains("stopped (stopped by root)") }, "\(table)")
        #expect(rows(table).more == nil)
    }

    @Test("bad filters and pages are refused by the CLI before it asks, exit 2 naming the option")
    func refusals() async throws {
        let (daemon, _) = try queueingDaemon()

        let refused: [([String], String)] = [
            (["jobs", "--limit", "0"], "--limit: must be 1 to 10000"),
            (["jobs", "--limit", "5", "--all"], "--limit and --all"),
            (["jobs", "--status", "queued,bogus"], "'bogus' is not one of queued, running, completed, failed, stopping, stopped"),
            (["jobs", "--kind", "knitting"], "'knitting' is invalid for '--kind <kind>'"),
            (["jobs", "--since", "yesterday"], "--since: 'yesterday' is not a TIME"),
            (["jobs", "--reservation", "Not_A_Name"], "--reservation: 'Not_A_Name' is not a valid name"),
            (["jobs", "7", "--status", "queued"], "job 7 is shown in full by itself"),
            (["reservations", "--status", "done"], "'done' is not one of pending, active, expired, deleted, failed"),
            (["reservations", "--purpose", "fun"], "'fun' is invalid for '--purpose <purpose>'"),
            (["reservations", "later", "--all"], "reservation 'later' is shown in full by itself"),
        ]
        for (arguments, message) in refused {
            let result = try daemon.cli(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.hasPrefix("berth: invalid-argument: ") && result.stderr.contains(message), "\(arguments): \(result)")
        }
    }

    @Test("reservations are filtered by status, owner, purpose and time made, and paged as jobs are")
    func reservations() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        for name in ["r1", "r2", "r3"] { try reserve(daemon, name, purpose: "training") }
        try reserve(daemon, "r4", purpose: "inference")
        try reserve(daemon, "r5", purpose: "training")
        #expect(try daemon.cli(["release", "r2"]).status == 0)
        try reserve(daemon, "n1", purpose: "training", as: .nobody)

        func names(_ arguments: [String] = [], as user: TestUser? = nil) throws -> [String] {
            try daemon.view(ReservationList.self, ["reservations"] + arguments, as: user).reservations.map(\.name)
        }
        #expect(try names() == ["n1", "r5", "r4", "r3", "r2", "r1"])
        #expect(try names(["--status", "deleted"]) == ["r2"])
        #expect(try names(["--status", "pending,deleted"]) == ["n1", "r5", "r4", "r3", "r2", "r1"])
        #expect(try names(["--status", "active"]) == [])
        #expect(try names(["--purpose", "inference"]) == ["r4"])
        #expect(try names(["--owner", "nobody"]) == ["n1"])
        // Where since falls between two of them is checked in-process (ListingRouteTests); here,
        // that the CLI passes an RFC 3339 time on.
        let formatter = ISO8601DateFormatter()
        #expect(try names(["--since", formatter.string(from: Date().addingTimeInterval(-3600))]) == ["n1", "r5", "r4", "r3", "r2", "r1"])
        #expect(try names(["--since", formatter.string(from: Date().addingTimeInterval(3600)), "--owner", "root"]) == [])
        #expect(try names(as: .nobody) == ["n1"])
        let refused = try daemon.cli(["reservations", "--owner", "root"], as: .nobody)
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stderr.contains("you can list only your own reservations"), "\(refused)")

        let two = rows(try daemon.cli(["reservations", "--limit", "2"]))
        #expect(two.rows.map { $0.prefix { $0 != " " } } == ["n1", "r5"])
        #expect(two.more == "… 4 more; --limit 6 or --all shows them")
        let all = rows(try daemon.cli(["reservations", "--all"]))
        #expect(all.rows.count == 6 && all.more == nil)
        #expect(try names(["--all", "--status", "pending"]) == ["n1", "r5", "r4", "r3", "r1"])

        let client = SocketClient(socketPath: daemon.socket)
        var cursor: String?
        var seen: [String] = []
        repeat {
            let list = try await client.request(
                ReservationList.self,
                method: "GET",
                path: "/v1/reservations?limit=4&status=pending" + (cursor.map { "&cursor=\($0)" } ?? "")
            )
            seen += list.reservations.map(\.name)
            #expect(list.more == 5 - seen.count)
            cursor = list.nextCursor
        } while cursor != nil && seen.count < 20
        #expect(seen == ["n1", "r5", "r4", "r3", "r1"])
    }

    @Test("with 100,000 jobs in the ledger the default listing shows the newest 100 and counts what it leaves out")
    func hundredThousandJobs() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        try reserve(daemon, "big", purpose: "training")
        daemon.stop()
        let filled = try LedgerFill.completedJobs(
            100_000,
            database: daemon.database,
            reservationID: 1,
            owners: ["root", "nobody"],
            start: Date().addingTimeInterval(-2_000_000)
        )
        try daemon.start()

        // How fast is measured by Benchmarks/run-cli-bench.sh, never asserted here.
        let client = SocketClient(socketPath: daemon.socket)
        let list = try await client.request(JobList.self, method: "GET", path: "/v1/jobs")
        #expect(list.jobs.map(\.id) == Array((filled.last - 99...filled.last).reversed()))
        #expect(list.more == 99_900)

        // Each filter and its count read an index's range, not the ledger.
        let distillation = try await client.request(JobList.self, method: "GET", path: "/v1/jobs?kind=distillation")
        #expect(distillation.jobs.count == 100 && distillation.more == 9_900)
        let nobody = try await client.request(JobList.self, method: "GET", path: "/v1/jobs?owner=nobody&limit=10")
        #expect(nobody.jobs.allSatisfy { $0.owner == "nobody" } && nobody.more == 49_990)
        let deep = try await client.request(JobList.self, method: "GET", path: "/v1/jobs?cursor=\(filled.first + 50)")
        #expect(deep.jobs.count == 50 && deep.more == 0 && deep.nextCursor == nil)

        let table = try daemon.cli(["jobs"], as: .nobody)
        #expect(rows(table).rows.count == 100)
        #expect(rows(table).more == "… 49900 more; --all shows them", "\(table)")
    }
}
