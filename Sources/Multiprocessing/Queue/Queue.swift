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
/// for writers, one for readers), the item count, and futex words to wait on. A
/// process killed while it holds a lock does not stop the others: the next one to
/// take the lock is told, and repairs what was left (a half-read frame is skipped,
/// a half-written one filled out and discarded). `put` encodes in the caller —
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
        get { local.withLock { $0.maxFrameLength } }
        set { local.withLock { $0.maxFrameLength = newValue } }
    }
    let control: _ControlBlock
    let reader: FileDescriptor
    let writer: FileDescriptor
    private let local: Mutex<LocalState>
    private let drained = DispatchGroup()
    private let writerQueue = DispatchQueue(label: "swift-multiprocessing.queue-writer")
    private let encoder = MessagePackEncoder()
    private let decoder = MessagePackDecoder()

    /// What only this process knows: its frames not yet in the pipe, in order.
    private struct LocalState {
        /// Frames not yet written: `pending[pendingStart...]`, in order (a head index,
        /// so taking the first is O(1); the array is compacted as it drains).
        var pending: [[UInt8]] = []
        var pendingStart = 0
        var writing = false
        var closed = false
        var maxFrameLength = Connection.defaultMaxFrameLength
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
        _close(reader)
        _close(writer)
    }

    // MARK: Size

    /// Items put and not yet taken, in all processes: exact (Python's `qsize()`).
    public var count: Int {
        (try? control.withState { Int($0.pointee.count) }) ?? 0
    }

    /// Whether no item is waiting (Python's `empty()`).
    public var isEmpty: Bool { count == 0 }

    /// Whether `put` would wait (Python's `full()`).
    public var isFull: Bool { maxsize > 0 && count >= maxsize }

    // MARK: Put

    /// Puts an item, waiting up to `timeout` for a free slot (nil: as long as it takes).
    /// - Throws: `QueueError.full` when no slot freed in time; `.closed`; the
    ///   encoder's `EncodingError` (nothing is put then).
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        guard !local.withLock({ $0.closed }) else { throw QueueError.closed }
        let payload = try encoder.encode(item)
        let frame = _Frame.header(forLength: payload.count) + payload
        try takeSlot(timeout: timeout)
        enqueue(frame)
    }

    /// Puts an item if a slot is free now (Python's `put_nowait`).
    /// - Throws: `QueueError.full` when the queue is full.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: .zero)
    }

    private func takeSlot(timeout: Duration?) throws {
        let deadline = timeout.map(_monotonicDeadline(after:))
        try control.withState { block in
            while block.pointee.maxsize > 0 && block.pointee.count >= block.pointee.maxsize {
                if timeout == .zero { throw QueueError.full }
                if try !control.wait(control.notFull, until: deadline),
                   block.pointee.count >= block.pointee.maxsize {
                    throw QueueError.full
                }
            }
            block.pointee.count += 1
            block.pointee.unfinished += 1
        }
    }

    /// Writes the frame now when nothing of this process is waiting and the pipe
    /// has room; otherwise queues it behind the others for the writer thread.
    private func enqueue(_ frame: [UInt8]) {
        drained.enter()
        let written = local.withLock { state -> Bool in
            if state.pendingStart == state.pending.count && !state.writing && writeNow(frame) { return true }
            state.pending.append(frame)
            if !state.writing {
                state.writing = true
                writerQueue.async { self.drain() }  // holds the queue until its frames are written
            }
            return false
        }
        if written { drained.leave() }
    }

    /// The frame, written whole now if it is at most PIPE_BUF bytes, the write lock
    /// is free and the pipe has room; false (nothing written) otherwise. One
    /// non-blocking write of at most PIPE_BUF bytes lands whole or not at all, so
    /// this never waits. (Free space from the pipe's size minus FIONREAD is not
    /// enough to know: the kernel counts a pipe's room in pages.)
    private func writeNow(_ frame: [UInt8]) -> Bool {
        guard frame.count <= Int(PIPE_BUF),
              let result = try? control.lock(control.writeLock, deadline: .zero), result != .timedOut else { return false }
        defer { control.unlock(control.writeLock) }
        let block = control.pointer
        // An abandoned frame (its writer died, or failed) is repaired by the writer
        // thread: the repair may wait for room, and `put` holds `local` here.
        guard block.pointee.write_active == 0 else { return false }
        let wrote = frame.withUnsafeBytes { (try? _writeSome(writer, $0)) ?? 0 }
        guard wrote == frame.count else { return false }
        block.pointee.frames_written += 1  // whole in one write: no progress to record
        return true
    }

    /// The writer thread: writes this process's pending frames, in order.
    private func drain() {
        while let frame = local.withLock({ state -> [UInt8]? in
            if state.pendingStart == state.pending.count {
                state.pending.removeAll(keepingCapacity: true)
                state.pendingStart = 0
                state.writing = false
                return nil
            }
            return state.pending[state.pendingStart]
        }) {
            do {
                _ = try control.lock(control.writeLock, deadline: nil)
                defer { control.unlock(control.writeLock) }
                // A frame left active was abandoned (its writer died, or failed): repair it first.
                if control.pointer.pointee.write_active != 0 { recoverWrite() }
                try writeFrame(frame)
            } catch {
                // writeFrame left the frame active: the next writer pads it out, voids it
                // and frees its slot.
                _writeStandardError("swift-multiprocessing: a queue item could not be written (\(error)); it is dropped.")
            }
            local.withLock { state in
                state.pending[state.pendingStart] = []  // the frame is written: free it now
                state.pendingStart += 1
                if state.pendingStart >= 4096 && state.pendingStart * 2 >= state.pending.count {
                    state.pending.removeFirst(state.pendingStart)
                    state.pendingStart = 0
                }
            }
            drained.leave()
        }
    }

    /// Writes one frame with the write lock held, recording its progress in the
    /// control block so the next writer can finish it if this process dies. The
    /// first write holds the header and is at most PIPE_BUF bytes, so it reaches
    /// the pipe whole or not at all.
    private func writeFrame(_ frame: [UInt8]) throws(Errno) {
        let block = control.pointer
        block.pointee.frames_written += 1
        block.pointee.write_total = Int64(frame.count)
        block.pointee.write_left = Int64(frame.count)
        block.pointee.write_active = 1
        var failure: Errno?
        frame.withUnsafeBytes { bytes in
            var offset = 0
            do throws(Errno) {
                while offset < bytes.count {
                    let end = offset == 0 ? min(bytes.count, Int(PIPE_BUF)) : bytes.count
                    let wrote = try _writeSome(writer, UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                    if wrote == 0 {
                        _ = try _pollWritable(writer, deadline: .now + .milliseconds(20))
                        continue
                    }
                    offset += wrote
                    block.pointee.write_left = Int64(bytes.count - offset)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }  // the frame stays active: see drain
        block.pointee.write_active = 0
    }

    /// After a writer died holding the write lock: finishes its frame with zeros, so
    /// the next frame starts where readers expect, and marks it void (readers skip
    /// it); the dead writer's item is gone, so its slot is freed.
    private func recoverWrite() {
        let block = control.pointer
        guard block.pointee.write_active != 0 else { return }
        // Values from shared memory: any process could have written them.
        let total = max(0, Int(clamping: block.pointee.write_total))
        let leftToWrite = min(max(0, Int(clamping: block.pointee.write_left)), total)
        if leftToWrite == total {
            if block.pointee.frames_written > 0 { block.pointee.frames_written -= 1 }  // nothing of it reached the pipe
        } else {
            var left = leftToWrite
            let zeros = [UInt8](repeating: 0, count: min(left, 1 << 16))
            while left > 0 {
                let wrote = zeros.withUnsafeBytes { (try? _writeSome(writer, UnsafeRawBufferPointer(rebasing: $0[..<min(left, $0.count)]))) ?? 0 }
                if wrote == 0 { _ = try? _pollWritable(writer, deadline: .now + .milliseconds(20)) }
                left -= wrote
            }
            block.pointee.void_frame = block.pointee.frames_written
        }
        block.pointee.write_active = 0
        try? control.withState { state in
            state.pointee.count -= 1
            state.pointee.unfinished -= 1
            control.broadcast(control.notFull)
            if state.pointee.unfinished == 0 { control.broadcast(control.allDone) }
        }
    }

    // MARK: Get

    /// Takes an item, waiting up to `timeout` for one (nil: as long as it takes).
    /// - Throws: `QueueError.empty` when none came in time; `.closed`; the decoder's
    ///   `DecodingError` (the item is taken all the same).
    public func get(timeout: Duration? = nil) throws -> Element {
        guard !local.withLock({ $0.closed }) else { throw QueueError.closed }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let limit = maxFrameLength  // read before the read lock: `local` is not taken under it
        if try control.lock(control.readLock, deadline: timeout) == .timedOut { throw QueueError.empty }
        let payload: [UInt8]
        do {
            defer { control.unlock(control.readLock) }
            // A frame left active was abandoned (its reader died, or failed): skip it first.
            if control.pointer.pointee.read_active != 0 { recoverRead() }
            payload = try takeFrame(deadline: deadline, limit: limit)
        }
        return try decoder.decode(Element.self, from: payload)
    }

    /// Takes an item if one is waiting now (Python's `get_nowait`).
    /// - Throws: `QueueError.empty` when the queue is empty.
    public func getNowait() throws -> Element {
        try get(timeout: .zero)
    }

    /// Reads the next real frame with the read lock held, and frees its slot.
    private func takeFrame(deadline: ContinuousClock.Instant?, limit: Int) throws -> [UInt8] {
        let block = control.pointer
        while true {
            // With no deadline the read itself waits: one system call fewer per item.
            if deadline != nil, try !_pollReadable([reader], deadline: deadline)[0] { throw QueueError.empty }
            block.pointee.frames_read += 1
            block.pointee.read_left = -1
            block.pointee.read_header_have = 0
            block.pointee.read_active = 1
            let payload = try readFrame(limit: limit)
            if block.pointee.void_frame == block.pointee.frames_read {
                // A dead writer's unfinished frame, filled out with zeros: not an item.
                block.pointee.void_frame = 0
                block.pointee.read_active = 0
                continue
            }
            try control.withState { state in
                state.pointee.count -= 1
                state.pointee.read_active = 0
                control.broadcast(control.notFull)
            }
            return payload
        }
    }

    /// Reads one frame, recording progress for `recoverRead` after every read, so
    /// the next reader knows exactly what is left if this one dies or throws.
    private func readFrame(limit maxFrameLength: Int) throws -> [UInt8] {
        let block = control.pointer
        var header = try _readFully(reader, count: 4)
        guard header.count == 4 else { throw QueueError.closed }
        var length = try _Frame.length(fromShortHeader: header)
        if length == nil {
            let long = try _readFully(reader, count: 8)
            header += long
            length = try _Frame.length(fromLongHeader: long)
        }
        block.pointee.read_header_have = Int32(header.count)
        block.pointee.read_left = Int64(length!)
        // The length comes from whoever can write to the pipe: checked before anything
        // is allocated for it, and memory grows only as bytes arrive.
        guard length! <= maxFrameLength else {
            throw ConnectionError(.frameTooLong, "a queue frame of \(length!) bytes is over the limit of \(maxFrameLength) bytes")
        }
        // Read straight into the payload, growing it by at most 1 MiB at a time, so a
        // lying length costs no more memory than the bytes that really arrive.
        var payload: [UInt8] = []
        while payload.count < length! {
            let start = payload.count
            let chunk = min(length! - start, 1 << 20)
            payload.append(contentsOf: repeatElement(0, count: chunk))
            var failure: Errno?
            var got = 0
            payload.withUnsafeMutableBytes { raw in
                do throws(Errno) {
                    while got < chunk {
                        let n = try _readSome(reader, into: UnsafeMutableRawBufferPointer(rebasing: raw[(start + got)..<(start + chunk)]))
                        if n == 0 { break }
                        got += n
                        block.pointee.read_left = Int64(length! - start - got)
                    }
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
            if got < chunk { throw QueueError.closed }
        }
        return payload
    }

    /// After a reader died holding the read lock: skips the rest of the frame it had
    /// begun (its item is gone with it, so its slot is freed).
    private func recoverRead() {
        let block = control.pointer
        guard block.pointee.read_active != 0 else { return }
        if block.pointee.read_left < 0 {
            // It died before its header read was recorded: nothing of the frame was taken.
            if block.pointee.frames_read > 0 { block.pointee.frames_read -= 1 }
        } else {
            var left = max(0, Int(clamping: block.pointee.read_left))  // from shared memory
            while left > 0, let chunk = try? _readFully(reader, count: min(left, 1 << 16)), !chunk.isEmpty {
                left -= chunk.count
            }
            if block.pointee.void_frame == block.pointee.frames_read {
                block.pointee.void_frame = 0
                block.pointee.read_active = 0
                return
            }
            try? control.withState { state in
                state.pointee.count -= 1
                control.broadcast(control.notFull)
            }
        }
        block.pointee.read_active = 0
    }

    // MARK: Closing and flushing

    /// Closes the queue in this process: `put` and `get` here then throw `.closed`.
    /// Frames already put are still written (Python's `close()`); other processes go on.
    public func close() {
        local.withLock { $0.closed = true }
    }

    /// Waits until this process's put items are all in the pipe, up to `timeout`
    /// (nil: as long as it takes). Python's `join_thread()`.
    /// - Returns: Whether everything was written.
    @discardableResult
    public func flush(timeout: Duration? = nil) -> Bool {
        guard let timeout else { drained.wait(); return true }
        let seconds = min(max(timeout.components.seconds, 0), 1 << 32)  // no overflow for huge timeouts
        let nanoseconds = seconds * 1_000_000_000 + max(timeout.components.attoseconds, 0) / 1_000_000_000
        return drained.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .success
    }

    /// Items put in this process and not yet written to the pipe.
    public var pendingCount: Int { local.withLock { $0.pending.count - $0.pendingStart } }

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
