import CSystemShims
import Glibc
import Synchronization
import SystemPackage

/// The one thread of this process that waits for descriptors on behalf of
/// suspended tasks, so that an `await` on a queue, a connection or a child costs no
/// thread of Swift's cooperative pool (about as many threads as cores: two here).
///
/// A waiting task registers its descriptor (a queue's readiness eventfd, a
/// connection's socket or pipe, a child's pidfd), tries its operation without
/// blocking, and suspends only if that found nothing; an event on the descriptor,
/// its deadline, or a once-a-second tick resumes it, and it tries again. Because
/// it registers before it tries, an event between the try and the suspension is
/// not lost: it marks the waiter, and the suspension returns at once.
///
/// Descriptors are watched edge-triggered (`EPOLLET`): every write to an eventfd
/// or arrival of bytes is an event, whether or not someone else reset the
/// descriptor in between (a queue's blocking `poll` drains its eventfd). Nothing
/// here reads or drains a descriptor: each operation does its own I/O.
final class _Reactor: Sendable {
    /// Why a suspended waiter was resumed.
    enum Wake: Sendable {
        /// Its descriptor had an event, or someone signalled it (`wakeAll`).
        case event
        /// Its deadline passed, or a second went by without an event.
        case tick
    }

    private struct Waiter {
        let fd: CInt
        var deadline: _Deadline?
        /// An event came while the waiter was not suspended: its next wait returns at once.
        var pending: Wake?
        var cancelled = false
        var continuation: CheckedContinuation<Wake, any Error>?
    }

    private struct State {
        var nextID: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        /// Each watched descriptor's events and waiters (one epoll entry per descriptor).
        var sources: [CInt: (events: UInt32, waiters: Set<UInt64>)] = [:]
        var nextTick = _Deadline(after: .seconds(1))
        /// When the thread's current `epoll_wait` ends: a waiter with an earlier
        /// deadline wakes it through `interrupt` to wait less.
        var waitingUntil: _Deadline?
    }

    private let epoll: FileDescriptor
    /// An eventfd in the epoll set: written to cut the thread's wait short.
    private let interrupt: FileDescriptor
    private static let interruptData = UInt64.max
    private let state = Mutex(State())

    /// The process's reactor, made (with its thread) on first use.
    static func shared() throws(Errno) -> _Reactor {
        try made.get()
    }

    private static let made: Result<_Reactor, Errno> = {
        do throws(Errno) {
            let epoll = try _epollCreate()
            let interrupt = try _eventDescriptor()
            try _epollControl(epoll, .add, interrupt, events: SWIFTMP_EPOLLIN, data: interruptData)
            let reactor = _Reactor(epoll: epoll, interrupt: interrupt)
            try reactor.startThread()
            started.store(true, ordering: .releasing)
            return .success(reactor)
        } catch {
            return .failure(error)
        }
    }()

    private static let started = Atomic<Bool>(false)

    /// `wakeAll` on the process's reactor if it was made (else no one waits).
    static func wakeAllIfStarted(_ fd: FileDescriptor) {
        guard started.load(ordering: .acquiring), case .success(let reactor) = made else { return }
        reactor.wakeAll(fd)
    }

    private init(epoll: FileDescriptor, interrupt: FileDescriptor) {
        self.epoll = epoll
        self.interrupt = interrupt
    }

    // MARK: Waiting (called by async operations)

    /// Runs `attempt` until it gives a value, suspending between tries until `fd`
    /// has one of `events` (`SWIFTMP_EPOLLIN`, `SWIFTMP_EPOLLOUT`), `deadline`
    /// passes, or the reactor's once-a-second tick comes (then `onStall` runs first:
    /// for what no event announces, such as a process that died). Returns nil if the deadline passed
    /// (after a last try). The task's cancellation ends the wait at once, with
    /// `CancellationError`; the attempt itself is never interrupted.
    func retry<T>(
        _ fd: FileDescriptor, events: UInt32, until deadline: _Deadline? = nil,
        onStall: () -> Void = {}, _ attempt: () throws -> T?
    ) async throws -> T? {
        let id = try register(fd.rawValue, events: events, deadline: deadline)
        defer { unregister(id) }
        while true {
            try Task.checkCancellation()
            if let value = try attempt() { return value }
            if let deadline, deadline.hasPassed { return nil }
            if try await next(id) == .tick { onStall() }
        }
    }

    /// Resumes every waiter on `fd` as if it had an event: for what changes
    /// in this process only (a queue or connection closed here).
    func wakeAll(_ fd: FileDescriptor) {
        let resumed = state.withLock { state in
            (state.sources[fd.rawValue]?.waiters ?? []).compactMap { Self.signal($0, .event, &state) }
        }
        for continuation in resumed { continuation.resume(returning: .event) }
    }

    private func register(_ fd: CInt, events: UInt32, deadline: _Deadline?) throws(Errno) -> UInt64 {
        try state.withLock { (state) throws(Errno) -> UInt64 in
            let wanted = events | SWIFTMP_EPOLLET
            if var source = state.sources[fd] {
                if source.events | wanted != source.events {
                    source.events |= wanted
                    try _epollControl(epoll, .modify, FileDescriptor(rawValue: fd), events: source.events, data: UInt64(UInt32(bitPattern: fd)))
                }
                state.sources[fd] = source
            } else {
                try _epollControl(epoll, .add, FileDescriptor(rawValue: fd), events: wanted, data: UInt64(UInt32(bitPattern: fd)))
                state.sources[fd] = (wanted, [])
            }
            state.nextID += 1
            let id = state.nextID
            state.waiters[id] = Waiter(fd: fd, deadline: deadline)
            state.sources[fd]!.waiters.insert(id)
            if let deadline, let waitingUntil = state.waitingUntil, deadline < waitingUntil {
                state.waitingUntil = deadline
                _signalEventDescriptor(interrupt)
            }
            return id
        }
    }

    private func unregister(_ id: UInt64) {
        state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else { return }
            state.sources[waiter.fd]?.waiters.remove(id)
            if state.sources[waiter.fd]?.waiters.isEmpty == true {
                state.sources[waiter.fd] = nil
                // Before the owner can close it: the waiter's operation still holds it open.
                try? _epollControl(epoll, .remove, FileDescriptor(rawValue: waiter.fd), events: 0, data: 0)
            }
        }
    }

    /// Suspends until the waiter's next event or tick (at once if one came since the last).
    private func next(_ id: UInt64) async throws -> Wake {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Wake, any Error>) in
                let now: Result<Wake, any Error>? = state.withLock { state in
                    guard var waiter = state.waiters[id] else { return .failure(CancellationError()) }
                    if waiter.cancelled { return .failure(CancellationError()) }
                    if let pending = waiter.pending {
                        waiter.pending = nil
                        state.waiters[id] = waiter
                        return .success(pending)
                    }
                    waiter.continuation = continuation
                    state.waiters[id] = waiter
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Wake, any Error>? in
                state.waiters[id]?.cancelled = true
                defer { state.waiters[id]?.continuation = nil }
                return state.waiters[id]?.continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Marks a waiter woken: returns its continuation to resume (outside the lock),
    /// or records the wake for its next wait. An event outranks a tick.
    private static func signal(_ id: UInt64, _ wake: Wake, _ state: inout State) -> CheckedContinuation<Wake, any Error>? {
        guard var waiter = state.waiters[id] else { return nil }
        if let continuation = waiter.continuation {
            waiter.continuation = nil
            state.waiters[id] = waiter
            return continuation
        }
        if waiter.pending != .event { waiter.pending = wake }
        state.waiters[id] = waiter
        return nil
    }

    // MARK: The thread

    private func startThread() throws(Errno) {
        try _startThread { self.run() }  // the reactor lives as long as the process
    }

    private func run() -> Never {
        while true {
            let timeout = state.withLock { state -> CInt in
                var earliest = state.nextTick
                for waiter in state.waiters.values {
                    if let deadline = waiter.deadline, deadline < earliest { earliest = deadline }
                }
                state.waitingUntil = earliest
                return earliest.millisecondsLeft
            }
            // An error here (only EBADF or EINVAL, which cannot happen) is a short pause and a tick.
            let ready: [(events: UInt32, data: UInt64)]
            do throws(Errno) {
                ready = try _epollWait(epoll, milliseconds: timeout)
            } catch {
                _sleep(until: _Deadline(after: .milliseconds(10)))
                ready = []
            }
            var resumed: [(CheckedContinuation<Wake, any Error>, Wake)] = []
            state.withLock { state in
                state.waitingUntil = nil
                for (_, data) in ready {
                    if data == Self.interruptData {
                        _drainEventDescriptor(interrupt)
                        continue
                    }
                    let fd = CInt(bitPattern: UInt32(truncatingIfNeeded: data))
                    for id in state.sources[fd]?.waiters ?? [] {
                        if let continuation = Self.signal(id, .event, &state) { resumed.append((continuation, .event)) }
                    }
                }
                let now = _Deadline.now
                let tick = now >= state.nextTick
                if tick { state.nextTick = _Deadline(nanoseconds: now.nanoseconds + 1_000_000_000) }
                let due = state.waiters.filter { tick || ($0.value.deadline.map { $0 <= now } ?? false) }.keys
                for id in due {
                    // Its deadline is told once: the waiter checks it itself when it wakes.
                    if state.waiters[id]?.deadline.map({ $0 <= now }) == true { state.waiters[id]?.deadline = nil }
                    if let continuation = Self.signal(id, .tick, &state) { resumed.append((continuation, .tick)) }
                }
            }
            for (continuation, wake) in resumed { continuation.resume(returning: wake) }
        }
    }
}

/// Starts the process's async waiting thread now rather than on first use (for the
/// tests' leak check, which counts its epoll descriptor as the process's own).
package func _startAsyncWaiting() throws {
    _ = try _Reactor.shared()
}

/// Waits, holding no thread, until `fd` can be read or written as asked, `also` is true,
/// or `timeout` passes (then returns false): for a module of this package that does its
/// own I/O on a descriptor, such as DurableQueue on libpq's socket. `also` is looked at
/// after the wait is registered, and again on each `_wakeDescriptorWaiters(fd)`, so a
/// change made true before such a wake is never missed. Cancellation throws
/// `CancellationError` at once. The caller must keep `fd` open until this returns.
package func _awaitDescriptor(
    _ fd: CInt, readable: Bool, writable: Bool = false, timeout: Duration? = nil, also: () -> Bool = { false }
) async throws -> Bool {
    var events: UInt32 = 0
    if readable { events |= SWIFTMP_EPOLLIN }
    if writable { events |= SWIFTMP_EPOLLOUT }
    let ready = try await _Reactor.shared().retry(FileDescriptor(rawValue: fd), events: events, until: .after(timeout)) {
        _isReady(fd, readable: readable, writable: writable) || also() ? true : nil
    }
    return ready != nil
}

/// Resumes, as if `fd` had an event, every task waiting on it in `_awaitDescriptor`, which
/// then looks at its `also` again: for a change its descriptor does not announce.
package func _wakeDescriptorWaiters(_ fd: CInt) {
    _Reactor.wakeAllIfStarted(FileDescriptor(rawValue: fd))
}
