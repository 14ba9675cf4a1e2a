import ArgumentParser
import BerthCore
import BerthWire
import FoundationEssentials

extension Berth {
    struct Jobs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "jobs",
            abstract: "List jobs, or show one in full with its metrics.",
            discussion: """
                Lists the jobs that match the filters, newest first, 100 unless --limit or --all says \
                otherwise: your own, or everyone's for an admin (--owner names one user's). berthd \
                filters and counts them itself. When more match than are shown, the table ends with \
                how many more and how to see them; --json has them as `more` and `next_cursor`.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: "A job id, to show that job in full.")
        var id: String?

        @Option(
            parsing: .singleValue,
            help: ArgumentHelp(
                "Only jobs in these statuses: \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")), separated by commas.",
                valueName: "status[,status]"
            ),
            transform: ArgumentCheck.values
        )
        var status: [[JobStatus]] = []

        @Option(help: ArgumentHelp("Only the jobs of this reservation.", valueName: "name"))
        var reservation: String?

        @Option(help: ArgumentHelp("Only this user's jobs (an admin may name anyone; others only themselves).", valueName: "user"))
        var owner: String?

        @Option(help: "Only jobs of this kind.")
        var kind: JobKind?

        @Option(parsing: .unconditional, help: ArgumentHelp("Only jobs submitted at or after this time.", valueName: "time"))
        var since: String?

        @OptionGroup var listing: ListingOptions

        func validate() throws {
            if let id {
                _ = try ArgumentCheck.jobID(id)
                if !status.isEmpty || reservation != nil || owner != nil || kind != nil || since != nil || listing.given {
                    throw ValidationError("job \(id) is shown in full by itself: leave out the listing's options, or the id")
                }
            }
            if let reservation { try ArgumentCheck.reservationName(reservation, field: "--reservation") }
            try ArgumentCheck.owner(owner)
            _ = try ArgumentCheck.since(since)
        }

        func run() throws {
            if let id {
                let path = try Self.path(id)
                let reply = try global.call(JobView.self, "GET", path)
                if global.json {
                    global.show(reply) { _ in "" }
                    return
                }
                // `kubectl describe` shows what happened to an object under it; the API keeps
                // that apart from the job, so a second request fetches it.
                let events = try global.call(JobEventList.self, "GET", path + "/events")
                print(Self.detail(reply.value, events: events.value.events))
            } else {
                let statuses = status.joined().map(\.rawValue)
                let filters: [(String, String?)] = [
                    ("status", statuses.isEmpty ? nil : statuses.joined(separator: ",")), ("reservation", reservation),
                    ("owner", owner), ("kind", kind?.rawValue), ("since", try ArgumentCheck.since(since)),
                ]
                if global.json {
                    global.show(try listing.fetch(JobList.self, "/v1/jobs", filters: filters, global: global)) { _ in "" }
                    return
                }
                let list = try listing.fetch(JobRowList.self, "/v1/jobs", filters: filters, fields: JobRow.fields, global: global).value
                print(Self.table(list))
            }
        }

        /// The listing as a table, with how many more match under it.
        static func table(_ list: JobRowList) -> String {
            var table = Table(
                "id",
                "name",
                "owner",
                "kind",
                "reservation",
                "status",
                "progress",
                "units",
                "train loss",
                "val loss",
                "submitted"
            )
            for job in list.jobs {
                let last = job.metrics.last
                table.append(
                    String(job.id),
                    job.name,
                    job.owner,
                    job.kind,
                    job.reservation,
                    Self.status(job),
                    Format.percent(job.progress),
                    Self.units(job),
                    Format.loss(last?.trainingLoss),
                    Format.loss(last?.validationLoss),
                    Format.time(job.submittedAt)
                )
            }
            return ([table.render()] + [ListingOptions.moreLine(shown: list.jobs.count, more: list.more)].compactMap { $0 })
                .joined(separator: "\n")
        }

        /// `/v1/jobs/7` for an id already checked by `validate()`.
        static func path(_ id: String) throws(ValidationError) -> String {
            "/v1/jobs/\(try ArgumentCheck.jobID(id))"
        }

        /// `failed (exit status 3)`, `stopped (stopped by alice)`, `running`.
        static func status(_ job: JobRow) -> String {
            status(job.shownStatus, reason: job.reason)
        }

        private static func status(_ shown: String, reason: String?) -> String {
            guard let reason, !reason.isEmpty else { return shown }
            return "\(shown) (\(reason))"
        }

        /// The compute units it runs on, or how many there are when the list would not fit a column.
        static func units(_ job: JobRow) -> String {
            job.units.count > 3 ? Format.plural(job.units.count, "unit") : Format.list(job.units)
        }

        static let terminalStatuses: Set<String> = ["completed", "failed", "stopped"]

        /// Long curves show their first 5 and last 10 points.
        static let metricsShownInFull = 20

        /// Events that say what happened to the job; `progress`, `metric` and `usage` are shown
        /// as the job's fields and curve instead.
        static let lifecycleEventKinds: Set<String> = [
            "submitted", "started", "exited", "stop-requested", "failed", "stopped", "completed",
        ]

        static func detail(_ job: JobView, events: [JobEventView]) -> String {
            var fields: [(String, String)] = [
                ("id", String(job.id)),
                ("name", job.name),
                ("owner", job.owner),
                ("kind", job.kind),
                ("reservation", job.reservation),
                ("model", job.model),
                ("status", job.shownStatus),
                ("reason", Format.text(job.reason)),
                ("progress", Format.percent(job.progress)),
                ("priority", String(job.priority)),
                ("model units", String(job.modelUnits)),
                ("compute units", Format.list(job.units)),
            ]
            if let hyper = job.hyperparameters {
                fields += [
                    ("epochs", String(hyper.epochs)),
                    ("batch size", String(hyper.batchSize)),
                    ("learning rate", Format.number(hyper.learningRate)),
                    ("warmup steps", String(hyper.warmupSteps)),
                ]
            } else {
                fields.append(("hyperparameters", "-"))
            }
            fields += [
                ("data", job.data),
                ("validation data", Format.text(job.validationData)),
                ("output", job.output),
                ("model name", Format.text(job.modelName)),
                ("submitted", Format.time(job.submittedAt)),
                ("started", Format.time(job.startedAt)),
                ("ended", Format.time(job.endedAt)),
                ("exit status", Format.number(job.exitStatus)),
                ("busy unit-seconds", busy(job.busyUnitSeconds)),
                ("cpu used", job.cpuSeconds.map { CFormat.string("%.2f s", $0) } ?? "-"),
                ("peak memory", job.peakMemoryBytes.map { CFormat.string("%.1f MiB", Double($0) / 1_048_576) } ?? "-"),
            ]
            if let slurm = job.slurmJobId {
                fields.append(("slurm job", job.slurmState.map { "\(slurm) (\($0))" } ?? slurm))
            }
            fields += [
                ("input tokens", String(job.inputTokens)),
                ("output tokens", String(job.outputTokens)),
            ]
            if job.metrics.isEmpty { fields.append(("metrics", "-")) }
            var sections = [Table.fields(fields)]
            if !job.metrics.isEmpty { sections.append(metrics(job.metrics)) }
            let history = events.filter { lifecycleEventKinds.contains($0.kind) }
            if !history.isEmpty {
                var table = Table("at", "event", "detail")
                for event in history {
                    table.append(Format.time(event.at), event.kind, Format.text(event.detail))
                }
                sections.append("events:\n" + table.render())
            }
            return sections.joined(separator: "\n\n")
        }

        /// The curve as a table; a long one as its first 5 points, `…`, and its last 10.
        static func metrics(_ points: [MetricPointView]) -> String {
            var table = Table("step", "epoch", "training loss", "validation loss")
            let long = points.count > metricsShownInFull
            let shown = long ? Array(points.prefix(5)) + Array(points.suffix(10)) : points
            for point in shown {
                table.append(
                    String(point.step),
                    Format.number(point.epoch),
                    Format.loss(point.trainingLoss),
                    Format.loss(point.validationLoss)
                )
            }
            guard long else { return "metrics:\n" + table.render() }
            var lines = table.render().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            lines.insert("…", at: 1 + 5)
            return "metrics (\(points.count) points, the first 5 and the last 10):\n" + lines.joined(separator: "\n")
        }

        /// `7230.5 (2h30s)`: the number as the API gives it, and how long that is.
        static func busy(_ seconds: Double) -> String {
            let number = CFormat.string("%.1f", seconds)
            return seconds >= 60 ? "\(number) (\(TimeExpression.formatDuration(seconds)))" : number
        }
    }
}

extension ArgumentCheck {
    /// A job id: a positive whole number, as the daemon numbers jobs.
    static func jobID(_ text: String) throws(ValidationError) -> Int64 {
        guard let id = Int64(text), id > 0 else {
            throw ValidationError("'\(text)' is not a job id: give the positive number that 'berth jobs' lists, such as 7")
        }
        return id
    }
}
