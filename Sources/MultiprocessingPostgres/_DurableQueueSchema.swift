/// The tables every ``DurableQueue`` shares, keyed by queue name, and their version.
///
/// - `durable_queue_items`: one row per item not yet acknowledged. `visible_at` is when the
///   item may be leased: its put time, then its lease deadline. A lease is a fresh
///   `lease_token`; `attempts` counts deliveries.
/// - `durable_queue_dead_letters`: items whose payload did not decode, with the error.
/// - `durable_queue_schema`: one row, the version, so that a later version can migrate.
enum _DurableQueueSchema {
    static let version = 1

    /// Serializes schema creation between processes: concurrent `CREATE TABLE IF NOT EXISTS`
    /// of the same table can fail on a unique index of the catalog.
    private static let advisoryLockKey: Int64 = 0x4471_7565_7565_0001

    /// Creates the tables if missing and checks the version, in one transaction.
    static func ensure(on connection: _PGConnection) async throws {
        // Looked at first, without a lock: when the schema is there, nothing more. The DDL
        // below takes a lock on the items table (CREATE INDEX IF NOT EXISTS takes it before
        // it finds the index there) that would make every put and get wait behind any open
        // write, for each new handle.
        do {
            let found = try await connection.execute("SELECT max(version) FROM durable_queue_schema").integer(0, 0)
            if found == Int64(version) { return }
        } catch let error as _PGError where error.sqlState == "42P01" {
            // undefined_table: a database no queue has used yet.
        }
        try await connection.transaction {
            try await connection.execute("SELECT pg_advisory_xact_lock($1::bigint)", [.integer(advisoryLockKey)])
            try await connection.execute("CREATE TABLE IF NOT EXISTS durable_queue_schema (version integer NOT NULL)")
            let rows = try await connection.execute("SELECT max(version) FROM durable_queue_schema")
            let found = try rows.integer(0, 0)
            if let found, found > version {
                throw DurableQueueError(.schemaVersion, """
                    the database holds DurableQueue schema version \(found); this library knows \
                    version \(version) and older
                    """)
            }
            if found == nil {
                try await connection.execute("INSERT INTO durable_queue_schema (version) VALUES ($1)", [.integer(version)])
            }
            try await connection.execute("""
                CREATE TABLE IF NOT EXISTS durable_queue_items (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    queue text NOT NULL,
                    payload bytea NOT NULL,
                    enqueued_at timestamptz NOT NULL DEFAULT now(),
                    visible_at timestamptz NOT NULL DEFAULT now(),
                    attempts integer NOT NULL DEFAULT 0,
                    lease_token uuid
                )
                """)
            // The claim's scan: the oldest item of a queue.
            try await connection.execute("""
                CREATE INDEX IF NOT EXISTS durable_queue_items_queue_id ON durable_queue_items (queue, id)
                """)
            try await connection.execute("""
                CREATE TABLE IF NOT EXISTS durable_queue_dead_letters (
                    id bigint PRIMARY KEY,
                    queue text NOT NULL,
                    payload bytea NOT NULL,
                    enqueued_at timestamptz NOT NULL,
                    attempts integer NOT NULL,
                    error text NOT NULL,
                    failed_at timestamptz NOT NULL DEFAULT now()
                )
                """)
        }
    }
}
