import MessagePack

extension DurableQueue {
    /// Puts `value` at the back of the queue. On a full queue (`maxsize` items not yet
    /// acknowledged), waits for room: woken when an item is acknowledged, or by polling.
    ///
    /// - Parameter timeout: how long to wait for room; nil (the default) waits for ever.
    /// - Throws: the encoder's `EncodingError`; `DurableQueueError` `.full` when the timeout
    ///   passed, `.closed`, `.database`, `.connectionLost` (the item may or may not have been
    ///   put); `CancellationError` when the task is cancelled.
    public func put(_ value: Element, timeout: Duration? = nil) async throws {
        let payload = try MessagePackEncoder().encode(value)
        try await prepare()
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let seen = itemLeft.generation
            if try await insert(payload) { return }
            var wait = pollInterval
            if let deadline {
                let remaining = deadline - .now
                guard remaining > .zero else {
                    throw DurableQueueError(.full, "the queue \(name) holds its maxsize of \(maxsize) items")
                }
                wait = min(wait, remaining)
            }
            await itemLeft.wait(after: seen, atMost: wait)
            try Task.checkCancellation()
            try await prepare()
        }
    }

    /// Puts `value` if the queue has room now.
    /// - Throws: `DurableQueueError` `.full` when it has none; as `put(_:timeout:)` otherwise.
    public func putNowait(_ value: Element) async throws {
        try await put(value, timeout: .zero)
    }

    /// Inserts the item and notifies the queue's channel, in one transaction; with a
    /// `maxsize`, only if there is room. Returns whether it inserted. Not repeated after a
    /// lost connection: the insert may have committed.
    private func insert(_ payload: [UInt8]) async throws -> Bool {
        let insertAndNotify = """
            WITH item AS (
                INSERT INTO durable_queue_items (queue, payload) VALUES ($1, $2) RETURNING id)
            SELECT id, pg_notify($3, 'put') FROM item
            """
        let parameters: [_PGParameter] = [.string(name), .binary(payload), .string(channel)]
        let (name, maxsize) = (name, maxsize)
        return try await database("putting an item") { connection in
            if maxsize == 0 {
                // One statement: its own transaction, and the NOTIFY goes out at its commit.
                try await connection.execute(insertAndNotify, parameters)
                return true
            }
            return try await connection.transaction {
                // Puts to this queue take turns from here to the commit, so that two of
                // them cannot both see the last free place.
                try await connection.execute(
                    "SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
                    [.integer(Self.putLockClass), .string(name)])
                // A statement after the lock: READ COMMITTED gives it a snapshot that sees
                // every put committed before.
                let count = try await connection.execute(
                    "SELECT count(*) FROM durable_queue_items WHERE queue = $1", [.string(name)]
                ).integer(0, 0) ?? 0
                guard count < maxsize else { return false }
                try await connection.execute(insertAndNotify, parameters)
                return true
            }
        }
    }

    /// The first key of the put lock (`pg_advisory_xact_lock(int, int)`), the second being
    /// the queue name's hash: keeps these locks apart from other users' advisory locks.
    static var putLockClass: Int32 { 0x4451_0001 }
}
