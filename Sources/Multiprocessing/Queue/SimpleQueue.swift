/// An unbounded queue whose `put` returns once the item is in the ring: Python's
/// `multiprocessing.SimpleQueue` (no writer thread, no size, no timeouts on put).
public final class SimpleQueue<Element: Codable & Sendable>: Codable, Sendable {
    private let queue: Queue<Element>

    /// An empty queue, in shared memory of its own (`Queue.defaultBufferSize`).
    /// - Throws: `QueueError` (`.system`) if the shared memory cannot be made.
    public init() throws {
        queue = try Queue(maxsize: 0)
    }

    /// Puts an item and waits until it is in the ring (for a reader to make room, if
    /// the ring is full).
    public func put(_ item: Element) throws {
        try queue.put(item)
        queue.flush()
    }

    /// Takes an item, waiting for one.
    public func get() throws -> Element {
        try queue.get()
    }

    /// Puts an item and suspends until it is in the ring. Once this returns or
    /// throws anything but `CancellationError` before the item was accepted, it is
    /// put; a cancellation while it waits for room in the ring ends the wait early,
    /// and the item is still written.
    public func put(_ item: Element) async throws {
        try await queue.put(item)
        await queue.flushed()
    }

    /// Takes an item, suspending until one comes (no thread waits).
    /// - Throws: `CancellationError` when the task is cancelled first (nothing was taken).
    public func get() async throws -> Element {
        try await queue.get()
    }

    /// Whether no item is waiting.
    public var isEmpty: Bool { queue.isEmpty }

    /// Closes the queue in this process.
    public func close() { queue.close() }

    /// Handed to a child with its start argument, as a `Queue` is.
    public func encode(to encoder: any Encoder) throws { try queue.encode(to: encoder) }

    /// The queue a parent handed to this child.
    public init(from decoder: any Decoder) throws {
        queue = try Queue(from: decoder)
    }
}
