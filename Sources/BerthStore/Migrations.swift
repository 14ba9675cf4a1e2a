import GRDB

/// Every migration of the ledger, in one place. A shipped migration is never changed: later
/// issues add new ones at the end.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()

        migrator.registerMigration("v1-units-models-reservations-leases") { db in
            try db.create(table: "units") { t in
                t.primaryKey("id", .text)
                t.column("kind", .text).notNull()
                t.column("device", .integer)
                t.column("pool", .text).notNull()
                t.column("retired", .boolean).notNull().defaults(to: false)
                t.column("position", .integer).notNull()
            }
            try db.create(table: "models") { t in
                t.primaryKey("id", .text)
                t.column("provider", .text).notNull()
                t.column("input_modalities", .text).notNull()
                t.column("output_modalities", .text).notNull()
                t.column("max_tokens", .integer).notNull()
                t.column("on_demand", .boolean).notNull()
                t.column("customizations", .text).notNull()
                t.column("hyperparameters", .text).notNull()
                t.column("units_per_model_unit", .integer).notNull()
                t.column("tokens_per_minute", .integer).notNull()
                t.column("price", .text).notNull()
                t.column("base_model", .text).references("models")
                t.column("owner", .text)
                t.column("retired", .boolean).notNull().defaults(to: false)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "reservations") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull()
                t.column("owner", .text).notNull().indexed()
                t.column("model", .text).notNull().references("models")
                t.column("purpose", .text).notNull()
                t.column("model_units", .integer).notNull().check { $0 >= 1 }
                t.column("units", .integer).notNull().check { $0 >= 1 }
                t.column("commitment", .text).notNull()
                t.column("start", .datetime).notNull()
                t.column("end", .datetime)
                t.column("duration", .double)
                t.column("status", .text).notNull().indexed()
                t.column("waiting", .boolean).notNull()
                t.column("spillover", .boolean).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("ended_at", .datetime)
                t.column("status_reason", .text)
            }
            // Names are unique among reservations that are not finished; an expired or released
            // name can be used again.
            try db.execute(
                sql: """
                    CREATE UNIQUE INDEX reservations_live_name ON reservations(name)
                    WHERE status IN ('pending', 'active')
                    """
            )
            try db.create(table: "leases") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("unit_id", .text).notNull().references("units")
                t.column("reservation_id", .integer).notNull().references("reservations").indexed()
                t.column("start", .datetime).notNull()
                t.column("end", .datetime)
                t.column("held", .boolean).notNull()
            }
            // The ledger itself refuses a unit held by two leases at once.
            try db.execute(sql: "CREATE UNIQUE INDEX leases_held_unit ON leases(unit_id) WHERE held")
            try db.create(index: "leases_unit_start", on: "leases", columns: ["unit_id", "start"])
            try db.create(table: "idempotency_keys") { t in
                t.column("owner", .text).notNull()
                t.column("key", .text).notNull()
                t.column("route", .text).notNull()
                t.column("request", .blob).notNull()
                t.column("status", .integer).notNull()
                t.column("response", .blob).notNull()
                t.column("created_at", .datetime).notNull()
                t.primaryKey(["owner", "key"])
            }
        }
        migrator.registerMigration("v2-jobs") { db in
            try db.create(table: "jobs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull()
                t.column("owner", .text).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("reservation_id", .integer).notNull().references("reservations").indexed()
                t.column("model", .text).notNull()
                t.column("base_model", .text).notNull()
                t.column("status", .text).notNull().indexed()
                t.column("reason", .text)
                t.column("priority", .integer).notNull()
                t.column("model_units", .integer).notNull()
                t.column("units_needed", .integer).notNull()
                t.column("units", .text).notNull()
                t.column("hyperparameters", .text)
                t.column("data", .text).notNull()
                t.column("validation_data", .text)
                t.column("output", .text).notNull()
                t.column("model_name", .text)
                t.column("seed", .integer).notNull()
                t.column("submitted_at", .datetime).notNull()
                t.column("started_at", .datetime)
                t.column("ended_at", .datetime)
                t.column("exit_status", .integer)
                t.column("progress", .double).notNull()
                t.column("busy_unit_seconds", .double).notNull()
                t.column("input_tokens", .integer).notNull()
                t.column("output_tokens", .integer).notNull()
                t.column("log_path", .text).notNull()
                t.column("caller_uid", .integer).notNull()
                t.column("caller_gid", .integer).notNull()
                // The runner's pid (and process group), so a restarted berthd can find a runner
                // its predecessor left behind.
                t.column("pid", .integer)
            }
            try db.create(table: "job_metrics") { t in
                t.column("job_id", .integer).notNull().references("jobs").indexed()
                t.column("step", .integer).notNull()
                t.column("epoch", .integer)
                t.column("name", .text).notNull()
                t.column("value", .double).notNull()
            }
            try db.create(table: "job_events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .integer).notNull().references("jobs").indexed()
                t.column("at", .datetime).notNull()
                t.column("kind", .text).notNull()
                t.column("detail", .text).notNull()
            }
            // What a customization job left behind, for the custom models it registers.
            try db.alter(table: "models") { t in
                t.add(column: "customization", .text)
                t.add(column: "artifact_dir", .text)
                t.add(column: "job_id", .integer)
                t.add(column: "final_metrics", .text)
            }
        }

        migrator.registerMigration("v3-invocations") { db in
            try db.create(table: "invocations") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("at", .datetime).notNull()
                t.column("owner", .text).notNull()
                t.column("target", .text).notNull()
                t.column("reservation_id", .integer).references("reservations")
                t.column("model", .text).notNull()
                t.column("tier", .text)
                t.column("outcome", .text).notNull()
                t.column("input_tokens", .integer).notNull()
                t.column("output_tokens", .integer).notNull()
                t.column("latency_ms", .double).notNull()
                t.column("cost", .double).notNull()
            }
            try db.create(index: "invocations_reservation_at", on: "invocations", columns: ["reservation_id", "at"])
            try db.create(index: "invocations_at", on: "invocations", columns: ["at"])
            // Tokens used per reservation per minute, against its budget: utilization.
            try db.create(table: "reservation_minutes") { t in
                t.column("reservation_id", .integer).notNull().references("reservations")
                t.column("minute", .datetime).notNull()
                t.column("tokens", .integer).notNull()
                t.column("calls", .integer).notNull()
                t.column("throttled", .integer).notNull()
                t.column("budget", .integer).notNull()
                t.primaryKey(["reservation_id", "minute"])
            }
            try db.alter(table: "reservations") { t in
                t.add(column: "serve_restarts", .integer).notNull().defaults(to: 0)
            }
        }

        migrator.registerMigration("v4-usage") { db in
            // Calls added up per hour (epoch seconds of its start), reservation (0: called by
            // model id, on demand), model and owner. `latency` is a `LatencyHistogram` of the
            // served calls, `provisioned_tokens` what the reservation's own units served.
            try db.execute(
                sql: """
                    CREATE TABLE usage_hours (
                        hour INTEGER NOT NULL,
                        reservation_id INTEGER NOT NULL,
                        model TEXT NOT NULL,
                        owner TEXT NOT NULL,
                        calls INTEGER NOT NULL,
                        served INTEGER NOT NULL,
                        throttled INTEGER NOT NULL,
                        input_tokens INTEGER NOT NULL,
                        output_tokens INTEGER NOT NULL,
                        provisioned_tokens INTEGER NOT NULL,
                        cost REAL NOT NULL,
                        latency BLOB NOT NULL,
                        PRIMARY KEY (hour, reservation_id, model, owner)
                    ) WITHOUT ROWID
                    """
            )
            // Spans (epoch seconds) in which a reservation kept being called, for idle spells.
            try db.create(table: "reservation_activity") { t in
                t.column("reservation_id", .integer).notNull().references("reservations")
                t.column("first_call", .double).notNull()
                t.column("last_call", .double).notNull()
            }
            try db.create(index: "reservation_activity_last", on: "reservation_activity", columns: ["reservation_id", "last_call"])
            // Jobs near a report's window, by reservation.
            try db.create(index: "jobs_reservation_submitted", on: "jobs", columns: ["reservation_id", "submitted_at"])
            // Calls recorded before this migration join the rollups, as the roll-up of the time
            // added them up. Frozen here in SQL: the live roll-up may change, what an old ledger
            // upgrades to must not.
            try db.execute(sql: v4RollUp)
        }

        migrator.registerMigration("v5-job-queues") { db in
            // Each reservation's queue in order, queued jobs only: the scheduler reads the head.
            try db.execute(
                sql: """
                    CREATE INDEX jobs_queue ON jobs(reservation_id, priority DESC, submitted_at, id) WHERE status = 'queued'
                    """
            )
            // A submission asks whether a live job will make a model of its name: no table scan.
            try db.create(index: "jobs_model_name", on: "jobs", columns: ["model_name"])
            // Names are looked up on every reserve, submit and release, finished ones included:
            // without this, each lookup read every reservation ever made.
            try db.create(index: "reservations_name", on: "reservations", columns: ["name"])
            // A submission counts its owner's queued jobs against max_queued_jobs_per_user.
            try db.execute(sql: "CREATE INDEX jobs_queued_owner ON jobs(owner) WHERE status = 'queued'")
            // When each unit's last lease ended, kept on the unit by the ledger itself: the
            // scheduler reads one row per unit instead of every lease ever written.
            try db.alter(table: "units") { t in t.add(column: "free_since", .datetime) }
            try db.execute(
                sql: """
                    UPDATE units SET free_since = (SELECT MAX("end") FROM leases WHERE leases.unit_id = units.id AND NOT held AND "end" IS NOT NULL)
                    """
            )
            try db.execute(
                sql: """
                    CREATE TRIGGER leases_closed AFTER UPDATE OF held ON leases
                    WHEN OLD.held AND NOT NEW.held AND NEW."end" IS NOT NULL
                    BEGIN
                        UPDATE units SET free_since = MAX(COALESCE(free_since, NEW."end"), NEW."end") WHERE id = NEW.unit_id;
                    END
                    """
            )
        }

        migrator.registerMigration("v6-queued-counts") { db in
            // Each user's queued jobs, kept by the ledger itself: a submission checks its owner
            // against max_queued_jobs_per_user by reading one row, where counting the queue read
            // every queued job (tens of thousands under load).
            try db.execute(
                sql: """
                    CREATE TABLE queued_jobs (owner TEXT PRIMARY KEY, queued INTEGER NOT NULL) WITHOUT ROWID;
                    INSERT INTO queued_jobs (owner, queued) SELECT owner, COUNT(*) FROM jobs WHERE status = 'queued' GROUP BY owner;
                    CREATE TRIGGER jobs_queued_insert AFTER INSERT ON jobs WHEN NEW.status = 'queued'
                    BEGIN
                        INSERT INTO queued_jobs (owner, queued) VALUES (NEW.owner, 1)
                        ON CONFLICT (owner) DO UPDATE SET queued = queued + 1;
                    END;
                    CREATE TRIGGER jobs_queued_left AFTER UPDATE OF status ON jobs
                    WHEN OLD.status = 'queued' AND NEW.status <> 'queued'
                    BEGIN
                        UPDATE queued_jobs SET queued = queued - 1 WHERE owner = OLD.owner;
                    END;
                    CREATE TRIGGER jobs_queued_again AFTER UPDATE OF status ON jobs
                    WHEN OLD.status <> 'queued' AND NEW.status = 'queued'
                    BEGIN
                        INSERT INTO queued_jobs (owner, queued) VALUES (NEW.owner, 1)
                        ON CONFLICT (owner) DO UPDATE SET queued = queued + 1;
                    END;
                    CREATE TRIGGER jobs_queued_delete AFTER DELETE ON jobs WHEN OLD.status = 'queued'
                    BEGIN
                        UPDATE queued_jobs SET queued = queued - 1 WHERE owner = OLD.owner;
                    END;
                    DROP INDEX jobs_queued_owner;
                    """
            )
            // jobs_reservation_submitted (reservation_id, submitted_at) serves every lookup by
            // reservation: one index fewer to update on each submission.
            try db.execute(sql: "DROP INDEX jobs_on_reservation_id")
        }

        migrator.registerMigration("v7-rollup-mark") { db in
            // Calls up to `through` are in usage_hours and reservation_activity; later ones are
            // rolled up in the background (`rollUpRecorded`), and reports count them from their
            // records meanwhile. Every call so far was rolled up as it was recorded.
            try db.execute(
                sql: """
                    CREATE TABLE usage_rollup (id INTEGER PRIMARY KEY CHECK (id = 1), through INTEGER NOT NULL);
                    INSERT INTO usage_rollup (id, through) VALUES (1, COALESCE((SELECT MAX(id) FROM invocations), 0));
                    """
            )
        }

        migrator.registerMigration("v8-listings") { db in
            // Listings narrow jobs by kind and by submission time, newest first, and count what
            // matches beyond a page: each is then a range of an index, in id order within it
            // (SQLite ends every index with the rowid). Owner and status have theirs since v2,
            // a reservation's jobs `jobs_reservation_submitted`.
            try db.create(index: "jobs_kind", on: "jobs", columns: ["kind"])
            try db.create(index: "jobs_submitted_at", on: "jobs", columns: ["submitted_at"])
            try db.create(index: "reservations_created_at", on: "reservations", columns: ["created_at"])
            // A listing shows each job's last metric point: its step is the end of this index's
            // range for the job, where the index on job_id alone had every point read.
            try db.create(index: "job_metrics_job_step", on: "job_metrics", columns: ["job_id", "step"])
            try db.execute(sql: "DROP INDEX job_metrics_on_job_id")
        }

        migrator.registerMigration("v9-job-resources") { db in
            // What a job's runner used, as its cgroup counted it when it ended; NULL for jobs
            // that ran unconfined, and for every job before this version.
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN cpu_seconds REAL;
                    ALTER TABLE jobs ADD COLUMN peak_memory_bytes INTEGER;
                    """
            )
        }

        migrator.registerMigration("v10-runner-resources") { db in
            // What an inference reservation's serve processes used, added up as each one ends
            // (restarts included), as their cgroups counted it; 0 and NULL where none was confined.
            // And the spans in which every GPU a reservation held sat under the idle threshold,
            // which the usage report counts as idle even while a job ran.
            try db.execute(
                sql: """
                    ALTER TABLE reservations ADD COLUMN serve_cpu_seconds REAL NOT NULL DEFAULT 0;
                    ALTER TABLE reservations ADD COLUMN serve_peak_memory_bytes INTEGER;
                    CREATE TABLE gpu_quiet_spans (
                        reservation_id INTEGER NOT NULL REFERENCES reservations(id),
                        start DATETIME NOT NULL,
                        "end" DATETIME
                    );
                    CREATE INDEX gpu_quiet_spans_reservation ON gpu_quiet_spans(reservation_id, start);
                    """
            )
        }

        migrator.registerMigration("v11-api-keys") { db in
            // Keys for the OpenAI listener: never the key, only the SHA-256 digest of its secret.
            // A revoked key is kept (its name and use stay on record) and matches nothing.
            try db.execute(
                sql: """
                    CREATE TABLE api_keys (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL,
                        owner TEXT NOT NULL,
                        digest BLOB NOT NULL,
                        created_at DATETIME NOT NULL,
                        last_used_at DATETIME,
                        revoked_at DATETIME
                    );
                    CREATE UNIQUE INDEX api_keys_live_name ON api_keys (owner, name) WHERE revoked_at IS NULL;
                    """
            )
        }

        migrator.registerMigration("v12-slurm") { db in
            // A job run through Slurm: its Slurm job id, by which a restarted berthd follows it
            // again, and the state squeue showed last (PENDING while it waits on the cluster).
            try db.execute(
                sql: """
                    ALTER TABLE jobs ADD COLUMN slurm_job_id TEXT;
                    ALTER TABLE jobs ADD COLUMN slurm_state TEXT;
                    """
            )
        }

        migrator.registerMigration("v13-reservation-executor") { db in
            // The executor a reservation was admitted on: it is booked against that one's units
            // only. Older rows stay NULL and are placed as before (BerthCore's Snapshot.pools).
            try db.execute(sql: "ALTER TABLE reservations ADD COLUMN executor TEXT")
        }

        migrator.registerMigration("v14-reservation-pinned-units") { db in
            // The units a reservation on Slurm units will get, chosen at admission so that its
            // Slurm reservation (made then, for those units' nodes) and berth's leases agree.
            try db.execute(sql: "ALTER TABLE reservations ADD COLUMN pinned_units TEXT")
        }

        migrator.registerMigration("v15-daemon-secrets") { db in
            // Secrets berthd keeps across restarts (the one its serve processes' tokens are
            // derived from), made once, at the first start that needs one.
            try db.execute(sql: "CREATE TABLE daemon_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        }

        return migrator
    }

    /// Every byte value, so that `substr(bytes, n + 1, 1)` is the one-byte blob `n`: SQLite
    /// before 3.41 has no `unhex`.
    private static let byteValues = "x'" + (0...255).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "'"

    /// v4's roll-up of the calls already recorded, in SQL: the rows `usage_hours` and
    /// `reservation_activity` got from the roll-up berthd ran then.
    ///
    /// - Each call counts in the hour it falls in, by reservation (0: none), model and owner.
    /// - Served calls add their tokens, cost and latency; tokens are provisioned when a
    ///   reservation's own units served them (the tier is not `on-demand`).
    /// - Costs add up in the order of the calls (`at`, then `id`), as floating point did then.
    /// - Latency is a `LatencyHistogram` as it was stored then: each latency rounded to three
    ///   significant figures and coded as (decade − 10⁻⁴'s + 1) × 1000 + the digits (1100 below
    ///   10⁻⁴ ms, 11999 from 10⁷ ms on, 0 for none), six bytes per code in ascending order (the
    ///   code, then its count, little-endian).
    /// - Calls to a reservation served or throttled less than 60 s apart are one span of activity.
    private static let v4RollUp = """
        CREATE TEMP TABLE v4_decades (exponent INTEGER PRIMARY KEY, low REAL NOT NULL, step REAL NOT NULL);
        INSERT INTO v4_decades VALUES
            (-5, 1e-5, 1e-7), (-4, 1e-4, 1e-6), (-3, 1e-3, 1e-5), (-2, 1e-2, 1e-4), (-1, 1e-1, 1e-3), (0, 1e0, 1e-2),
            (1, 1e1, 1e-1), (2, 1e2, 1e0), (3, 1e3, 1e1), (4, 1e4, 1e2), (5, 1e5, 1e3), (6, 1e6, 1e4), (7, 1e7, 1e5);

        CREATE TEMP TABLE v4_calls AS
        SELECT id, at, CAST(strftime('%s', at) AS INTEGER) / 3600 * 3600 AS hour,
               COALESCE(reservation_id, 0) AS reservation_id, reservation_id IS NOT NULL AS reserved, model, owner, tier,
               outcome, input_tokens, output_tokens, cost, latency_ms AS latency,
               (SELECT MAX(exponent) FROM v4_decades WHERE low <= latency_ms) AS exponent, NULL AS digits, 0 AS code
        FROM invocations;

        -- Three significant figures: the digits in the latency's decade, one decade down when
        -- they come to less than 100, one up when rounding carries them to 1000.
        UPDATE v4_calls SET digits = round(latency / (SELECT step FROM v4_decades d WHERE d.exponent = v4_calls.exponent))
        WHERE exponent BETWEEN -4 AND 6;
        UPDATE v4_calls SET exponent = exponent - 1,
                            digits = round(latency / (SELECT step FROM v4_decades d WHERE d.exponent = v4_calls.exponent - 1))
        WHERE digits < 100;
        UPDATE v4_calls SET exponent = exponent + 1,
                            digits = round(latency / (SELECT step FROM v4_decades d WHERE d.exponent = v4_calls.exponent + 1))
        WHERE digits >= 1000;
        UPDATE v4_calls SET code = CASE
            WHEN NOT (latency > 0) OR latency > 1.7976931348623157e308 THEN 0
            WHEN exponent IS NULL OR exponent < -4 THEN 1100
            WHEN exponent > 6 THEN 11999
            ELSE (exponent + 5) * 1000 + CAST(digits AS INTEGER)
        END;

        INSERT INTO usage_hours (hour, reservation_id, model, owner, calls, served, throttled, input_tokens, output_tokens,
                                 provisioned_tokens, cost, latency)
        SELECT hour, reservation_id, model, owner, COUNT(*), SUM(outcome = 'served'), SUM(outcome = 'throttled'),
               SUM(CASE WHEN outcome = 'served' THEN input_tokens ELSE 0 END),
               SUM(CASE WHEN outcome = 'served' THEN output_tokens ELSE 0 END),
               SUM(CASE WHEN outcome = 'served' AND reserved AND tier IS NOT 'on-demand' THEN input_tokens + output_tokens ELSE 0 END),
               0.0, x''
        FROM v4_calls GROUP BY hour, reservation_id, model, owner;

        -- Costs, added one call at a time in order.
        CREATE TEMP TABLE v4_served AS
        SELECT hour, reservation_id, model, owner, cost,
               ROW_NUMBER() OVER (PARTITION BY hour, reservation_id, model, owner ORDER BY at, id) AS n
        FROM v4_calls WHERE outcome = 'served';
        CREATE INDEX v4_served_n ON v4_served (hour, reservation_id, model, owner, n);
        CREATE TEMP TABLE v4_costs AS
        WITH RECURSIVE running (hour, reservation_id, model, owner, n, cost) AS (
            SELECT hour, reservation_id, model, owner, n, cost FROM v4_served WHERE n = 1
            UNION ALL
            SELECT r.hour, r.reservation_id, r.model, r.owner, s.n, r.cost + s.cost
            FROM running r JOIN v4_served s
            ON s.hour = r.hour AND s.reservation_id = r.reservation_id AND s.model = r.model AND s.owner = r.owner AND s.n = r.n + 1
        )
        SELECT hour, reservation_id, model, owner, cost FROM running r
        WHERE n = (SELECT MAX(n) FROM v4_served s
                   WHERE s.hour = r.hour AND s.reservation_id = r.reservation_id AND s.model = r.model AND s.owner = r.owner);
        UPDATE usage_hours SET cost = c.cost FROM v4_costs c
        WHERE c.hour = usage_hours.hour AND c.reservation_id = usage_hours.reservation_id
          AND c.model = usage_hours.model AND c.owner = usage_hours.owner;

        -- Latency histograms: each code's six bytes, joined in ascending order of code.
        CREATE TEMP TABLE v4_codes AS
        SELECT hour, reservation_id, model, owner,
               ROW_NUMBER() OVER (PARTITION BY hour, reservation_id, model, owner ORDER BY code) AS n,
               substr(\(byteValues), code % 256 + 1, 1) || substr(\(byteValues), code / 256 + 1, 1)
               || substr(\(byteValues), MIN(COUNT(*), 4294967295) % 256 + 1, 1)
               || substr(\(byteValues), MIN(COUNT(*), 4294967295) / 256 % 256 + 1, 1)
               || substr(\(byteValues), MIN(COUNT(*), 4294967295) / 65536 % 256 + 1, 1)
               || substr(\(byteValues), MIN(COUNT(*), 4294967295) / 16777216 % 256 + 1, 1) AS bytes
        FROM v4_calls WHERE outcome = 'served' GROUP BY hour, reservation_id, model, owner, code;
        CREATE INDEX v4_codes_n ON v4_codes (hour, reservation_id, model, owner, n);
        CREATE TEMP TABLE v4_histograms AS
        WITH RECURSIVE joined (hour, reservation_id, model, owner, n, bytes) AS (
            SELECT hour, reservation_id, model, owner, n, bytes FROM v4_codes WHERE n = 1
            UNION ALL
            SELECT j.hour, j.reservation_id, j.model, j.owner, c.n, j.bytes || c.bytes
            FROM joined j JOIN v4_codes c
            ON c.hour = j.hour AND c.reservation_id = j.reservation_id AND c.model = j.model AND c.owner = j.owner AND c.n = j.n + 1
        )
        SELECT hour, reservation_id, model, owner, CAST(bytes AS BLOB) AS latency FROM joined j
        WHERE n = (SELECT MAX(n) FROM v4_codes c
                   WHERE c.hour = j.hour AND c.reservation_id = j.reservation_id AND c.model = j.model AND c.owner = j.owner);
        UPDATE usage_hours SET latency = h.latency FROM v4_histograms h
        WHERE h.hour = usage_hours.hour AND h.reservation_id = usage_hours.reservation_id
          AND h.model = usage_hours.model AND h.owner = usage_hours.owner;

        -- Activity spans: a call more than 60 s after the one before it starts a new span. Times
        -- are epoch seconds as Foundation made them from the stored text: whole seconds since
        -- 2001, then the milliseconds, then 2001's epoch seconds.
        INSERT INTO reservation_activity (reservation_id, first_call, last_call)
        SELECT reservation_id, MIN(t), MAX(t) FROM (
            SELECT reservation_id, t, SUM(starts) OVER (PARTITION BY reservation_id ORDER BY t ROWS UNBOUNDED PRECEDING) AS span
            FROM (
                SELECT reservation_id, t,
                       CASE WHEN t - LAG(t) OVER (PARTITION BY reservation_id ORDER BY t) <= 60 THEN 0 ELSE 1 END AS starts
                FROM (
                    SELECT reservation_id,
                           (CAST(strftime('%s', at) AS INTEGER) - 978307200 + CAST(substr(at, 21) AS INTEGER) / 1000.0)
                           + 978307200 AS t
                    FROM invocations WHERE reservation_id IS NOT NULL AND outcome IN ('served', 'throttled')
                )
            )
        )
        GROUP BY reservation_id, span;

        DROP TABLE v4_decades;
        DROP TABLE v4_calls;
        DROP TABLE v4_served;
        DROP TABLE v4_costs;
        DROP TABLE v4_codes;
        DROP TABLE v4_histograms;
        """
}
