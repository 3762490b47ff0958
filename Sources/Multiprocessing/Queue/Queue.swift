import CSystemShims
import Dispatch
import Glibc
import MessagePack
import Synchronization
import SystemPackage

/// A queue of typed values between processes: Python's `multiprocessing.Queue`.
///
/// ```swift
/// let queue = try Queue<Order>(maxsize: 3)
/// let child = try ChildProcess.start(consumer, queue)   // the child gets the same queue
/// try queue.put(Order(id: 1, item: "tea"))
/// let order = try queue.get(timeout: .seconds(1))
/// ```
///
/// Items are MessagePack, in a ring of bytes in shared memory (a memfd mapped by
/// every process holding the queue; nothing is named in /dev/shm). Every step of
/// the ring's protocol is a copy followed by one atomic store, under robust locks,
/// so a process killed at any instruction leaves the queue whole: at most the item
/// it was putting or taking is lost, nothing is taken twice, and `count` stays
/// exact (see `_Ring`). `put` encodes in the caller (errors are thrown there) and
/// never waits for a reader: an item the ring cannot take yet waits, in order, for
/// this process's writer thread. Nothing is dropped silently: a child flushes before
/// it exits, and a flush that cannot finish in time says so on stderr.
public class Queue<Element: Codable & Sendable>: Codable, _FlushableQueue, @unchecked Sendable {
    // @unchecked: a non-final class (JoinableQueue adds to it); every stored
    // property is immutable or Sendable, and shared state is behind locks.

    /// The most items the queue holds; 0 for no limit.
    public let maxsize: Int
    /// The bytes of shared memory the queue's items pass through: items larger than
    /// what is free stream through it in pieces.
    public var bufferSize: Int { Int(ring.capacity) }
    /// The default `bufferSize`: 16 MiB (pages are used only as items reach them).
    public static var defaultBufferSize: Int { _Ring.defaultCapacity }
    /// The longest item (in bytes of MessagePack) `get` accepts in this process,
    /// checked before anything is allocated for it. Default: 1 GiB.
    public var maxFrameLength: Int {
        get { frameLengthLimit.load(ordering: .relaxed) }
        set { frameLengthLimit.store(newValue, ordering: .relaxed) }
    }
    // Read on every put and get: atomics, not the lock of `local`.
    private let frameLengthLimit = Atomic<Int>(Connection.defaultMaxFrameLength)
    private let closed = Atomic<Bool>(false)
    let ring: _Ring
    let local = Mutex(LocalState())
    /// Entered for each item put, left when it is in the ring: what `flush` waits for.
    let drained = DispatchGroup()
    let writerQueue = DispatchQueue(label: "swift-multiprocessing.queue-writer")
    let encoder = MessagePackEncoder()
    let decoder = MessagePackDecoder()

    /// What only this process knows: its items not yet in the ring, in order.
    struct LocalState {
        /// Items not yet written, in order.
        var pending = _FIFO<[UInt8]>()
        /// The writer thread is writing, or is about to.
        var writing = false
        /// Where the ring counts this process's items (claimed on the first put).
        var entry: Int32?
        var entryClaimed = false

        var isIdle: Bool { pending.isEmpty && !writing }
    }

    /// A queue holding at most `maxsize` items (0 or less, the default: no limit, as
    /// in Python), whose items pass through `bufferSize` bytes of shared memory
    /// (rounded up to a power of two, between 64 KiB and 16 GiB).
    /// - Throws: `QueueError` (`.system`) if the shared memory cannot be made.
    public init(maxsize: Int = 0, bufferSize: Int = Queue.defaultBufferSize) throws(QueueError) {
        self.maxsize = Swift.max(0, maxsize)
        ring = try _Ring(capacity: bufferSize, maxsize: self.maxsize)
        _ = _flushAtExit
        _QueueRegistry.add(self)
    }

    /// The queue another process handed over.
    init(ring: _Ring) {
        self.ring = ring
        self.maxsize = Int(ring.maxsize)
        _ = _flushAtExit
        _QueueRegistry.add(self)
    }

    deinit {
        // An item still pending keeps the queue alive (the writer holds it), so
        // nothing is pending here.
        if let entry = local.withLock({ $0.entry }) { ring.releaseEntry(entry) }
    }

    // MARK: Size

    /// Items put and not yet taken, in all processes: exact (Python's `qsize()`).
    /// Items waiting for a process's writer thread are counted too.
    public var count: Int { Int(ring.count) }

    /// Whether no item is waiting (Python's `empty()`).
    public var isEmpty: Bool { count == 0 }

    /// Whether `put` would wait (Python's `full()`).
    public var isFull: Bool { maxsize > 0 && count >= maxsize }

    // MARK: Closing and flushing

    /// Closes the queue in this process: `put` and `get` here then throw `.closed`
    /// (async ones waiting now too), and `for try await` loops over it end.
    /// Items already put are still written (Python's `close()`); other processes go on.
    public func close() {
        closed.store(true, ordering: .relaxed)
        _Reactor.wakeAllIfStarted(ring.readiness)  // async waiters here see it and end
    }

    var isClosed: Bool { closed.load(ordering: .relaxed) }

    /// Waits until this process's put items are all in the ring, up to `timeout`
    /// (nil: as long as it takes). Python's `join_thread()`.
    /// - Returns: Whether everything was written.
    @discardableResult
    public func flush(timeout: Duration? = nil) -> Bool {
        guard let timeout else { drained.wait(); return true }
        return drained.wait(timeout: _Deadline(after: timeout).dispatchTime) == .success
    }

    /// Items put in this process and not yet in the ring.
    public var pendingCount: Int { local.withLock { $0.pending.count } }

    /// At exit, once everything is written: gives back this process's entry in the
    /// ring's table of putting processes.
    func releaseWriterEntry() {
        local.withLock { state in
            guard state.isIdle, let entry = state.entry else { return }
            ring.releaseEntry(entry)
            state.entry = nil
            state.entryClaimed = false
        }
    }

    // MARK: Readiness

    /// Whether an item is waiting, waiting up to `timeout` for one (nil: as long as
    /// it takes; the default, zero: not at all), without taking it (Python's
    /// `Connection.poll`). Another reader may still take it first. Meanwhile the
    /// queue's eventfd, which writers signal only while someone polls, is what this
    /// waits on: no lock is held, and no thread of the caller's spins.
    public func poll(timeout: Duration? = .zero) throws(QueueError) -> Bool {
        try ring.waitUntilReadable(until: .after(timeout))
    }

    // MARK: Handing the queue to a child

    /// The shared memory's memfd and the readiness eventfd, as the child receives them.
    private struct Handle: Codable {
        var segment: Int
        var readiness: Int
    }

    /// A queue is handed to a child with its start argument: its descriptors go
    /// over, and these bytes say which they are. Anywhere else this throws, as
    /// Python's "Queue objects should only be shared between processes through inheritance".
    public func encode(to encoder: any Encoder) throws {
        let table = try _HandleTable.forEncoding(encoder, "Queue")
        try Handle(segment: table.add(ring.file), readiness: table.add(ring.readiness)).encode(to: encoder)
    }

    /// The queue a parent handed to this child.
    public required convenience init(from decoder: any Decoder) throws {
        let table = try _HandleTable.forDecoding(decoder, "Queue")
        let handle = try Handle(from: decoder)
        self.init(ring: try _Ring(attaching: table.take(handle.segment), readiness: table.take(handle.readiness)))
    }
}
