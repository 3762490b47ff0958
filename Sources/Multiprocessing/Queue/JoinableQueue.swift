import CSystemShims

/// A queue that also counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
/// Each `put` adds a task; a consumer calls `taskDone()` when it has handled an
/// item; `join()` waits until every task is done, in whichever process.
public final class JoinableQueue<Element: Codable & Sendable>: Queue<Element>, @unchecked Sendable {
    // @unchecked: as Queue's; no state of its own.

    /// Marks one item as handled.
    /// - Throws: `QueueError.taskDoneTooOften` when more tasks are done than were put.
    public func taskDone() throws {
        while true {
            let unfinished = swiftmp_load64(control.unfinished)
            guard unfinished > 0 else { throw QueueError.taskDoneTooOften }
            if swiftmp_replace64(control.unfinished, unfinished, unfinished - 1) {
                if unfinished == 1 { control.signal(control.allDone) }
                return
            }
        }
    }

    /// Waits until every item put has been marked done, up to `timeout` (nil: as long as it takes).
    /// - Returns: Whether all were done in time.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        let deadline = timeout.map(_monotonicDeadline(after:))
        return try control.wait(for: control.allDone, until: deadline) { swiftmp_load64(control.unfinished) > 0 }
    }

    /// Items put and not yet marked done.
    public var unfinishedTasks: Int { Int(max(0, swiftmp_load64(control.unfinished))) }
}
