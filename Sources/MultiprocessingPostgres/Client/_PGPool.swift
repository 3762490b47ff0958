import Synchronization

/// A queue handle's connections to the server: up to `limit` at once, kept open between
/// operations, replaced when they fail (a server restart ends them all; the next
/// operation connects anew).
final class _PGPool: Sendable {
    let conninfo: String
    let limit: Int
    let connectTimeout: Duration

    private struct State {
        var idle: [_PGConnection] = []
        /// Connections made or being made, idle or in use.
        var open = 0
        var closed = false
    }

    private let state = Mutex(State())
    /// Fired when a connection is given back or given up: a place may be free.
    private let returned = _Signal()

    init(conninfo: String, limit: Int, connectTimeout: Duration) {
        self.conninfo = conninfo
        self.limit = limit
        self.connectTimeout = connectTimeout
    }

    /// Runs `body` on a connection of the pool: an idle one, a new one when fewer than
    /// `limit` are open, or the first one given back.
    ///
    /// Waiting for a connection ends at once when the task is cancelled. `body` runs in a task
    /// of its own, which the caller's cancellation does not reach: a statement once sent is
    /// read to its end (milliseconds), so that no connection is left halfway through one.
    /// - Throws: `.closed` once `close()` was called; `_PGError` `.connect`; what `body` throws;
    ///   `CancellationError`.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (_PGConnection) async throws -> T) async throws -> T {
        let connection = try await take()
        defer { giveBack(connection) }
        return try await Task { try await body(connection) }.value
    }

    private enum Take {
        case idle(_PGConnection)
        case connect
        case wait
    }

    private func take() async throws -> _PGConnection {
        while true {
            let seen = returned.generation
            switch try nextTake() {
            case .idle(let connection):
                return connection
            case .connect:
                do {
                    return try await _PGConnection.connect(conninfo, timeout: connectTimeout)
                } catch {
                    state.withLock { $0.open -= 1 }
                    returned.fire()
                    throw error
                }
            case .wait:
                await returned.wait(after: seen, atMost: .seconds(1))
                try Task.checkCancellation()
            }
        }
    }

    /// What `take` does next, decided under the lock. A function of its own, not a closure
    /// in `take`: Swift 6.3's optimizer crashes splitting `take` around a closure with a typed
    /// throw inside the lock.
    private func nextTake() throws -> Take {
        while true {
            let take = state.withLock { state -> Take? in
                guard !state.closed else { return nil }
                if let connection = state.idle.popLast() { return .idle(connection) }
                guard state.open < limit else { return .wait }
                state.open += 1
                return .connect
            }
            guard let take else { throw DurableQueueError(.closed, "the queue was closed") }
            // Looked at outside the lock: it reads the socket, and a dead one is finished here.
            if case .idle(let connection) = take, !connection.isReusable {
                state.withLock { $0.open -= 1 }  // the server ended it (a restart)
                continue
            }
            return take
        }
    }

    private func giveBack(_ connection: _PGConnection) {
        let reusable = connection.isReusable
        state.withLock { state in
            if reusable && !state.closed {
                state.idle.append(connection)
            } else {
                state.open -= 1
            }
        }
        returned.fire()
    }

    /// Closes the idle connections; those in use close when given back. Later takes throw `.closed`.
    func close() {
        let idle = state.withLock { state in
            state.closed = true
            state.open -= state.idle.count
            defer { state.idle = [] }
            return state.idle
        }
        _ = idle  // freed here: PQfinish in their deinit
        returned.fire()
    }
}
