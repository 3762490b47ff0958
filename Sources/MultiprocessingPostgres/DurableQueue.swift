import Synchronization

/// A queue of `Codable` items in PostgreSQL, shared by any number of processes on any number
/// of machines, that outlives all of them.
///
/// Items are MessagePack in a `bytea` column of `durable_queue_items`, a table every queue of
/// the database shares, keyed by the queue's name. `get` leases the oldest item it can
/// (`FOR UPDATE SKIP LOCKED`, so consumers never wait for each other) until a deadline;
/// `taskDone(_:)` acknowledges the delivery and deletes the item. An item not acknowledged
/// before its deadline (its consumer died or was slow) is delivered again, with a higher
/// `attempt`: delivery is at-least-once. An item that does not decode as `Element` is moved to
/// `durable_queue_dead_letters` with the error, and the queue goes on.
///
/// Waits are woken by LISTEN/NOTIFY on channels of the queue, with polling every
/// `pollInterval` as the fallback (and at the earliest lease deadline); no wait holds a thread.
/// A handle listens only once one of its waits needed it.
///
/// The handle talks to the server through libpq, PostgreSQL's own client library: up to
/// `connections` connections for its operations, and one that listens once a wait needs it. When the server
/// restarts, the next operation connects again; see `DurableQueueError.Code.connectionLost`
/// for an operation the failure caught halfway. Call `close()` when done.
public final class DurableQueue<Element: Codable & Sendable>: Sendable {
    /// The queue's name: its items are the rows of `durable_queue_items` with this `queue`.
    public let name: String
    /// At most this many items not yet acknowledged (`count`); `put` waits for room.
    /// 0: unbounded. A setting of this handle, not of the queue in the database.
    public let maxsize: Int
    /// How long a delivery is leased before the item is delivered again.
    public let leaseDuration: Duration
    /// How often a waiting `get`, `put` or `join` looks at the database when no
    /// notification came (notifications are lost while the connection is down).
    public let pollInterval: Duration
    /// How long an operation goes on trying to reach a server that does not answer
    /// (one that restarts, say) before it throws `.database`.
    public let reconnectTimeout: Duration

    let pool: _PGPool
    /// NOTIFY channels: one for "an item was put (or given back)", for `get`; one for "an
    /// item left the queue" (acknowledged, or moved to the dead letters), for `put` on a
    /// bounded queue and for `join`. Apart, so that each wait hears only what it waits for.
    let putChannel: String
    let leftChannel: String
    let listener: _PGListener
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var schemaReady = false
    }

    /// A handle on the queue `name` of the database at `url`. The tables are created on first
    /// use; the database must exist.
    ///
    /// - Parameters:
    ///   - url: `postgres://user:password@host:port/database?sslmode=...`, or any connection
    ///     string libpq takes (`host=... dbname=...`); libpq's environment variables
    ///     (`PGPASSWORD`, `PGSSLMODE`, …) and `~/.pgpass` fill in what it leaves out.
    ///   - name: 1 to 48 characters from `A-Z a-z 0-9 _ - .`.
    ///   - maxsize: at most this many unacknowledged items; 0 (the default) for no bound.
    ///   - leaseDuration: how long a consumer has to acknowledge a delivery (default 30 s).
    ///   - pollInterval: how often waits look again without a notification (default 1 s).
    ///   - connections: at most this many connections for this handle's operations, besides
    ///     the one that listens (default 4).
    ///   - reconnectTimeout: how long an operation tries to reach the server (default 30 s).
    /// - Throws: `DurableQueueError` `.invalidURL`, `.invalidName` or `.invalidArgument`.
    ///   Nothing is connected yet: connection failures come from the first operation.
    public init(
        url: String,
        name: String,
        maxsize: Int = 0,
        leaseDuration: Duration = .seconds(30),
        pollInterval: Duration = .seconds(1),
        connections: Int = 4,
        reconnectTimeout: Duration = .seconds(30)
    ) throws(DurableQueueError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        guard (1...48).contains(name.count), name.allSatisfy(allowed.contains) else {
            throw DurableQueueError(.invalidName, """
                queue name \(String(reflecting: name)) must be 1 to 48 characters from A-Z a-z 0-9 _ - .
                """)
        }
        guard maxsize >= 0 else {
            throw DurableQueueError(.invalidArgument, "maxsize must be 0 (unbounded) or more, not \(maxsize)")
        }
        guard leaseDuration > .zero, pollInterval > .zero, reconnectTimeout > .zero else {
            throw DurableQueueError(.invalidArgument, "leaseDuration, pollInterval and reconnectTimeout must be positive")
        }
        guard connections >= 1 else {
            throw DurableQueueError(.invalidArgument, "connections must be 1 or more, not \(connections)")
        }
        do throws(_PGError) {
            try _PGConnection.validate(url)
        } catch {
            throw DurableQueueError(.invalidURL, "not a PostgreSQL URL or connection string: \(error.message)")
        }
        self.name = name
        self.maxsize = maxsize
        self.leaseDuration = leaseDuration
        self.pollInterval = pollInterval
        self.reconnectTimeout = reconnectTimeout
        // The name's characters need no quoting, and the longest name's channel fits
        // PostgreSQL's 63 bytes.
        self.putChannel = "dq_put." + name
        self.leftChannel = "dq_left." + name
        let connectTimeout = min(reconnectTimeout, .seconds(10))
        self.pool = _PGPool(conninfo: url, limit: connections, connectTimeout: connectTimeout)
        self.listener = _PGListener(conninfo: url, connectTimeout: connectTimeout, linger: max(.seconds(2), pollInterval * 2))
    }

    deinit {
        pool.close()
        listener.cancel()
    }


    /// Ends the listening connection and the idle ones, and waits for the listener to stop.
    /// Operations after it throw `.closed`. One in flight is not waited for: it ends on its
    /// own (its statement runs to its end), and its connection is closed when it does.
    public func close() async {
        state.withLock { $0.closed = true }
        pool.close()
        await listener.close()  // wakes waiters, so that they see `closed`
    }

    /// Throws `.closed` after `close()`; creates the schema on first use.
    func prepare() async throws {
        let ready = try state.withLock { state throws(DurableQueueError) -> Bool in
            if state.closed { throw DurableQueueError(.closed, "the queue \(name) was closed") }
            return state.schemaReady
        }
        if ready { return }
        try await database("creating the DurableQueue schema", repeatable: true) { connection in
            try await _DurableQueueSchema.ensure(on: connection)
        }
        state.withLock { $0.schemaReady = true }
    }

    /// Runs `attempt` until it gives a value, waiting between tries: woken by a notification
    /// on `channel`, or after `pollInterval` (or `sooner()`, when it gives less, but at least
    /// 10 ms), and throwing `timedOut()` once `deadline` has passed. The get, put and join
    /// loops.
    ///
    /// Listening to `channel` starts when a try first finds nothing, and then it tries once
    /// more before it waits (what came meanwhile is not missed: the LISTEN fires the
    /// signal). An operation that never waits makes the server notify no one here; one
    /// that waits asks for the channel again before each wait, which keeps it listened to.
    func retrying<T>(
        until deadline: ContinuousClock.Instant?, on channel: String,
        else timedOut: @autoclosure () -> DurableQueueError,
        sooner: () async throws -> Duration? = { nil },
        _ attempt: () async throws -> T?
    ) async throws -> T {
        var listening = listener.isListening(to: channel)
        while true {
            // Read without asking: a try that succeeds must not keep the channel listened to.
            let seen = listening ? listener.generation(of: channel) : 0
            if let value = try await attempt() { return value }
            var wait = pollInterval
            if let deadline {
                let remaining = deadline - .now
                guard remaining > .zero else { throw timedOut() }
                wait = min(wait, remaining)
            }
            if !listening {
                listening = true
                _ = listener.signal(for: channel)
                continue
            }
            if let sooner = try await sooner(), sooner < wait { wait = max(sooner, .milliseconds(10)) }
            await listener.signal(for: channel).wait(after: seen, atMost: wait)
            try Task.checkCancellation()
        }
    }

    /// Runs `body` on a connection of the pool. A connection that cannot be made is tried
    /// again, with a growing pause, until `reconnectTimeout`; so is a connection lost during
    /// `body` when it is `repeatable` (its statements do no harm run twice). Otherwise a
    /// lost connection throws `.connectionLost`.
    func database<T: Sendable>(
        _ doing: @autoclosure () -> String, repeatable: Bool = false,
        _ body: @escaping @Sendable (_PGConnection) async throws -> T
    ) async throws -> T {
        var pause = Duration.milliseconds(50)
        var giveUp: ContinuousClock.Instant?
        while true {
            do {
                return try await pool.withConnection(body)
            } catch let error as _PGError {
                let again = error.kind == .connect || (error.kind == .connectionLost && repeatable)
                let giveUpAt = giveUp ?? ContinuousClock.now + reconnectTimeout
                giveUp = giveUpAt
                guard again, ContinuousClock.now + pause < giveUpAt else {
                    throw DurableQueueError(doing(), error, queue: name)
                }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(1))
            } catch let error as DurableQueueError where error.code == .closed {
                throw DurableQueueError(.closed, "the queue \(name) was closed")
            }
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
