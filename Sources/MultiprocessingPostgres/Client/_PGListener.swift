import Synchronization
import Multiprocessing

/// A queue handle's LISTEN connection, made when a wait first needs it and listening only
/// to the channels waits have asked for, while they ask. Every commit's NOTIFY wakes each
/// backend that listens to its channel and, through it, each listening client: a producer
/// that never waits for room, or a consumer that has not found the queue empty for a
/// while (`linger`), listens to nothing and costs the server nothing per item.
///
/// Notifications are lost while the connection is down: on each new LISTEN the channel's
/// signal fires, so that its waiters look again (they also poll).
final class _PGListener: Sendable {
    private struct State {
        /// Channels waits asked for, with their signals and when they were last asked for.
        var signals: [String: _Signal] = [:]
        var lastAsked: [String: ContinuousClock.Instant] = [:]
        var task: Task<Void, Never>?
        /// The listening connection's socket while it waits, to wake it for a new channel.
        var socket: CInt?
        /// A channel was asked for since the listening task last looked.
        var asked = false
        var closed = false
    }

    private let conninfo: String
    private let connectTimeout: Duration
    /// How long a channel no wait asked for is still listened to. A waiter asks again before
    /// each wait, and waits at most its poll interval: twice that never drops a channel
    /// under a waiter.
    private let linger: Duration
    private let state = Mutex(State())

    init(conninfo: String, connectTimeout: Duration, linger: Duration) {
        self.conninfo = conninfo
        self.connectTimeout = connectTimeout
        self.linger = linger
    }

    /// Ends the listening task without waiting: for a queue dropped without `close()` (the
    /// task holds this listener, so it cannot wait for the deinit).
    func cancel() {
        state.withLock { state in
            state.closed = true
            return state.task
        }?.cancel()
    }

    /// The signal that fires on each notification of `channel`; listening starts with the
    /// first call for it (and the listening connection with the first call of all).
    func signal(for channel: String) -> _Signal {
        let (signal, socket) = state.withLock { state -> (_Signal, CInt?) in
            state.lastAsked[channel] = .now
            if let signal = state.signals[channel] { return (signal, nil) }
            let signal = _Signal()
            state.signals[channel] = signal
            state.asked = true
            if state.task == nil && !state.closed {
                state.task = Task { [self] in await run() }
            }
            return (signal, state.socket)
        }
        // A new channel: the listening task is woken to LISTEN to it.
        if let socket { _wakeDescriptorWaiters(socket) }
        return signal
    }

    /// Whether a wait has asked for `channel` already.
    func isListening(to channel: String) -> Bool {
        state.withLock { $0.signals[channel] != nil }
    }

    /// The generation of `channel`'s signal, if it has one, without asking for it: for a
    /// look at the database that may not be followed by a wait (asking keeps the channel
    /// listened to; only waits should).
    func generation(of channel: String) -> UInt64 {
        state.withLock { $0.signals[channel] }?.generation ?? 0
    }

    /// Ends the listening connection and waits for its task; fires every signal, so that
    /// waiters look again (and find their queue closed).
    func close() async {
        let task = state.withLock { state in
            state.closed = true
            return state.task
        }
        task?.cancel()
        await task?.value
        for signal in state.withLock({ Array($0.signals.values) }) { signal.fire() }
    }

    private func run() async {
        while !Task.isCancelled {
            do {
                let connection = try await _PGConnection.connect(conninfo, timeout: connectTimeout)
                var listening: Set<String> = []
                defer { state.withLock { $0.socket = nil } }
                while true {
                    let now = ContinuousClock.now
                    let (wanted, idle) = state.withLock { state in
                        state.asked = false
                        // Channels no wait asked for in `linger` are let go (asked again, they
                        // come back as new ones).
                        let idle = state.lastAsked.filter { now - $0.value > linger }.map(\.key)
                        for channel in idle {
                            state.signals[channel] = nil
                            state.lastAsked[channel] = nil
                        }
                        return (state.signals, idle)
                    }
                    for channel in idle where listening.contains(channel) {
                        // Asked for again since: listened to still, no UNLISTEN and LISTEN.
                        if state.withLock({ $0.signals[channel] != nil }) { continue }
                        try await connection.execute("UNLISTEN \"\(channel)\"")
                        listening.remove(channel)
                    }
                    for (channel, signal) in wanted where !listening.contains(channel) {
                        // Channel names are the queue's (characters that need no quoting).
                        try await connection.execute("LISTEN \"\(channel)\"")
                        listening.insert(channel)
                        signal.fire()  // what was sent before this LISTEN is looked at again
                    }
                    // Notifications read with a statement's reply wait in libpq: taken first.
                    for channel in connection.takeNotifications() { wanted[channel]?.fire() }
                    state.withLock { $0.socket = connection.socket }
                    // Ends at a notification, when a new channel is asked for (looked at once
                    // the wait is registered, so none asked for meanwhile is missed), or in
                    // time to let go of a channel no longer asked for.
                    try await connection.awaitInput(timeout: listening.isEmpty ? .seconds(60) : linger) {
                        self.state.withLock { $0.asked }
                    }
                    for channel in connection.takeNotifications() { wanted[channel]?.fire() }
                }
            } catch is CancellationError {
                return
            } catch {
                // Polling covers the gap; try again in a second.
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
