import MessagePack

extension DurableQueue {
    /// Puts `value` at the back of the queue. On a full queue (`maxsize` items not yet
    /// acknowledged), waits for room: woken when an item is acknowledged, or by polling.
    ///
    /// - Parameters:
    ///   - value: the item, stored as MessagePack.
    ///   - timeout: how long to wait for room; nil (the default) waits for ever.
    /// - Throws: the encoder's `EncodingError`; `DurableQueueError` `.full` when the timeout
    ///   passed, `.closed`, `.database`, `.connectionLost` (the item may or may not have been
    ///   put); `CancellationError` when the task is cancelled.
    public func put(_ value: Element, timeout: Duration? = nil) async throws {
        try await put(contentsOf: CollectionOfOne(value), timeout: timeout)
    }

    /// Puts every value of `values` at the back of the queue, in order, in one transaction:
    /// all of them or none. One statement for all, so a batch costs about what one item does
    /// (pgmq's `send_batch`, River's `InsertMany`). On a bounded queue, waits until all fit.
    ///
    /// - Parameters:
    ///   - values: the items; none is a call that does nothing.
    ///   - timeout: how long to wait for room; nil (the default) waits for ever.
    /// - Throws: as `put(_:timeout:)`; `.invalidArgument` when there are more values than
    ///   `maxsize`, since they could never fit.
    public func put(contentsOf values: some Sequence<Element>, timeout: Duration? = nil) async throws {
        let encoder = MessagePackEncoder()
        let payloads = try values.map { try encoder.encode($0) }
        guard !payloads.isEmpty else { return }
        guard maxsize == 0 || payloads.count <= maxsize else {
            throw DurableQueueError(.invalidArgument, """
                \(payloads.count) items can never fit in the queue \(name), whose maxsize is \(maxsize)
                """)
        }
        // One item: a plain VALUES (what pgbench's script for one item runs too); more: one
        // bytea[] for all.
        let parameter = payloads.count == 1 ? _PGParameter.binary(payloads[0]) : try _PGParameter.byteaArray(payloads)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        try await retrying(until: deadline, on: leftChannel, else: DurableQueueError(.full, """
            the queue \(name) has no room for \(payloads.count) more of its maxsize of \(maxsize) items
            """)) { () async throws -> Void? in
            try await prepare()
            return try await insert(parameter, count: payloads.count, deadline: deadline) ? () : nil
        }
    }

    /// Puts `value` if the queue has room now.
    /// - Throws: `DurableQueueError` `.full` when it has none; as `put(_:timeout:)` otherwise.
    public func putNowait(_ value: Element) async throws {
        try await put(value, timeout: .zero)
    }

    /// Inserts the items and notifies the queue's channel, in one transaction; with a
    /// `maxsize`, only if all fit. Returns whether it inserted. Not repeated after a lost
    /// connection: the insert may have committed.
    private func insert(_ payloads: _PGParameter, count: Int, deadline: ContinuousClock.Instant?) async throws -> Bool {
        // WITH ORDINALITY and ORDER BY: the ids, so the order of delivery, follow the array's.
        // A data-modifying WITH runs whether or not it is read; one notification for all.
        let insertAndNotify = count == 1 ? """
            WITH items AS (
                INSERT INTO durable_queue_items (queue, payload) VALUES ($1, $2) RETURNING id)
            SELECT (SELECT count(*) FROM items), pg_notify($3, '')
            """ : """
            WITH items AS (
                INSERT INTO durable_queue_items (queue, payload)
                SELECT $1, payload FROM unnest($2::bytea[]) WITH ORDINALITY AS batch(payload, n) ORDER BY n
                RETURNING id)
            SELECT (SELECT count(*) FROM items), pg_notify($3, '')
            """
        let parameters: [_PGParameter] = [.string(name), payloads, .string(putChannel)]
        let (name, maxsize) = (name, maxsize)
        return try await database("putting \(count == 1 ? "an item" : "\(count) items")") { connection in
            if maxsize == 0 {
                // One statement: its own transaction, and the NOTIFY goes out at its commit.
                try await connection.execute(insertAndNotify, parameters)
                return true
            }
            return try await connection.transaction {
                // Puts to this queue take turns from here to the commit, so that two of
                // them cannot both see the last free place. A put with a timeout waits for
                // its turn no longer than the time it has left, but at least a second (the
                // turns of other puts take milliseconds: a putNowait must not fail for
                // them), by lock_timeout for this transaction only; then it counts as a put
                // that found no room. Past lock_timeout's own limit (24 days), no limit.
                if let deadline {
                    let left = max(1000, (deadline - .now).seconds * 1000)
                    if left < Double(Int32.max) {
                        try await connection.execute("SELECT set_config('lock_timeout', $1, true)", [.text("\(Int(left))ms")])
                    }
                }
                do {
                    try await connection.execute(
                        "SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
                        [.integer(Self.putLockClass), .string(name)])
                } catch let error as _PGError where error.sqlState == "55P03" {
                    return false  // lock_not_available: the transaction rolls back
                }
                // A statement after the lock: READ COMMITTED gives it a snapshot that sees
                // every put committed before.
                let held = try await connection.execute(
                    "SELECT count(*) FROM durable_queue_items WHERE queue = $1", [.string(name)]
                ).integer(0, 0) ?? 0
                guard held + Int64(count) <= Int64(maxsize) else { return false }
                try await connection.execute(insertAndNotify, parameters)
                return true
            }
        }
    }

    /// The first key of the put lock (`pg_advisory_xact_lock(int, int)`), the second being
    /// the queue name's hash: keeps these locks apart from other users' advisory locks.
    static var putLockClass: Int32 { 0x4451_0001 }
}
