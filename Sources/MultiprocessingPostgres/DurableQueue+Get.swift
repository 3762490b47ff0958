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
        try await prepare()
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let seen = itemPut.generation
            if let delivery = try await claim() { return delivery }
            var wait = pollInterval
            if let deadline {
                let remaining = deadline - .now
                guard remaining > .zero else {
                    throw DurableQueueError(.empty, "the queue \(name) has no item to lease")
                }
                wait = min(wait, remaining)
            }
            if let lease = try await untilNextLeaseRunsOut(), lease < wait {
                // At least 10 ms: an item that is visible but skipped (another consumer is
                // leasing it this moment) must not make this a busy loop.
                wait = max(lease, .milliseconds(10))
            }
            await itemPut.wait(after: seen, atMost: wait)
            try Task.checkCancellation()
            try await prepare()
        }
    }

    /// Leases the oldest item if one can be leased now.
    /// - Throws: `DurableQueueError` `.empty` when none can; as `get(timeout:)` otherwise.
    public func getNowait() async throws -> Delivery {
        try await get(timeout: .zero)
    }

    /// One claim: the oldest visible item of the queue, skipping rows another transaction
    /// is claiming, leased in the same statement (a new token, a deadline, one more attempt).
    /// Repeated after a lost connection: a claim that committed unseen only delays its item
    /// until that lease runs out.
    private func claim() async throws -> Delivery? {
        let parameters: [_PGParameter] = [.string(name), .double(leaseDuration.seconds)]
        let leased = try await database("leasing an item", repeatable: true) { connection in
            let rows = try await connection.execute("""
                WITH next AS (
                    SELECT id FROM durable_queue_items
                    WHERE queue = $1 AND visible_at <= now()
                    ORDER BY id
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED)
                UPDATE durable_queue_items AS item
                SET visible_at = now() + make_interval(secs => $2::float8),
                    attempts = item.attempts + 1,
                    lease_token = gen_random_uuid()
                FROM next
                WHERE item.id = next.id
                RETURNING item.id, item.payload, item.attempts, item.visible_at, item.lease_token
                """, parameters)
            guard rows.count == 1 else { return nil as _Leased? }
            guard let id = try rows.integer(0, 0), let payload = try rows.bytes(0, 1),
                  let attempt = try rows.integer(0, 2), let deadline = try rows.date(0, 3),
                  let token = try rows.uuid(0, 4)
            else { throw _PGError(.server, "a leased row has a NULL column") }
            return _Leased(id: id, payload: payload, attempt: Int(attempt), deadline: deadline, token: token)
        }
        guard let leased else { return nil }
        let value: Element
        do {
            value = try MessagePackDecoder().decode(Element.self, from: leased.payload)
        } catch {
            try await moveToDeadLetters(id: leased.id, leaseToken: leased.token, error: error)
            throw DurableQueueError(.undecodable, """
                item \(leased.id) of the queue \(name) did not decode as \(Element.self) and was moved to \
                durable_queue_dead_letters: \(error)
                """, itemID: leased.id, underlyingError: error)
        }
        return Delivery(value: value, attempt: leased.attempt, leaseDeadline: leased.deadline, id: leased.id,
                        leaseToken: leased.token)
    }

    /// Moves a leased item to the dead letters with `error`, in one statement (so one
    /// transaction), and notifies: a place in the queue is free. Repeated after a lost
    /// connection: once the row has moved, the statement finds nothing to move.
    private func moveToDeadLetters(id: Int64, leaseToken: UUID, error: any Error) async throws {
        let parameters: [_PGParameter] = [.integer(id), .uuid(leaseToken), .string(String(describing: error)), .string(channel)]
        _ = try await database("moving item \(id) to the dead letters", repeatable: true) { connection in
            try await connection.execute("""
                WITH moved AS (
                    DELETE FROM durable_queue_items WHERE id = $1 AND lease_token = $2
                    RETURNING id, queue, payload, enqueued_at, attempts),
                dead AS (
                    INSERT INTO durable_queue_dead_letters (id, queue, payload, enqueued_at, attempts, error)
                    SELECT id, queue, payload, enqueued_at, attempts, $3 FROM moved
                    RETURNING id)
                SELECT id, pg_notify($4, 'left') FROM dead
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
        return seconds.map { Duration.seconds($0) }
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
