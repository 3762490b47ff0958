/// Why a queue operation did not happen. Errors from encoding and decoding
/// values, and from the system, are thrown as they are.
public enum QueueError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `put` timed out, or `putNowait` found the queue full (Python's `queue.Full`).
    case full
    /// `get` timed out, or `getNowait` found the queue empty (Python's `queue.Empty`).
    case empty
    /// This process closed the queue.
    case closed
    /// `taskDone()` was called more times than items were put (Python's ValueError).
    case taskDoneTooOften

    public var description: String {
        switch self {
        case .full: "the queue is full"
        case .empty: "the queue is empty"
        case .closed: "the queue is closed"
        case .taskDoneTooOften: "taskDone() was called more times than items were put"
        }
    }
}
