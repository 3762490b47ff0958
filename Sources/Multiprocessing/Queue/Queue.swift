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
/// Items are MessagePack frames on one pipe shared by every process holding the
/// queue; a shared control block (a memfd) holds robust process-shared locks (one
/// for writers, one for readers), atomic counters, futex words to wait on, and a
/// read-ahead buffer that readers share. A process killed at any point does not
/// stop the others: what it was doing is recorded in the block, and the next one
/// to take its lock goes on from there (a half-read frame is skipped, a
/// half-written one filled out and passed by). `put` encodes in the caller —
/// errors are thrown there — and never waits for a reader: a frame the pipe cannot
/// take yet waits, in order, for a writer thread. Nothing is dropped silently: a
/// child flushes before it exits, and a flush that cannot finish in time says so
/// on stderr.
public class Queue<Element: Codable & Sendable>: Codable, _FlushableQueue, @unchecked Sendable {
    // @unchecked: a non-final class (JoinableQueue adds to it); every stored
    // property is immutable or Sendable, and shared state is behind locks.

    /// The most items the queue holds; 0 for no limit.
    public let maxsize: Int
    /// The longest item (in bytes of MessagePack) `get` accepts in this process,
    /// checked before anything is allocated for it. Default: 1 GiB.
    public var maxFrameLength: Int {
        get { frameLengthLimit.load(ordering: .relaxed) }
        set { frameLengthLimit.store(newValue, ordering: .relaxed) }
    }
    // Read on every put and get: atomics, not the lock of `local`.
    private let frameLengthLimit = Atomic<Int>(Connection.defaultMaxFrameLength)
    private let closed = Atomic<Bool>(false)
    let control: _ControlBlock
    let reader: FileDescriptor
    let writer: FileDescriptor
    let local: Mutex<LocalState>
    /// Entered for each frame put, left when it is in the pipe: what `flush` waits for.
    let drained = DispatchGroup()
    let writerQueue = DispatchQueue(label: "swift-multiprocessing.queue-writer")
    let encoder = MessagePackEncoder()
    let decoder = MessagePackDecoder()

    /// What only this process knows: its frames not yet in the pipe, in order.
    struct LocalState {
        /// Frames not yet written: `pending[pendingStart...]`, in order (a head index,
        /// so taking the first is O(1); the array is compacted as it drains).
        var pending: [[UInt8]] = []
        var pendingStart = 0
        /// Bytes of the pending frames.
        var pendingBytes = 0
        /// The writer thread is writing, or is about to.
        var writing = false
        /// A writer thread is due to start shortly for the frames gathered (see `enqueue`).
        var startScheduled = false
        /// Arrays of large frames already written, for `makeFrame` to reuse.
        var spareFrames: [[UInt8]] = []
        /// Where the control block counts this process's pending frames (claimed on first use).
        var writerEntry: UnsafeMutablePointer<swiftmp_writer>?

        /// The first pending frames of at most PIPE_BUF bytes each, as many as fit in
        /// PIPE_BUF bytes together (one write that enters the pipe whole), copied into
        /// `batch`; returns how many.
        mutating func gatherSmallFrames(into batch: inout [UInt8]) -> Int {
            batch.removeAll(keepingCapacity: true)
            batch.reserveCapacity(Int(PIPE_BUF))
            var count = 0
            for frame in pending[pendingStart...] {
                guard frame.count <= Int(PIPE_BUF), batch.count + frame.count <= Int(PIPE_BUF) else { break }
                batch.append(contentsOf: frame)
                count += 1
            }
            return count
        }

        /// Forgets the first `count` pending frames, written now. Large ones are kept
        /// (two at most) for `makeFrame` to reuse their memory.
        mutating func removeWritten(_ count: Int) {
            for index in pendingStart..<(pendingStart + count) {
                pendingBytes -= pending[index].count
                if pending[index].count >= Queue.largeFrame && pending[index].capacity <= 64 << 20 && spareFrames.count < 2 {
                    spareFrames.append(pending[index])
                }
                pending[index] = []  // written: free it now
            }
            pendingStart += count
            if pendingStart == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingStart = 0
            } else if pendingStart >= 4096 && pendingStart * 2 >= pending.count {
                pending.removeFirst(pendingStart)
                pendingStart = 0
            }
        }
    }

    /// A queue holding at most `maxsize` items (0 or less, the default: no limit, as in Python).
    /// - Throws: `Errno` if the pipe or the control block cannot be made.
    public init(maxsize: Int = 0) throws {
        self.maxsize = max(0, maxsize)
        control = try _ControlBlock(maxsize: self.maxsize)
        let (read, write) = try _pipe()
        _ = _growPipe(write, to: 1 << 20)
        do {
            try _setNonblocking(write)
        } catch {
            _close(read)
            _close(write)
            throw error
        }
        reader = read
        writer = write
        local = Mutex(LocalState())
        _ = _flushAtExit
        _QueueRegistry.add(self)
    }

    /// The queue another process handed over.
    init(reader: FileDescriptor, writer: FileDescriptor, control: _ControlBlock) {
        self.reader = reader
        self.writer = writer
        self.control = control
        self.maxsize = Int(control.pointer.pointee.maxsize)
        local = Mutex(LocalState())
        _ = _ignoreSIGPIPE
        _ = _flushAtExit
        _QueueRegistry.add(self)
    }

    deinit {
        // A frame still pending keeps the queue alive (the writer holds it), so
        // nothing is pending here.
        if let entry = local.withLock({ $0.writerEntry }) { control.releaseWriterEntry(entry) }
        _close(reader)
        _close(writer)
    }

    // MARK: Size

    /// Items put and not yet taken, in all processes: exact (Python's `qsize()`).
    /// Items this process put that wait for the writer thread are counted too.
    public var count: Int { Int(control.count) }

    /// Whether no item is waiting (Python's `empty()`).
    public var isEmpty: Bool { count == 0 }

    /// Whether `put` would wait (Python's `full()`).
    public var isFull: Bool { maxsize > 0 && count >= maxsize }

    // MARK: Closing and flushing

    /// Closes the queue in this process: `put` and `get` here then throw `.closed`.
    /// Frames already put are still written (Python's `close()`); other processes go on.
    public func close() {
        closed.store(true, ordering: .relaxed)
    }

    var isClosed: Bool { closed.load(ordering: .relaxed) }

    /// Waits until this process's put items are all in the pipe, up to `timeout`
    /// (nil: as long as it takes). Python's `join_thread()`.
    /// - Returns: Whether everything was written.
    @discardableResult
    public func flush(timeout: Duration? = nil) -> Bool {
        startWriting()  // frames gathered for one write go now, not when their time is up
        guard let timeout else { drained.wait(); return true }
        let seconds = min(max(timeout.components.seconds, 0), 1 << 32)  // no overflow for huge timeouts
        let nanoseconds = seconds * 1_000_000_000 + max(timeout.components.attoseconds, 0) / 1_000_000_000
        return drained.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .success
    }

    /// Items put in this process and not yet written to the pipe.
    public var pendingCount: Int { local.withLock { $0.pending.count - $0.pendingStart } }

    /// At exit, once everything is written: gives back this process's entry in the
    /// control block's table of processes with frames waiting.
    func releaseWriterEntry() {
        local.withLock { state in
            guard state.pendingStart == state.pending.count, !state.writing, let entry = state.writerEntry else { return }
            control.releaseWriterEntry(entry)
            state.writerEntry = nil
        }
    }

    // MARK: Handing the queue to a child

    /// The pipe's two ends and the control block's memfd, as the child receives them.
    private struct Handle: Codable {
        var reader: Int
        var writer: Int
        var control: Int
    }

    /// A queue is handed to a child with its start argument: its descriptors go
    /// over, and these bytes say which they are. Anywhere else this throws, as
    /// Python's "Queue objects should only be shared between processes through inheritance".
    public func encode(to encoder: any Encoder) throws {
        let table = try _HandleTable.forEncoding(encoder, "Queue")
        try Handle(reader: table.add(reader), writer: table.add(writer), control: table.add(control.file)).encode(to: encoder)
    }

    /// The queue a parent handed to this child.
    public required convenience init(from decoder: any Decoder) throws {
        let table = try _HandleTable.forDecoding(decoder, "Queue")
        let handle = try Handle(from: decoder)
        self.init(
            reader: try table.take(handle.reader), writer: try table.take(handle.writer),
            control: try _ControlBlock(attaching: table.take(handle.control)))
    }
}
