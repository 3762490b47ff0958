import CSystemShims
import Glibc
import SystemPackage

/// The async forms: waiting for a child suspends the task instead of blocking a
/// thread of the cooperative pool.
///
/// The wait is on a pidfd (`pidfd_open`), readable once the child has ended,
/// watched by the process's one waiting thread (`_Reactor`); each wake tries
/// `waitpid` without blocking. The pidfd is opened for the wait and closed after.
extension ChildProcess {
    /// Suspends until the child ends. Python's `join()`, without a thread.
    /// - Returns: How it ended.
    /// - Throws: `CancellationError` when the task is cancelled first: the child
    ///   is then left running and unreaped, and a later `join` still works.
    ///   `Errno` if the process cannot be waited for.
    @discardableResult
    public func join() async throws -> Termination {
        // With no deadline, the wait returns only once the child has ended.
        try await wait(until: nil)!
    }

    /// Suspends at most `timeout` for the child to end. Python's `join(timeout)`.
    /// - Returns: How it ended, or `nil` if it is still running.
    /// - Throws: `CancellationError` when the task is cancelled first (the child is
    ///   left as it was); `Errno` if the process cannot be waited for.
    @discardableResult
    public func join(timeout: Duration) async throws -> Termination? {
        try await wait(until: _Deadline(after: timeout))
    }

    /// Starts a child running `entry` with `argument`, runs `body` with it, and
    /// sees that the child does not outlive the call.
    ///
    /// - When `body` returns, `run` waits for the child to end (as
    ///   swift-subprocess's `run` awaits termination), then returns what `body`
    ///   returned; the child's ``termination`` tells how it ended. End the child
    ///   from `body` (a message, `terminate()`) if it would not end on its own.
    /// - When `body` throws, or the task is cancelled (in `body`, or while waiting
    ///   for the child afterwards), `run` stops the child: SIGTERM, up to
    ///   `gracePeriod` for it to end, then SIGKILL. It reaps it, then rethrows
    ///   (`CancellationError` on cancellation). This teardown waits without a
    ///   thread and runs to the end even though the task is cancelled.
    ///
    /// - Parameters:
    ///   - entry: What the child runs, as `start(_:_:)` starts it.
    ///   - argument: The entry's argument, handed over as `start(_:_:)` hands it.
    ///   - gracePeriod: How long a child has, after SIGTERM, before SIGKILL.
    ///   - isolation: Where `body` runs: the caller's actor.
    ///   - body: What to do while the child runs.
    /// - Throws: What `start(_:_:)` throws (nothing is started then); what `body`
    ///   throws; `CancellationError`; `Errno` if the child cannot be waited for.
    public static func run<Argument, Result>(
        _ entry: Entry<Argument>, _ argument: Argument, gracePeriod: Duration = .seconds(5),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (ChildProcess) async throws -> Result
    ) async throws -> Result {
        try await scoped(start(entry, argument), gracePeriod: gracePeriod, body)
    }

    /// `run(_:_:gracePeriod:_:)` for another Swift executable, as
    /// `start(executable:entry:argument:)` starts it.
    public static func run<Argument: Encodable, Result>(
        executable path: String, entry name: String, argument: Argument, gracePeriod: Duration = .seconds(5),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (ChildProcess) async throws -> Result
    ) async throws -> Result {
        try await scoped(start(executable: path, entry: name, argument: argument), gracePeriod: gracePeriod, body)
    }

    /// `run(_:_:gracePeriod:_:)` for any program, as
    /// `start(executable:arguments:handing:)` starts it.
    public static func run<Result>(
        executable path: String, arguments: [String] = [], handing connections: [Connection],
        gracePeriod: Duration = .seconds(5),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (ChildProcess) async throws -> Result
    ) async throws -> Result {
        try await scoped(start(executable: path, arguments: arguments, handing: connections), gracePeriod: gracePeriod, body)
    }

    private static func scoped<Result>(
        _ child: ChildProcess, gracePeriod: Duration,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (ChildProcess) async throws -> Result
    ) async throws -> Result {
        let result: Result
        do {
            result = try await body(child)
            try await child.join()
        } catch {
            await child.stop(gracePeriod: gracePeriod)
            throw error
        }
        return result
    }

    // MARK: Waiting

    /// How the child ended, or `nil` if `deadline` passed first.
    private func wait(until deadline: _Deadline?) async throws -> Termination? {
        do {
            return try await waitForDescriptor(until: deadline)
        } catch let error as Errno where error == .noChildProcess {
            return try await reapedElsewhere()
        }
    }

    private func waitForDescriptor(until deadline: _Deadline?) async throws -> Termination? {
        // Ended already: no pidfd, and no cancellation check (a cancelled task's
        // scope still learns how its child ended).
        if let termination = try reapOnce(block: false) { return termination }
        let pidfd = try openDescriptor()
        defer { _close(pidfd) }  // after `retry`, which unregisters it from epoll
        // Registered before the first try, so an end in between is not missed; and
        // if the pid was reaped and reused meanwhile, the try says ECHILD at once.
        return try await _Reactor.shared().retry(pidfd, events: SWIFTMP_EPOLLIN, until: deadline) { () throws -> Termination? in
            try self.reapOnce(block: false)
        }
    }

    /// A pidfd for the child.
    /// - Throws: `Errno.noChildProcess` if it is gone: another thread's wait reaped it.
    private func openDescriptor() throws(Errno) -> FileDescriptor {
        do {
            return try _pidDescriptor(pid)
        } catch {
            throw error == .noSuchProcess ? .noChildProcess : error
        }
    }

    /// Another thread's `waitpid` reaped the child: its termination is stored a
    /// moment later (the blocking `reap` waits for it the same way, on a thread).
    private func reapedElsewhere() async throws -> Termination {
        for _ in 0..<1000 {
            if let termination { return termination }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw Errno.noChildProcess  // reaped by someone else (a `waitpid(-1)`): how it ended is lost
    }

    // MARK: Teardown

    /// SIGTERM, up to `gracePeriod` for the child to end, then SIGKILL; then
    /// reaps it. Runs to the end even when the calling task is cancelled: in a task
    /// of its own that nothing cancels (swift-subprocess's `withUncancelledTask`),
    /// whose value the caller awaits.
    @discardableResult
    func stop(gracePeriod: Duration) async -> Termination? {
        await Task { await self.teardown(gracePeriod: gracePeriod) }.value
    }

    private func teardown(gracePeriod: Duration) async -> Termination? {
        // Signals go only to a child not yet reaped, whose pid (a zombie's at worst) is
        // still its own: each is sent after a look that found it so.
        if let ended = await endedNow() { return ended }
        try? terminate()
        if let termination = await waitWithoutFail(until: _Deadline(after: gracePeriod)) { return termination }
        if let ended = await endedNow() { return ended }
        try? kill()
        return await waitWithoutFail(until: nil)
    }

    /// How the child ended, if it has: the outer optional says whether it has, the
    /// inner is nil when another wait reaped it and how it ended is lost. ECHILD
    /// means another wait reaped it: its pid may already name another process.
    private func endedNow() async -> Termination?? {
        do {
            guard let termination = try reapOnce(block: false) else { return nil }
            return termination
        } catch {
            return .some(try? await reapedElsewhere())
        }
    }

    /// `wait`, falling back to polling if it cannot wait (no descriptor left for a
    /// pidfd, say): a child being torn down must be reaped all the same.
    /// `nil` if the deadline passed, or if the child was reaped where we cannot see how it ended.
    private func waitWithoutFail(until deadline: _Deadline?) async -> Termination? {
        do {
            return try await wait(until: deadline)
        } catch let error as Errno where error != .noChildProcess {
            // A pidfd or the reactor could not be had: poll instead, with pauses that hold no thread.
            var pause = Duration.milliseconds(1)
            while true {
                do {
                    if let termination = try reapOnce(block: false) { return termination }
                } catch {
                    return termination
                }
                if let deadline, deadline.hasPassed { return nil }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(50))
            }
        } catch {
            // ECHILD: reaped elsewhere, and `wait` waited for it to be stored. (Not
            // CancellationError: the teardown's task is not cancelled.)
            return termination
        }
    }
}
