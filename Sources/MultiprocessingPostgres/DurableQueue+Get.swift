import Foundation
import MessagePack

extension DurableQueue {
    /// Leases the oldest item no one holds a lease on, waiting for one if there is none:
    /// woken by a put's notification, by polling, or when a lease runs out.
    ///
    /// Acknowledge the delivery with `taskDone(_:)` before its `leaseDeadline`; after it, the
    /// item is delivered again (to this or another consumer), with `attempt` one higher.
    ///
    /// - Parameter timeout: how long to wait; nil (the default) waits for ever.
    /// - Throws: `DurableQueueError` `.empty` when the timeout passed; `.undecodable` when the
    ///   item leased did not decode as `Element` (it was moved to the dead letters: call `get`
    ///   again for the next item); `.closed`, `.database`; `CancellationError`.
    public func get(timeout: Duration? = nil) async throws -> Delivery {
        let deliveries = try await get(upTo: 1, timeout: timeout)
        guard let delivery = deliveries.first else {
            throw DurableQueueError(.database, "a claim of one item returned none")
        }
        return delivery
    }

    /// Leases up to `maxCount` of the oldest items no one holds, in one statement, waiting
    /// only until there is at least one (pgmq's `read` with a quantity). They come in the
    /// order they were put; acknowledge them with `taskDone(_:)`, one by one or together.
    ///
    /// - Parameters:
    ///   - maxCount: at most this many items (1 or more).
    ///   - timeout: how long to wait for the first; nil (the default) waits for ever.
    /// - Throws: as `get(timeout:)`. When an item of the batch does not decode, it goes to the
    ///   dead letters, the others' leases are given back (they come in the next call, their
    ///   `attempt` unchanged), and the call throws `.undecodable` naming it.
    public func get(upTo maxCount: Int, timeout: Duration? = nil) async throws -> [Delivery] {
        guard maxCount >= 1 else {
            throw DurableQueueError(.invalidArgument, "get(upTo:) needs 1 or more, not \(maxCount)")
        }
        return try await retrying(
            until: timeout.map { ContinuousClock.now + $0 }, on: putChannel,
            else: DurableQueueError(.empty, "the queue \(name) has no item to lease"),
            // Until the earliest lease runs out, if sooner: its item is visible again then.
            // (At least 10 ms: an item visible but skipped, because another consumer is
            // leasing it this moment, must not make this a busy loop.)
            sooner: { try await untilNextLeaseRunsOut() }
        ) { () async throws -> [Delivery]? in
            try await prepare()
            let claimed = try await claim(maxCount)
            guard !claimed.isEmpty else { return nil }
            // Cancelled while the claim ran: the leases go back, so that a cancelled get
            // takes nothing (in a task of its own, which the cancellation cannot stop).
            if Task.isCancelled {
                let leases = claimed.map { (id: $0.id, token: $0.token) }
                await Task { try? await self.giveBack(leases) }.value
                throw CancellationError()
            }
            return try await decode(claimed)
        }
    }

    /// Leases the oldest item if one can be leased now.
    /// - Throws: `DurableQueueError` `.empty` when none can; as `get(timeout:)` otherwise.
    public func getNowait() async throws -> Delivery {
        try await get(timeout: .zero)
    }

    /// One claim: the oldest visible items of the queue, skipping rows another transaction
    /// is claiming, leased in the same statement (a new token, a deadline, one more attempt).
    /// Repeated after a lost connection: a claim that committed unseen only delays its items
    /// until that lease runs out.
    private func claim(_ maxCount: Int) async throws -> [_Leased] {
        let parameters: [_PGParameter] = [.string(name), .double(leaseDuration.seconds), .integer(maxCount)]
        let leased = try await database("leasing items", repeatable: true) { connection in
            let rows = try await connection.execute("""
                WITH next AS (
                    SELECT id FROM durable_queue_items
                    WHERE queue = $1 AND visible_at <= now()
                    ORDER BY id
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED)
                UPDATE durable_queue_items AS item
                SET visible_at = now() + make_interval(secs => $2::float8),
                    attempts = item.attempts + 1,
                    lease_token = gen_random_uuid()
                FROM next
                WHERE item.id = next.id
                RETURNING item.id, item.payload, item.attempts, item.visible_at, item.lease_token
                """, parameters)
            return try (0..<rows.count).map { row in
                guard let id = try rows.integer(row, 0), let payload = try rows.bytes(row, 1),
                      let attempt = try rows.integer(row, 2), let deadline = try rows.date(row, 3),
                      let token = try rows.uuid(row, 4)
                else { throw _PGError(.server, "a leased row has a NULL column") }
                return _Leased(id: id, payload: payload, attempt: Int(attempt), deadline: deadline, token: token)
            }
        }
        // RETURNING keeps no order: the ids give the order of the puts.
        return leased.sorted { $0.id < $1.id }
    }

    /// The claimed rows as deliveries; see `get(upTo:timeout:)` for a row that does not decode.
    private func decode(_ claimed: [_Leased]) async throws -> [Delivery] {
        let decoder = MessagePackDecoder()
        var deliveries: [Delivery] = []
        deliveries.reserveCapacity(claimed.count)
        for (index, leased) in claimed.enumerated() {
            do {
                let value = try decoder.decode(Element.self, from: leased.payload)
                deliveries.append(Delivery(value: value, attempt: leased.attempt, leaseDeadline: leased.deadline,
                                           id: leased.id, leaseToken: leased.token))
            } catch {
                try await moveToDeadLetters(id: leased.id, leaseToken: leased.token, error: error)
                try await giveBack(deliveries.map { ($0.id, $0.leaseToken) } + claimed[(index + 1)...].map { ($0.id, $0.token) })
                throw DurableQueueError(.undecodable, """
                    item \(leased.id) of the queue \(name) did not decode as \(Element.self) and was moved to \
                    durable_queue_dead_letters: \(error)
                    """, itemID: leased.id, underlyingError: error)
            }
        }
        return deliveries
    }

    /// Ends leases without a delivery: the items are visible again at once, their attempt
    /// as before. Repeated after a lost connection (a lease given back twice is given back).
    private func giveBack(_ leases: [(id: Int64, token: UUID)]) async throws {
        guard !leases.isEmpty else { return }
        let parameters: [_PGParameter] = [.integers(leases.map(\.id)), .uuids(leases.map(\.token)), .string(putChannel)]
        _ = try await database("giving back \(leases.count) leases", repeatable: true) { connection in
            try await connection.execute("""
                WITH released AS (
                    UPDATE durable_queue_items AS item
                    SET visible_at = now(), attempts = item.attempts - 1, lease_token = NULL
                    FROM unnest($1::bigint[], $2::uuid[]) AS lease(id, token)
                    WHERE item.id = lease.id AND item.lease_token = lease.token
                    RETURNING item.id)
                SELECT (SELECT count(*) FROM released), pg_notify($3, '')
                """, parameters).count
        }
    }

    /// Moves a leased item to the dead letters with `error`, in one statement (so one
    /// transaction), and notifies: a place in the queue is free. Repeated after a lost
    /// connection: once the row has moved, the statement finds nothing to move.
    private func moveToDeadLetters(id: Int64, leaseToken: UUID, error: any Error) async throws {
        let parameters: [_PGParameter] = [.integer(id), .uuid(leaseToken), .string(String(describing: error)), .string(leftChannel)]
        _ = try await database("moving item \(id) to the dead letters", repeatable: true) { connection in
            try await connection.execute("""
                WITH moved AS (
                    DELETE FROM durable_queue_items WHERE id = $1 AND lease_token = $2
                    RETURNING id, queue, payload, enqueued_at, attempts),
                dead AS (
                    INSERT INTO durable_queue_dead_letters (id, queue, payload, enqueued_at, attempts, error)
                    SELECT id, queue, payload, enqueued_at, attempts, $3 FROM moved
                    RETURNING id)
                SELECT id, pg_notify($4, '') FROM dead
                """, parameters).count
        }
    }

    /// How long until the earliest lease of the queue runs out (negative: an item is visible
    /// now), or nil when the queue holds no item.
    private func untilNextLeaseRunsOut() async throws -> Duration? {
        let name = name
        let seconds = try await database("reading the lease deadlines", repeatable: true) { connection in
            try await connection.execute("""
                SELECT extract(epoch FROM min(visible_at) - clock_timestamp())::float8
                FROM durable_queue_items WHERE queue = $1
                """, [.string(name)]).double(0, 0)
        }
        // Clamped: a row parked at 'infinity' must not trap the conversion to Duration.
        return seconds.map { Duration.seconds($0.isFinite ? min(max($0, -1e6), 1e6) : 1e6) }
    }
}

/// A claimed row, before its payload is decoded.
private struct _Leased: Sendable {
    let id: Int64
    let payload: [UInt8]
    let attempt: Int
    let deadline: Date
    let token: UUID
}
