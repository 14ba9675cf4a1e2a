import BerthClient
import BerthTestSupport
import BerthWire
import Foundation
import Testing

/// `GET /metrics` on the real daemon, read as a Prometheus server would read it.
@Suite("Metrics end to end", .serialized)
struct MetricsTests {
    static let model = "amazon.nova-micro-v1:0"

    func scrape(_ daemon: TemporaryDaemon) async throws -> Exposition {
        let response = try await SocketClient(socketPath: daemon.socket).send(method: "GET", path: "/metrics")
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        return try Exposition(parsing: String(decoding: response.body, as: UTF8.self))
    }

    @Test("the families are there and well formed; a call moves the call, token and latency series; reserve and release move the reservation gauge")
    func scrapeMovesWithTheLedger() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let first = try await scrape(daemon)
        for (family, type) in [
            ("berth_compute_units", "gauge"), ("berth_reservations", "gauge"), ("berth_jobs", "gauge"),
            ("berth_ledger_write_duration_seconds", "histogram"),
        ] {
            #expect(first.families[family]?.type == type, "\(family)")
            #expect(first.families[family]?.help.isEmpty == false, "\(family) has no HELP")
        }
        #expect(first.value("berth_compute_units", ["pool": "dedicated", "state": "free"]) == 8)
        #expect(first.value("berth_compute_units", ["pool": "shared", "state": "free"]) == 2)
        #expect(first.value("berth_reservations", ["status": "active"]) == 0)
        #expect(first.value("berth_jobs", ["status": "queued"]) == 0)
        // Start-up wrote to the ledger (catalog, catch-up).
        #expect((first.value("berth_ledger_write_duration_seconds_count") ?? 0) >= 1)

        #expect(try daemon.cli(["reserve", "metered", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        let reserved = try await scrape(daemon)
        #expect(reserved.value("berth_reservations", ["status": "active"]) == 1)
        #expect(reserved.value("berth_compute_units", ["pool": "dedicated", "state": "leased"]) == 1)
        #expect(reserved.value("berth_reservation_queued_jobs", ["reservation": "metered"]) == 0)
        #expect(reserved.value("berth_reservation_units", ["reservation": "metered"]) == 1)
        #expect(reserved.value("berth_reservation_utilization_ratio", ["reservation": "metered"]) == 0)
        #expect(reserved.value("berth_serve_restarts_total", ["reservation": "metered"]) == 0)
        #expect(reserved.families["berth_serve_restarts_total"]?.type == "counter")
        let served = ["reservation": "metered", "model": Self.model, "tier": "provisioned"]
        #expect(reserved.value("berth_invocations_total", served.merging(["outcome": "served"]) { $1 }) == 0)

        let answer = try daemon.view(InvokeResponse.self, ["invoke", "metered", "--prompt", "what does the ledger keep", "--max-tokens", "8"])
        let inputTokens = answer.inputTokens
        let outputTokens = answer.outputTokens
        #expect(try daemon.cli(["invoke", "no-such-target", "--prompt", "hello"]).status == 3)
        let called = try await scrape(daemon)
        #expect(called.families["berth_invocations_total"]?.type == "counter")
        #expect(called.families["berth_invocation_tokens_total"]?.type == "counter")
        #expect(called.families["berth_invocation_duration_seconds"]?.type == "histogram")
        #expect(called.value("berth_invocations_total", served.merging(["outcome": "served"]) { $1 }) == 1)
        #expect(called.value("berth_invocation_tokens_total", served.merging(["type": "input"]) { $1 }) == Double(inputTokens))
        #expect(called.value("berth_invocation_tokens_total", served.merging(["type": "output"]) { $1 }) == Double(outputTokens))
        #expect(called.value("berth_invocation_duration_seconds_count", served) == 1)
        #expect((called.value("berth_invocation_duration_seconds_sum", served) ?? 0) > 0)
        #expect(called.value("berth_throttled_invocations_total", ["reservation": "metered", "model": Self.model]) == 0)
        // A target that names nothing is counted, but its name never becomes a label.
        #expect(called.value("berth_invocations_total", ["reservation": "", "model": "", "tier": "", "outcome": "refused"]) == 1)
        #expect(!called.samples.contains { $0.labels.values.contains("no-such-target") })
        #expect((called.value("berth_ledger_write_duration_seconds_count") ?? 0) > (reserved.value("berth_ledger_write_duration_seconds_count") ?? 0))

        // A job waiting on an advance reservation is in its queue.
        #expect(
            try daemon.cli(["reserve", "later", "--model", Self.model, "--units", "1", "--purpose", "training", "--start", "+1h", "--duration", "1h"])
                .status == 0
        )
        let submitted = try daemon.cli([
            "submit", "ft", "--reservation", "later", "--kind", "fine-tuning", "--data", "\(TemporaryDaemon.examples)/fine-tuning.jsonl",
            "--output", daemon.directory.file("out"), "--model-name", "nova-later", "--epochs", "1",
        ])
        #expect(submitted.status == 0, "\(submitted)")
        #expect(try daemon.cli(["release", "metered"]).status == 0)
        let released = try await scrape(daemon)
        #expect(released.value("berth_reservations", ["status": "active"]) == 0)
        #expect(released.value("berth_reservations", ["status": "deleted"]) == 1)
        #expect(released.value("berth_reservations", ["status": "pending"]) == 1)
        #expect(released.value("berth_reservation_queued_jobs", ["reservation": "later"]) == 1)
        #expect(released.value("berth_jobs", ["status": "queued"]) == 1)
        // The released reservation's gauges are gone; what its calls counted stays.
        #expect(released.value("berth_reservation_queued_jobs", ["reservation": "metered"]) == nil)
        #expect(released.value("berth_reservation_units", ["reservation": "metered"]) == nil)
        #expect(released.value("berth_reservation_units", ["reservation": "later"]) == 0)
        #expect(released.value("berth_reservation_utilization_ratio", ["reservation": "metered"]) == nil)
        #expect(released.value("berth_invocations_total", served.merging(["outcome": "served"]) { $1 }) == 1)

        // After a restart the ledger's state reads the same; the counters start again.
        #expect(daemon.stop() == 0)
        try daemon.start()
        let restarted = try await scrape(daemon)
        #expect(restarted.value("berth_reservations", ["status": "deleted"]) == 1)
        #expect(restarted.value("berth_reservations", ["status": "pending"]) == 1)
        #expect(restarted.value("berth_reservation_queued_jobs", ["reservation": "later"]) == 1)
        #expect(restarted.value("berth_invocations_total", served.merging(["outcome": "served"]) { $1 }) == nil)
    }

    @Test("any user who can reach the socket may scrape, with curl as the README says")
    func anyCallerOnTheSocket() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let curl = try Products.run(
            "/usr/bin/setpriv",
            [
                "--reuid=\(TestUser.nobody.uid)", "--regid=65534", "--clear-groups", "/usr/bin/curl", "-sSf", "--unix-socket", daemon.socket,
                "http://localhost/metrics",
            ]
        )
        #expect(curl.status == 0, "\(curl)")
        let parsed = try Exposition(parsing: curl.stdout)
        #expect(parsed.value("berth_compute_units", ["pool": "dedicated", "state": "free"]) == 8)
    }

    @Test("a user who is not an admin reads only their own reservation's series and the daemon-wide ones; root reads everyone's")
    func eachUserSeesTheirOwn() async throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        #expect(try daemon.cli(["reserve", "roots-secret", "--model", Self.model, "--units", "1", "--purpose", "inference"]).status == 0)
        let mine = try daemon.cli(["reserve", "nobodys-own", "--model", Self.model, "--units", "1", "--purpose", "inference"], as: .nobody)
        #expect(mine.status == 0, "\(mine)")
        // Both reservations have call series, not only gauges.
        _ = try daemon.json(["invoke", "roots-secret", "--prompt", "what does the ledger keep", "--max-tokens", "4"])
        _ = try daemon.json(["invoke", "nobodys-own", "--prompt", "what does the ledger keep", "--max-tokens", "4"], as: .nobody)

        let curl = try Products.run(
            "/usr/bin/setpriv",
            [
                "--reuid=\(TestUser.nobody.uid)", "--regid=65534", "--clear-groups", "/usr/bin/curl", "-sSf", "--unix-socket", daemon.socket,
                "http://localhost/metrics",
            ]
        )
        #expect(curl.status == 0, "\(curl)")
        let theirs = try Exposition(parsing: curl.stdout)
        let own = ["reservation": "nobodys-own", "model": Self.model, "tier": "provisioned"]
        #expect(theirs.value("berth_invocations_total", own.merging(["outcome": "served"]) { $1 }) == 1)
        #expect(theirs.value("berth_reservation_queued_jobs", ["reservation": "nobodys-own"]) == 0)
        #expect(theirs.value("berth_reservation_units", ["reservation": "nobodys-own"]) == 1)
        #expect(theirs.value("berth_serve_restarts_total", ["reservation": "nobodys-own"]) == 0)
        #expect(theirs.value("berth_invocation_duration_seconds_count", own) == 1)
        // Nothing names root's reservation or root, not even a HELP line; the daemon-wide
        // gauges are there.
        #expect(!curl.stdout.contains("roots-secret"), "\(curl.stdout)")
        #expect(!theirs.samples.contains { $0.labels.values.contains("root") || $0.labels["owner"] != nil })
        #expect(theirs.value("berth_compute_units", ["pool": "dedicated", "state": "leased"]) == 2)
        #expect(theirs.value("berth_reservations", ["status": "active"]) == 2)
        #expect(theirs.families["berth_invocations_total"]?.type == "counter")

        let everything = try await scrape(daemon)
        for name in ["roots-secret", "nobodys-own"] {
            #expect(everything.value("berth_reservation_queued_jobs", ["reservation": name]) == 0, "\(name)")
            let served = ["reservation": name, "model": Self.model, "tier": "provisioned", "outcome": "served"]
            #expect(everything.value("berth_invocations_total", served) == 1, "\(name)")
        }
    }

    @Test("with [metrics] listen, GET /metrics on that TCP address is the whole exposition, and every other path is 404")
    func tcpListener() async throws {
        let port = try TCPPort.free()
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[metrics]\nlisten = \"127.0.0.1:\(port)\"\n"))
        try daemon.start()
        #expect(daemon.log.contains("serving metrics"), "\(daemon.log)")
        #expect(try daemon.cli(["reserve", "roots-secret", "--model", Self.model, "--units", "1"]).status == 0)
        #expect(try daemon.cli(["reserve", "nobodys-own", "--model", Self.model, "--units", "1"], as: .nobody).status == 0)

        let scraped = try TCPPort.get(port: port, path: "/metrics")
        #expect(scraped.status == 200, "\(scraped)")
        #expect(scraped.contentType == "text/plain; version=0.0.4; charset=utf-8")
        let parsed = try Exposition(parsing: scraped.body)
        #expect(parsed.value("berth_reservation_queued_jobs", ["reservation": "roots-secret"]) == 0)
        #expect(parsed.value("berth_reservation_queued_jobs", ["reservation": "nobodys-own"]) == 0)
        #expect(parsed.value("berth_compute_units", ["pool": "dedicated", "state": "leased"]) == 2)
        for path in ["/v1/health", "/v1/reservations", "/", "/metrics/extra"] {
            #expect(try TCPPort.get(port: port, path: path).status == 404, "\(path)")
        }
        // The socket still serves everything.
        #expect(try daemon.cli(["status"]).status == 0)
    }

    @Test("without [metrics] listen, berthd listens on no TCP port")
    func noListenerByDefault() throws {
        let daemon = try TemporaryDaemon()
        try daemon.start()
        let pid = try #require(daemon.pid)
        #expect(!daemon.log.contains("serving metrics"))
        // The daemon's sockets by inode, against the listening TCP sockets (state 0A) of the
        // kernel's tables.
        let inodes = Set(
            try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { fd -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"), target.hasPrefix("socket:[")
                else {
                    return nil
                }
                return String(target.dropFirst(8).dropLast())
            }
        )
        #expect(!inodes.isEmpty)
        for table in ["tcp", "tcp6"] {
            let rows = (try? String(contentsOfFile: "/proc/\(pid)/net/\(table)", encoding: .utf8)) ?? ""
            for row in rows.split(separator: "\n").dropFirst() {
                let fields: [Substring] = row.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A" else { continue }
                #expect(!inodes.contains(String(fields[9])), "\(table): \(row)")
            }
        }
    }

    @Test("a bad metrics.listen is a config problem naming the key, and berthd does not start")
    func badListen() throws {
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[metrics]\nlisten = \"localhost:9464\"\n"))
        let checked = try Products.run(Products.path("berthd"), ["check-config", "--config", daemon.configPath])
        #expect(checked.status == 2, "\(checked)")
        #expect(checked.stderr.contains("metrics.listen: 'localhost:9464' is not an IP address and port"), "\(checked)")
        #expect(throws: TemporaryDaemon.StartFailure.self) { try daemon.start() }
        #expect(daemon.log.contains("metrics.listen"), "\(daemon.log)")
    }

    @Test("a metrics address something else listens on stops berthd with a message naming metrics.listen")
    func listenAddressTaken() throws {
        let taken = try TCPPort.listening()
        let daemon = try TemporaryDaemon(config: TemporaryDaemon.config(extra: "\n[metrics]\nlisten = \"127.0.0.1:\(taken.port)\"\n"))
        #expect(throws: TemporaryDaemon.StartFailure.self) { try daemon.start() }
        #expect(daemon.log.contains("cannot serve metrics on 127.0.0.1:\(taken.port) (metrics.listen)"), "\(daemon.log)")
        withExtendedLifetime(taken) {}
    }

    @Test(
        "the parser refuses what a Prometheus server would",
        arguments: [
            "berth_x 1\n",  // no TYPE
            "# TYPE berth_x gauge\nberth_x{a=\"1\"} one\n",  // not a number
            "# TYPE berth_x gauge\nberth_x{a=1} 1\n",  // unquoted label value
            "# TYPE berth_x gauge\nberth_x 1\nberth_x 2\n",  // the same series twice
            "# TYPE berth_x gauge\n# TYPE berth_x gauge\nberth_x 1\n",  // TYPE twice
            // not cumulative
            "# TYPE berth_x histogram\nberth_x_bucket{le=\"1\"} 2\nberth_x_bucket{le=\"+Inf\"} 1\nberth_x_sum 1\nberth_x_count 1\n",
            "# TYPE berth_x histogram\nberth_x_bucket{le=\"1\"} 1\nberth_x_bucket{le=\"+Inf\"} 1\nberth_x_sum 1\nberth_x_count 2\n",  // +Inf ≠ count
            "# TYPE berth_x histogram\nberth_x_bucket{le=\"1\"} 1\nberth_x_sum 1\nberth_x_count 1\n",  // no +Inf bucket
            "# TYPE berth_x gauge\n# TYPE berth_y gauge\nberth_x 1\nberth_y 1\nberth_x{a=\"b\"} 1\n",  // family not contiguous
        ]
    )
    func parserIsStrict(_ text: String) {
        #expect(throws: Exposition.Malformed.self) { try Exposition(parsing: text) }
    }
}

/// Plain TCP for the `[metrics] listen` tests: a port, a listener that holds one, and a GET.
enum TCPPort {
    /// A listening socket on 127.0.0.1, closed when it goes.
    final class Listener {
        let fd: Int32
        let port: Int
        init(fd: Int32, port: Int) {
            self.fd = fd
            self.port = port
        }
        deinit { close(fd) }
    }

    static func listening() throws -> Listener {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawSocket.Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw RawSocket.Failure(description: "bind: \(String(cString: strerror(errno)))")
        }
        return Listener(fd: fd, port: Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port nothing listens on, as of now.
    static func free() throws -> Int { try listening().port }

    struct Answer: CustomStringConvertible {
        var status: Int
        var contentType: String
        var body: String
        var description: String { "\(status) \(contentType)\n\(body)" }
    }

    static func get(port: Int, path: String) throws -> Answer {
        let result = try Products.run(
            "/usr/bin/curl",
            ["-sS", "-o", "-", "-w", "\n%{http_code} %{content_type}", "http://127.0.0.1:\(port)\(path)"],
            timeout: 10
        )
        guard result.status == 0, let last = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).last else {
            throw RawSocket.Failure(description: "curl: \(result)")
        }
        let fields = last.split(separator: " ", maxSplits: 1).map(String.init)
        return Answer(
            status: Int(fields[0]) ?? 0,
            contentType: fields.count > 1 ? fields[1] : "",
            body: String(result.stdout.dropLast(last.count + 1))
        )
    }
}

/// The Prometheus text exposition format (0.0.4), parsed strictly: `# HELP` and `# TYPE` at
/// most once per family and before its samples, every sample in a declared family with its
/// lines together, label values quoted and escaped, values that parse as doubles, no series
/// twice, and histograms whose buckets are cumulative and end in `+Inf` equal to `_count`.
struct Exposition {
    struct Malformed: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(line): \(reason)" }
    }

    struct Family {
        var type: String
        var help = ""
    }

    struct Sample {
        var name: String
        var family: String
        var labels: [String: String]
        var value: Double
    }

    var families: [String: Family] = [:]
    var samples: [Sample] = []

    /// The value of the one sample with exactly these labels, or nil.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    init(parsing text: String) throws {
        var helps: [String: String] = [:]
        var finished: Set<String> = []
        var current: String?
        var seen: Set<String> = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = String(raw)
            func fail(_ reason: String) -> Malformed { Malformed(line: number, reason: "\(reason): \(line)") }
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard words.count >= 3, words[0] == "#", ["HELP", "TYPE"].contains(words[1]) else { continue }  // a plain comment
                let name = words[2]
                guard Self.isMetricName(name) else { throw fail("bad metric name") }
                guard !finished.contains(name), current != name else {
                    throw fail("\(words[1]) after the family's samples")
                }
                if words[1] == "HELP" {
                    guard helps[name] == nil else { throw fail("HELP twice") }
                    helps[name] = words.count > 3 ? words[3] : ""
                } else {
                    guard families[name] == nil else { throw fail("TYPE twice") }
                    guard words.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(words[3]) else {
                        throw fail("unknown type")
                    }
                    families[name] = Family(type: words[3])
                }
                continue
            }
            var sample = try Self.sample(line, number: number)
            guard let family = Self.family(of: sample.name, in: families) else { throw fail("sample of a family with no TYPE") }
            sample.family = family
            if current != family {
                if let current { finished.insert(current) }
                guard !finished.contains(family) else { throw fail("the family's lines are not together") }
                current = family
            }
            let key = sample.name + "{" + sample.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
            guard seen.insert(key).inserted else { throw fail("the same series twice") }
            samples.append(sample)
        }
        for (name, help) in helps {
            guard families[name] != nil else { throw Malformed(line: 0, reason: "HELP for \(name) with no TYPE") }
            families[name]?.help = help
        }
        try checkHistograms()
    }

    /// The family a sample belongs to: its own name, or a histogram's with a suffix dropped.
    static func family(of name: String, in families: [String: Family]) -> String? {
        if families[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if ["histogram", "summary"].contains(families[base]?.type) { return base }
        }
        return nil
    }

    func checkHistograms() throws {
        for (name, family) in families where family.type == "histogram" {
            let mine = samples.filter { $0.family == name }
            // One histogram per label set, without `le`.
            let series = Dictionary(grouping: mine) { $0.labels.filter { $0.key != "le" } }
            for (labels, lines) in series {
                func fail(_ reason: String) -> Malformed { Malformed(line: 0, reason: "\(name)\(labels): \(reason)") }
                var buckets: [(le: Double, count: Double)] = []
                for bucket in lines where bucket.name == name + "_bucket" {
                    guard let le = bucket.labels["le"], let bound = Self.number(le) else { throw fail("a bucket without a numeric le") }
                    buckets.append((bound, bucket.value))
                }
                buckets.sort { $0.le < $1.le }
                guard let last = buckets.last, last.le == .infinity else { throw fail("no +Inf bucket") }
                guard zip(buckets, buckets.dropFirst()).allSatisfy({ $0.count <= $1.count && $0.le < $1.le }) else {
                    throw fail("buckets are not cumulative")
                }
                guard let count = lines.first(where: { $0.name == name + "_count" })?.value, count == last.count else {
                    throw fail("_count is missing or is not the +Inf bucket")
                }
                guard lines.contains(where: { $0.name == name + "_sum" }) else { throw fail("no _sum") }
            }
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isMetricName(_ name: some StringProtocol) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == ":"
        }
    }

    static func isLabelName(_ name: some StringProtocol) -> Bool {
        isMetricName(name) && !name.contains(":")
    }

    /// A sample value: a Go-style float, `NaN`, `+Inf` or `-Inf`.
    static func number(_ text: String) -> Double? {
        switch text {
        case "NaN": return .nan
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        default:
            guard !text.isEmpty, text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
            return Double(text)
        }
    }

    /// `name{label="value",...} value [timestamp]`.
    static func sample(_ line: String, number lineNumber: Int) throws -> Sample {
        func fail(_ reason: String) -> Malformed { Malformed(line: lineNumber, reason: "\(reason): \(line)") }
        let characters = Array(line)
        var i = 0
        while i < characters.count, characters[i] != "{", characters[i] != " " { i += 1 }
        let name = String(characters[0..<i])
        guard isMetricName(name) else { throw fail("bad metric name") }
        var labels: [String: String] = [:]
        if i < characters.count, characters[i] == "{" {
            i += 1
            while true {
                guard i < characters.count else { throw fail("unclosed labels") }
                if characters[i] == "}" {
                    i += 1
                    break
                }
                var j = i
                while j < characters.count, characters[j] != "=" { j += 1 }
                let label = String(characters[i..<j])
                guard isLabelName(label) else { throw fail("bad label name") }
                guard j + 1 < characters.count, characters[j + 1] == "\"" else { throw fail("label value not quoted") }
                i = j + 2
                var value = ""
                while true {
                    guard i < characters.count else { throw fail("unclosed label value") }
                    let c = characters[i]
                    if c == "\"" { break }
                    if c == "\\" {
                        guard i + 1 < characters.count else { throw fail("a lone backslash") }
                        switch characters[i + 1] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw fail("an unknown escape")
                        }
                        i += 2
                    } else {
                        value.append(c)
                        i += 1
                    }
                }
                i += 1
                guard labels.updateValue(value, forKey: label) == nil else { throw fail("label \(label) twice") }
                guard i < characters.count else { throw fail("unclosed labels") }
                if characters[i] == "," { i += 1 } else if characters[i] != "}" { throw fail("expected , or }") }
            }
        }
        guard i < characters.count, characters[i] == " " else { throw fail("no value") }
        let fields = String(characters[(i + 1)...]).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(fields.count), let value = number(fields[0]) else { throw fail("value is not a number") }
        if fields.count == 2, Int64(fields[1]) == nil { throw fail("timestamp is not an integer") }
        return Sample(name: name, family: "", labels: labels, value: value)
    }
}
