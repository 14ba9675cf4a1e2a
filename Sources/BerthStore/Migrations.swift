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
            try db.execute(sql: """
                CREATE UNIQUE INDEX reservations_live_name ON reservations(name)
                WHERE status IN ('pending', 'active')
                """)
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
        return migrator
    }
}
