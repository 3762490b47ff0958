import Glibc
import Synchronization
import SystemPackage

/// A child process, as Python's `multiprocessing.Process(target=, args=)` makes
/// one — but started with `posix_spawn`, since a Swift process cannot safely fork.
///
/// ```swift
/// let greeter = ChildProcess.Entry("greeter") { (connection: Connection) in
///     try connection.send("hello")
/// }
///
/// @main struct App {
///     static func main() throws {
///         try ChildProcess.bootstrap([greeter])      // in a child: runs its entry, then exits
///         let (mine, theirs) = try Connection.pipe()
///         let child = try ChildProcess.start(greeter, theirs)
///         print(try mine.receive(String.self))        // "hello"
///         _ = try child.join()                       // .exited(0)
///     }
/// }
/// ```
///
/// The child runs this same executable (`/proc/self/exe`), whose `main` calls
/// ``bootstrap(_:)`` first: Python's `if __name__ == "__main__"` guard, made
/// explicit. The entry's argument, any `Codable` value, is MessagePack-encoded for
/// the child; the connections (and queues) in it are handed over as descriptors,
/// and every other descriptor is closed in the child.
public final class ChildProcess: Sendable {
    /// How a process ended.
    public enum Termination: Hashable, Sendable, CustomStringConvertible {
        /// It exited with this code (0 for success; a child whose entry threw exits with 1).
        case exited(Int32)
        /// A signal ended it (SIGTERM from `terminate()`, SIGKILL from `kill()`, …).
        case signaled(Int32)

        init(status: CInt) {
            let signal = status & 0x7f
            self = signal == 0 ? .exited((status & 0xff00) >> 8) : .signaled(signal)
        }

        /// `exited with code <code>` or `ended by signal <signal>`.
        public var description: String {
            switch self {
            case .exited(let code): "exited with code \(code)"
            case .signaled(let signal): "ended by signal \(signal)"
            }
        }
    }

    /// The child's process ID.
    public let pid: pid_t
    private let ended = Mutex<Termination?>(nil)
    /// A pidfd, opened as soon as the child was started, that `terminate()` and
    /// `kill()` signal through: such a signal reaches this child or no process, even
    /// if something else (a `waitpid(-1)` elsewhere) reaped it and its pid was
    /// reused. Closed when the child is reaped; nil where pidfd_open failed (then
    /// the pid is signalled, as before).
    private let signalHandle: Mutex<FileDescriptor?>

    init(pid: pid_t) {
        self.pid = pid
        signalHandle = Mutex(try? _pidDescriptor(pid))
    }

    deinit { closeSignalHandle() }

    private func closeSignalHandle() {
        if let handle = signalHandle.withLock({ $0.take() }) { _close(handle) }
    }

    /// How it ended, once `join` or `isAlive` has seen it end.
    public var termination: Termination? { ended.withLock { $0 } }

    /// Whether it is still running (reaping it if it has ended).
    public var isAlive: Bool {
        (try? reap(block: false)) == nil
    }

    /// Waits for the child to end. Python's `join()`.
    /// - Returns: How it ended.
    /// - Throws: `Errno` if the process cannot be waited for.
    @discardableResult
    public func join() throws -> Termination {
        // `reap(block: true)` returns only once the child has ended.
        try reap(block: true)!
    }

    /// Waits at most `timeout` for the child to end. Python's `join(timeout)`.
    /// - Returns: How it ended, or `nil` if it is still running.
    @discardableResult
    public func join(timeout: Duration) throws -> Termination? {
        let deadline = _Deadline(after: timeout)
        var pause = Duration.microseconds(200)
        while true {
            if let termination = try reap(block: false) { return termination }
            if deadline.hasPassed { return nil }
            try? Task.checkCancellation()
            _sleep(until: min(_Deadline(after: pause), deadline))
            pause = min(pause * 2, .milliseconds(10))
        }
    }

    /// Asks the child to end: SIGTERM. Python's `terminate()`.
    public func terminate() throws { try send(SIGTERM) }

    /// Ends the child at once: SIGKILL. Python's `kill()`.
    public func kill() throws { try send(SIGKILL) }

    private func send(_ signal: CInt) throws {
        try signalHandle.withLock { (handle) throws(Errno) in
            guard termination == nil else { return }  // reaped: its pid may belong to another process now
            guard let handle else { return try _signal(pid, signal) }
            do throws(Errno) {
                try _signal(pidDescriptor: handle, signal)
            } catch where error == .noSuchProcess {
                return  // reaped by another wait: ended already
            }
        }
    }

    /// The termination, reaping the child if it ended; `nil` while it runs.
    private func reap(block: Bool) throws -> Termination? {
        do {
            return try reapOnce(block: block)
        } catch {
            guard error == .noChildProcess else { throw error }
            // ECHILD: another thread's wait reaped it, and is about to store how it ended.
            for _ in 0..<1000 {
                if let termination { return termination }
                _sleep(until: _Deadline(after: .milliseconds(1)))
            }
            throw error
        }
    }

    /// As `reap`, but without waiting for another thread's wait: the async forms
    /// wait for that without a thread. Reaping happens once, and only here.
    /// - Throws: `Errno.noChildProcess` when another wait reaped the child and
    ///   has not yet stored how it ended.
    func reapOnce(block: Bool) throws(Errno) -> Termination? {
        if let termination { return termination }
        guard let status = try _reap(pid, block: block) else { return nil }
        let termination = Termination(status: status)
        ended.withLock { $0 = termination }
        closeSignalHandle()  // no signal can be sent now
        return termination
    }
}
