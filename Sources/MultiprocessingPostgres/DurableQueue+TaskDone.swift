extension DurableQueue {
    /// Acknowledges a delivery: deletes its item, if this delivery's lease still holds it.
    ///
    /// - Throws: `DurableQueueError` `.leaseLost` when the lease ran out and the item was
    ///   leased again (it will be, or was, delivered again) or acknowledged by that other
    ///   consumer; `.closed`, `.database`, `.connectionLost` (the acknowledgement may or may
    ///   not have been made: the item may be delivered again).
    public func taskDone(_ delivery: Delivery) async throws {
        try await taskDone(CollectionOfOne(delivery))
    }

    /// Acknowledges deliveries together, in one statement: deletes each item whose lease
    /// still holds it.
    ///
    /// - Throws: as `taskDone(_:)`. `.leaseLost` names the first delivery whose lease was
    ///   lost, after every other one was acknowledged.
    public func taskDone(_ deliveries: some Sequence<Delivery>) async throws {
        let deliveries = Array(deliveries)
        guard !deliveries.isEmpty else { return }
        try await prepare()
        // Deleted only while the row still holds this lease's token: a lease that ran out
        // and was taken by another consumer has a new token.
        // Not repeated after a lost connection: the delete may have committed, and a second
        // one would find nothing and say the lease was lost.
        let one = deliveries.count == 1
        let parameters: [_PGParameter] = one
            ? [.integer(deliveries[0].id), .uuid(deliveries[0].leaseToken), .string(leftChannel)]
            : [.integers(deliveries.map(\.id)), .uuids(deliveries.map(\.leaseToken)), .string(leftChannel)]
        // One: a plain equality (what pgbench's script for one item runs too); more: arrays.
        let sql = one ? """
            WITH done AS (
                DELETE FROM durable_queue_items WHERE id = $1 AND lease_token = $2
                RETURNING id)
            SELECT id, pg_notify($3, '') FROM done
            """ : """
            WITH done AS (
                DELETE FROM durable_queue_items AS item
                USING unnest($1::bigint[], $2::uuid[]) AS lease(id, token)
                WHERE item.id = lease.id AND item.lease_token = lease.token
                RETURNING item.id)
            SELECT id, pg_notify($3, '') FROM done
            """
        let what = one ? "item \(deliveries[0].id)" : "\(deliveries.count) items"
        let deleted = try await database("acknowledging \(what)") { connection in
            let rows = try await connection.execute(sql, parameters)
            return Set(try (0..<rows.count).compactMap { try rows.integer($0, 0) })
        }
        if let lost = deliveries.first(where: { !deleted.contains($0.id) }) {
            throw DurableQueueError(.leaseLost, """
                the lease on item \(lost.id) of the queue \(name) ran out (at \(lost.leaseDeadline)) \
                and another lease took it: the item will be, or was, delivered again
                """, itemID: lost.id)
        }
    }

    /// The items of the queue not yet acknowledged: waiting, and leased (by a live consumer
    /// or by one whose lease will run out). Not the dead letters. `SELECT count(*)` of the
    /// queue's rows in `durable_queue_items`.
    public var count: Int {
        get async throws {
            try await prepare()
            let name = name
            let count = try await database("counting the items", repeatable: true) { connection in
                try await connection.execute(
                    "SELECT count(*) FROM durable_queue_items WHERE queue = $1", [.string(name)]
                ).integer(0, 0)
            }
            return Int(count ?? 0)
        }
    }

    /// Waits until every item of the queue is acknowledged (`count` is 0): woken by
    /// acknowledgements, or by polling.
    ///
    /// - Parameter timeout: how long to wait; nil (the default) waits for ever.
    /// - Throws: `DurableQueueError` `.timedOut`, `.closed`, `.database`; `CancellationError`.
    public func join(timeout: Duration? = nil) async throws {
        var left = 0
        try await retrying(
            until: timeout.map { ContinuousClock.now + $0 }, on: leftChannel,
            else: DurableQueueError(.timedOut, "the queue \(name) still holds \(left) unacknowledged items")
        ) { () async throws -> Void? in
            left = try await count
            return left == 0 ? () : nil
        }
    }
}
