import SystemPackage

/// Why a queue operation did not happen. Besides this, `put` throws only the
/// encoder's `EncodingError` and `get` only the decoder's `DecodingError`.
public struct QueueError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The code's name, such as `full`.
        public var description: String { name }

        /// `put` timed out, or `putNowait` found the queue full (Python's `queue.Full`).
        public static let full = Code(name: "full")
        /// `get` timed out, or `getNowait` found the queue empty (Python's `queue.Empty`).
        public static let empty = Code(name: "empty")
        /// This process closed the queue.
        public static let closed = Code(name: "closed")
        /// An item is longer than `maxFrameLength`: it was taken and refused, unread.
        public static let frameTooLong = Code(name: "frameTooLong")
        /// `taskDone()` was called more times than items were put (Python's ValueError).
        public static let taskDoneTooOften = Code(name: "taskDoneTooOften")
        /// The queue's shared memory does not hold what this library writes there
        /// (another program wrote to it).
        public static let corrupted = Code(name: "corrupted")
        /// A system call failed; `underlyingError` says how.
        public static let system = Code(name: "system")
    }

    /// What went wrong: compare it, `error.code == .full`, or catch by it, `catch QueueError.full`.
    public let code: Code
    /// The system's error, for `.system`.
    public let underlyingError: Errno?
    let detail: String

    init(_ code: Code, _ detail: String? = nil, underlyingError: Errno? = nil) {
        self.code = code
        self.underlyingError = underlyingError
        self.detail = detail ?? Self.defaultDetail(code)
    }

    /// A `.full` error, to catch any: `catch QueueError.full { … }`.
    public static let full = QueueError(.full)
    /// An `.empty` error, to catch any: `catch QueueError.empty { … }`.
    public static let empty = QueueError(.empty)
    /// A `.closed` error, to catch any: `catch QueueError.closed { … }`.
    public static let closed = QueueError(.closed)
    /// A `.taskDoneTooOften` error, to catch any: `catch QueueError.taskDoneTooOften { … }`.
    public static let taskDoneTooOften = QueueError(.taskDoneTooOften)

    static func system(_ errno: Errno, _ doing: String) -> QueueError {
        QueueError(.system, "\(doing): \(errno)", underlyingError: errno)
    }

    private static func defaultDetail(_ code: Code) -> String {
        switch code {
        case .full: "the queue is full"
        case .empty: "the queue is empty"
        case .closed: "the queue is closed"
        case .taskDoneTooOften: "taskDone() was called more times than items were put"
        default: code.name
        }
    }

    /// Errors compare by their code: `#expect(throws: QueueError.full)` matches any `.full`.
    public static func == (a: QueueError, b: QueueError) -> Bool { a.code == b.code }
    /// Hashes the code alone, as `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// `catch QueueError.full { … }` catches any `.full`.
    public static func ~= (pattern: QueueError, error: any Error) -> Bool {
        (error as? QueueError)?.code == pattern.code
    }

    /// `Queue error (<code>): <what happened>`.
    public var description: String { "Queue error (\(code)): \(detail)" }
}
