/// A queue that also counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
/// Each `put` adds a task; a consumer calls `taskDone()` when it has handled an
/// item; `join()` waits until every task is done, in whichever process. An item
/// lost with a producer killed before it reached the ring, or with a writer killed
/// in the middle of it, is no task; one taken by a consumer that was then killed
/// stays unfinished (as in Python: only its consumer knew whether it was handled).
public final class JoinableQueue<Element: Codable & Sendable>: Queue<Element>, @unchecked Sendable {
    // @unchecked: as Queue's; no state of its own.

    /// Marks one item as handled.
    /// - Throws: `QueueError.taskDoneTooOften` when more tasks are done than were put.
    public func taskDone() throws(QueueError) {
        guard ring.finishTask() else { throw QueueError.taskDoneTooOften }
    }

    /// Waits until every item put has been marked done, up to `timeout` (nil: as long as it takes).
    /// - Returns: Whether all were done in time.
    @discardableResult
    public func join(timeout: Duration? = nil) throws(QueueError) -> Bool {
        try ring.waitUntilAllDone(until: .after(timeout))
    }

    /// Items put and not yet marked done.
    public var unfinishedTasks: Int { Int(ring.unfinished) }
}
