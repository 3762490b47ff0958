/// A failure of a ``DurableQueue`` operation other than encoding or decoding an item's value
/// on `put` (those throw the encoder's own `EncodingError`).
public struct DurableQueueError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The code's name, such as `leaseLost`.
        public var description: String { name }

        /// `get` timed out, or `getNowait` found no item it could lease.
        public static let empty = Code(name: "empty")
        /// `put` timed out on a queue holding `maxsize` unacknowledged items.
        public static let full = Code(name: "full")
        /// `join` timed out with items still unacknowledged.
        public static let timedOut = Code(name: "timedOut")
        /// `taskDone` came after the delivery's lease ran out and the item was leased again
        /// (or acknowledged by its other consumer): it will be, or was, delivered again.
        public static let leaseLost = Code(name: "leaseLost")
        /// An item's payload did not decode as the element type. It was moved to the
        /// dead-letter table, `durable_queue_dead_letters`; `itemID` names it.
        public static let undecodable = Code(name: "undecodable")
        /// The URL is not a PostgreSQL URL this library can use.
        public static let invalidURL = Code(name: "invalidURL")
        /// The queue name is empty, too long or has characters outside `A-Z a-z 0-9 _ - .`.
        public static let invalidName = Code(name: "invalidName")
        /// The database holds a schema newer than this library knows.
        public static let schemaVersion = Code(name: "schemaVersion")
        /// `close()` was called on this queue.
        public static let closed = Code(name: "closed")
        /// An argument of `init` is out of range.
        public static let invalidArgument = Code(name: "invalidArgument")
        /// The server reported an error, or could not be reached within the queue's
        /// `reconnectTimeout`; `underlyingError` says how. Nothing was changed.
        public static let database = Code(name: "database")
        /// The connection broke while the operation's statement was on its way or running
        /// (the server restarted, say), so whether it took effect is unknown: a `put` may or
        /// may not have put its item; after a `taskDone`, the item may be delivered again.
        /// `get`, `count` and `join` never throw it: they are tried again on a new connection.
        public static let connectionLost = Code(name: "connectionLost")
    }

    /// What went wrong: compare it, `error.code == .leaseLost`, or catch by it,
    /// `catch DurableQueueError.leaseLost`.
    public let code: Code
    /// The item's row id, for `.undecodable` and `.leaseLost`.
    public let itemID: Int64?
    /// The error underneath: the `DecodingError` of `.undecodable`; for `.database` and
    /// `.connectionLost`, libpq's or the server's (its description has the SQLSTATE).
    public let underlyingError: (any Error)?
    let detail: String

    init(_ code: Code, _ detail: String, itemID: Int64? = nil, underlyingError: (any Error)? = nil) {
        self.code = code
        self.detail = detail
        self.itemID = itemID
        self.underlyingError = underlyingError
    }

    /// `DurableQueueError.<code>: <what happened>`.
    public var description: String { "DurableQueueError.\(code): \(detail)" }

    /// An `.empty` error, to catch any: `catch DurableQueueError.empty { … }`.
    public static let empty = DurableQueueError(.empty, "no item could be leased")
    /// A `.full` error, to catch any: `catch DurableQueueError.full { … }`.
    public static let full = DurableQueueError(.full, "the queue holds its maxsize")
    /// A `.timedOut` error, to catch any: `catch DurableQueueError.timedOut { … }`.
    public static let timedOut = DurableQueueError(.timedOut, "items are still unacknowledged")
    /// A `.leaseLost` error, to catch any: `catch DurableQueueError.leaseLost { … }`.
    public static let leaseLost = DurableQueueError(.leaseLost, "the lease ran out and the item was leased again")
    /// An `.undecodable` error, to catch any: `catch DurableQueueError.undecodable { … }`.
    public static let undecodable = DurableQueueError(.undecodable, "an item did not decode")
    /// A `.closed` error, to catch any: `catch DurableQueueError.closed { … }`.
    public static let closed = DurableQueueError(.closed, "the queue was closed")
    /// A `.connectionLost` error, to catch any: `catch DurableQueueError.connectionLost { … }`.
    public static let connectionLost = DurableQueueError(.connectionLost, "the connection broke during the operation")

    /// `catch DurableQueueError.empty { … }` catches any `.empty`, whatever its details.
    public static func ~= (pattern: DurableQueueError, error: any Error) -> Bool {
        (error as? DurableQueueError)?.code == pattern.code
    }

    /// A libpq or server error met while `doing` something to `queue`.
    init(_ doing: String, _ error: _PGError, queue: String) {
        let code: Code = error.kind == .connectionLost ? .connectionLost : .database
        self.init(code, "\(doing) (queue \(queue)): \(error)", underlyingError: error)
    }
}
