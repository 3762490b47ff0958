import CSystemShims

/// A queue that also counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
/// Each `put` adds a task; a consumer calls `taskDone()` when it has handled an
/// item; `join()` waits until every task is done, in whichever process.
public final class JoinableQueue<Element: Codable & Sendable>: Queue<Element>, @unchecked Sendable {
    // @unchecked: as Queue's; no state of its own.

    /// Marks one item as handled.
    /// - Throws: `QueueError.taskDoneTooOften` when more tasks are done than were put.
    public func taskDone() throws {
        try control.withState { block in
            guard block.pointee.unfinished > 0 else { throw QueueError.taskDoneTooOften }
            block.pointee.unfinished -= 1
            if block.pointee.unfinished == 0 { control.broadcast(control.allDone) }
        }
    }

    /// Waits until every item put has been marked done, up to `timeout` (nil: as long as it takes).
    /// - Returns: Whether all were done in time.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        let deadline = timeout.map(_monotonicDeadline(after:))
        return try control.withState { block in
            while block.pointee.unfinished > 0 {
                if try !control.wait(control.allDone, until: deadline) { return block.pointee.unfinished == 0 }
            }
            return true
        }
    }

    /// Items put and not yet marked done.
    public var unfinishedTasks: Int {
        (try? control.withState { Int($0.pointee.unfinished) }) ?? 0
    }
}
