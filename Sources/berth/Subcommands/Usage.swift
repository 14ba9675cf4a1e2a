import ArgumentParser
import BerthClient
import BerthCore
import BerthWire
import FoundationEssentials

extension Berth {
    struct Usage: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "usage",
            abstract: "Report reserved and busy unit-hours, jobs, calls, tokens, cost and idle reservations.",
            discussion: """
                The window is [--from, --to): by default from the start of this month (UTC) to now. \
                Admins see everyone's usage, others only their own. Reservations that sat idle (no job \
                running, no call) longer than berthd's idle_threshold_seconds are listed below the table \
                with what the idle time cost.
                """
        )

        /// What `--format` prints.
        enum OutputFormat: String, CaseIterable {
            case table, json, csv
        }

        @OptionGroup var global: GlobalOptions

        @Option(parsing: .unconditional, help: ArgumentHelp("Start of the window (default: the start of this month, UTC).", valueName: "time"))
        var from: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("End of the window (default: now).", valueName: "time"))
        var to: String?

        @Option(help: ArgumentHelp("One row per reservation, model, owner or day (default: reservation).", valueName: "reservation|model|owner|day"))
        var by: String?

        @Option(help: ArgumentHelp("table, json (as --json) or csv (default: table).", valueName: "table|json|csv"))
        var format: String?

        @Option(
            help: ArgumentHelp(
                "Also draw reserved vs busy units over time, and tokens per minute against the budget, as an SVG file.",
                valueName: "file.svg"
            )
        )
        var chart: String?

        @Flag(
            help:
                "Print right-sizing advice instead of the table: one line per reservation that held more model units than it used, or too few for its calls, with what the change would save or cost a month. The JSON always carries it."
        )
        var advice = false

        func validate() throws {
            try ArgumentCheck.window(from: from, to: to)
            if let by, UsageGrouping(rawValue: by) == nil {
                throw ValidationError("--by: '\(by)' is not a grouping: use reservation, model, owner or day")
            }
            if let format {
                guard let chosen = OutputFormat(rawValue: format) else {
                    throw ValidationError("--format: '\(format)' is not an output format: use table, json or csv")
                }
                if global.json && chosen != .json {
                    throw ValidationError("--json and --format \(format) ask for two formats: give one of them")
                }
                if advice && chosen == .csv {
                    throw ValidationError("--advice prints sentences, not CSV: leave out --format csv, or read the advice from --json")
                }
            }
            if let chart {
                let folder = chart.lastIndex(of: "/").map { $0 == chart.startIndex ? "/" : String(chart[..<$0]) } ?? ""
                var isFolder = false
                if chart.isEmpty || chart.hasSuffix("/") {
                    throw ValidationError("--chart: '\(chart)' is not a file name: give one such as usage.svg")
                }
                if FileManager.default.fileExists(atPath: chart, isDirectory: &isFolder), isFolder {
                    throw ValidationError("--chart: '\(chart)' is a folder: give a file in it, such as \(chart)/usage.svg")
                }
                if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder {
                    throw ValidationError("--chart: the folder '\(folder)' does not exist: create it or write the chart elsewhere")
                }
            }
        }

        var outputFormat: OutputFormat {
            global.json ? .json : format.flatMap(OutputFormat.init(rawValue:)) ?? .table
        }

        func run() throws {
            // One report for everything printed and drawn, so the chart and the table agree; the
            // chart wants finer buckets than the sparkline, which groups them.
            let buckets = chart == nil ? UsageTable.sparklineWidth : UsageChart.buckets
            let path =
                "/v1/usage"
                + PercentEncoding.query([
                    ("from", from), ("to", to), ("by", by), ("buckets", String(buckets)),
                ])
            let reply = try global.call(UsageReportView.self, "GET", path)
            let report = reply.value
            if let chart { try Self.write(UsageChart.svg(report), to: chart) }
            switch outputFormat {
            case .json:
                if !reply.body.isEmpty { print(JSONDocument.pretty(reply.body)) }
            case .csv:
                print(UsageCSV.render(report), terminator: "")
            case .table:
                var text = advice ? UsageAdvice.render(report) : UsageTable.render(report)
                if let chart { text += "\n\nChart written to \(chart)." }
                print(text)
            }
        }

        /// Refused as `invoke` refuses a file it cannot read: a bad argument, named, with the reason.
        static func write(_ svg: String, to file: String) throws(CommandFailure) {
            do {
                try Data(svg.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                let reason =
                    switch (error as? CocoaError)?.code {
                    case .fileNoSuchFile?, .fileWriteInvalidFileName?: "no such folder"
                    default: FileProblem.reason(error)
                    }
                throw .invalidArgument("--chart: cannot write '\(file)': \(reason); write it somewhere you can, such as /tmp/usage.svg")
            }
        }
    }
}

/// The usage report as an aligned table with a sparkline per row, a totals row, and the idle
/// reservations below it.
enum UsageTable {
    /// Marks in a row's sparkline; also the buckets asked for when no chart is drawn.
    static let sparklineWidth = 24
    /// From nothing busy to fully busy.
    static let marks = Array("▁▂▃▄▅▆▇█")
    /// A bucket in which nothing was reserved.
    static let nothingReserved: Character = "·"

    static func render(_ report: UsageReportView) -> String {
        let group = max(1, (report.totals.series.reservedUnits.count + sparklineWidth - 1) / sparklineWidth)
        var table = Table(
            report.by,
            "reserved u-h",
            "busy u-h",
            "util",
            "cpu s",
            "jobs ok/fail/other",
            "calls",
            "throttled",
            "in tok",
            "out tok",
            "p50 ms",
            "p99 ms",
            "cost",
            "idle h",
            "busy/reserved"
        )
        for (row, label) in report.rows.map({ ($0, $0.key) }) + [(report.totals, "TOTAL")] {
            table.append(
                label,
                UsageNumber.hours(row.reservedUnitHours),
                UsageNumber.hours(row.busyUnitHours),
                row.reservedUnitHours > 0 ? UsageNumber.percent(row.utilization) : "-",
                row.cpuSeconds > 0 ? UsageNumber.twoDecimals(row.cpuSeconds) : "-",
                jobs(row.jobs),
                UsageNumber.grouped(row.invocations),
                UsageNumber.grouped(row.throttled),
                UsageNumber.grouped(row.inputTokens),
                UsageNumber.grouped(row.outputTokens),
                UsageNumber.milliseconds(row.latencyP50Ms),
                UsageNumber.milliseconds(row.latencyP99Ms),
                UsageNumber.money(row.cost),
                row.idleHours > 0 ? UsageNumber.hours(row.idleHours) : "-",
                sparkline(row.series, group: group)
            )
        }
        let mark = UsageNumber.duration(report.bucketSeconds * Double(group))
        let header =
            "Usage from \(Format.time(report.from)) to \(Format.time(report.to)) by \(report.by). "
            + "BUSY/RESERVED: one mark per \(mark), ▁ idle to █ fully busy, \(nothingReserved) nothing reserved."
        return header + "\n\n" + table.render() + "\n\n" + idle(report)
    }

    /// Completed / failed / everything else (queued, running, stopping, stopped).
    static func jobs(_ jobs: JobCountsView) -> String {
        guard jobs.total > 0 else { return "-" }
        return "\(jobs.completed)/\(jobs.failed)/\(jobs.total - jobs.completed - jobs.failed)"
    }

    /// Busy ÷ reserved per bucket, `group` buckets to a mark.
    static func sparkline(_ series: UsageSeriesView, group: Int) -> String {
        let count = min(series.reservedUnits.count, series.busyUnits.count)
        guard count > 0 else { return "-" }
        return String(
            stride(from: 0, to: count, by: group).map { start in
                let range = start..<min(start + group, count)
                let reserved = range.reduce(0.0) { $0 + series.reservedUnits[$1] }
                let busy = range.reduce(0.0) { $0 + series.busyUnits[$1] }
                guard reserved > 0 else { return nothingReserved }
                let ratio = min(max(busy / reserved, 0), 1)
                // Only a bucket with nothing busy gets the lowest mark.
                return ratio == 0 ? marks[0] : marks[1 + min(marks.count - 2, Int(ratio * Double(marks.count - 1)))]
            }
        )
    }

    static func idle(_ report: UsageReportView) -> String {
        let threshold = UsageNumber.duration(report.idleThresholdSeconds)
        guard !report.idle.isEmpty else {
            return "No reservation sat idle (no job running, no call) longer than \(threshold)."
        }
        var table = Table("reservation", "owner", "model", "idle h", "idle cost", "spells", "last idle from")
        for entry in report.idle {
            table.append(
                entry.reservation,
                entry.owner,
                entry.model,
                UsageNumber.hours(entry.idleHours),
                UsageNumber.money(entry.idleCost),
                String(entry.periods.count),
                Format.time(entry.periods.map(\.start).max())
            )
        }
        let cost = report.idle.reduce(0.0) { $0 + $1.idleCost }
        return "IDLE: \(Format.plural(report.idle.count, "reservation")) sat idle (no job running, no call) longer than "
            + "\(threshold), costing \(UsageNumber.money(cost)) for nothing:\n"
            + table.render()
            + "\nRelease what you no longer use with berth release NAME (one with a commitment expires at its end)."
    }
}

/// The usage report as CSV (RFC 4180): a header, one record per row and a `total` record;
/// numbers plain, job counts one column per status, no sparkline.
enum UsageCSV {
    static func render(_ report: UsageReportView) -> String {
        let describes = report.by == UsageGrouping.reservation.rawValue
        var header = [report.by]
        if describes { header += ["owner", "model", "purpose", "commitment"] }
        header += [
            "reserved_unit_hours", "busy_unit_hours", "utilization", "cpu_seconds", "peak_memory_bytes",
            "jobs_queued", "jobs_running", "jobs_stopping", "jobs_completed", "jobs_failed", "jobs_stopped",
            "invocations", "served", "throttled", "input_tokens", "output_tokens", "latency_p50_ms", "latency_p99_ms",
            "provisioned_cost", "on_demand_cost", "cost", "idle_hours", "idle_cost",
        ]
        var records = [header]
        for row in report.rows + [report.totals] {
            var record = [row.key]
            if describes {
                record += [row.owner ?? "", row.model ?? "", row.purpose ?? "", row.commitment ?? ""]
            }
            let j = row.jobs
            record += [row.reservedUnitHours, row.busyUnitHours, row.utilization, row.cpuSeconds].map(UsageNumber.plain)
            record.append(row.peakMemoryBytes.map(String.init) ?? "")
            record += [j.queued, j.running, j.stopping, j.completed, j.failed, j.stopped].map(String.init)
            record += [row.invocations, row.served, row.throttled, row.inputTokens, row.outputTokens].map(String.init)
            record += [row.latencyP50Ms, row.latencyP99Ms].map { $0.map(UsageNumber.plain) ?? "" }
            record += [row.provisionedCost, row.onDemandCost, row.cost, row.idleHours, row.idleCost].map(UsageNumber.plain)
            records.append(record)
        }
        return records.map { $0.map(field).joined(separator: ",") + "\r\n" }.joined()
    }

    /// Quoted when it holds a comma, a quote or a line break; quotes doubled.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return text }
        return "\"" + text.replacing("\"", with: "\"\"") + "\""
    }
}

/// How the usage report's numbers read in the table: grouped thousands, two decimals for hours and
/// money (more for sums under a cent), and plain decimals (never exponents) in CSV.
enum UsageNumber {
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, digit) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// `1,234.50`: `decimals` places, thousands grouped.
    static func fixed(_ value: Double, decimals: Int) -> String {
        let text = CFormat.string("%.\(decimals)f", abs(value))
        let parts = text.split(separator: ".", maxSplits: 1)
        let whole = grouped(Int(parts[0]) ?? 0)
        let sign = value < 0 && text.contains(where: { $0 != "0" && $0 != "." }) ? "-" : ""
        return sign + whole + (parts.count > 1 ? "." + parts[1] : "")
    }

    /// Two decimals; an amount that would read as 0.00 but is not, to six (the report's precision).
    static func twoDecimals(_ value: Double) -> String {
        guard value != 0 && abs(value) < 0.005 else { return fixed(value, decimals: 2) }
        var text = fixed(value, decimals: 6)
        while text.hasSuffix("0") { text.removeLast() }
        return text.hasSuffix(".") ? text + "00" : text
    }

    static func hours(_ value: Double) -> String { twoDecimals(value) }

    static func money(_ value: Double) -> String { twoDecimals(value) }

    static func percent(_ fraction: Double) -> String {
        CFormat.string("%.1f%%", fraction * 100)
    }

    static func milliseconds(_ value: Double?) -> String {
        value.map { fixed($0, decimals: 1) } ?? "-"
    }

    /// The shortest decimal that reads back as the same number, never in exponent notation.
    static func plain(_ value: Double) -> String {
        guard value.isFinite else { return "" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        let text = "\(value)"
        guard text.contains("e") else { return text }
        return abs(value) < 1 ? HyperparameterCheck.plainDecimal(value) : CFormat.string("%.0f", value)
    }

    /// `1d6h`, `45m`, `30s`: the two largest units of a duration.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds > 0 else { return "0s" }
        if seconds < 1 { return plain((seconds * 1000).rounded() / 1000) + "s" }
        var rest = Int(seconds.rounded())
        var parts: [String] = []
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size || (parts.isEmpty && size == 1) {
            parts.append("\(rest / size)\(unit)")
            rest %= size
            if parts.count == 2 || rest == 0 { break }
        }
        return parts.joined()
    }
}
