import MessagePack
import Synchronization
import SystemPackage

/// One end of a pipe between processes, carrying frames in Python's
/// `multiprocessing.connection` format, each holding one MessagePack value.
///
/// ```swift
/// let (left, right) = try Connection.pipe()
/// try left.send(Order(id: 1, item: "tea"))
/// let order = try right.receive(Order.self)
/// ```
///
/// A Python process with `multiprocessing.connection.Connection(fd)` and the
/// `msgpack` package is a peer: `send_bytes(msgpack.packb(value))` and
/// `msgpack.unpackb(recv_bytes())`. Like Python's, a connection is for one
/// reader and one writer at a time; a `Queue` is for many.
public final class Connection: Sendable {
    /// The descriptor, owned by the connection: `close()` or deinit closes it.
    /// Reading or writing it directly is outside the connection's knowledge: once
    /// `close()` was called, its number may already name another file.
    public let fileDescriptor: FileDescriptor
    /// Whether this end reads (`receive`) and writes (`send`).
    public let isReadable: Bool
    public let isWritable: Bool

    private let state: Mutex<State>
    private let encoder = MessagePackEncoder()
    private let decoder = MessagePackDecoder()

    /// Who uses the descriptor, as Go's fdMutex counts them: `close()` stops new
    /// users and wakes the waiting ones, and the last user out closes the
    /// descriptor, so no call ever reads, polls or closes a number that another
    /// file took after `close()`.
    private struct State {
        /// `close()` was called: no operation starts any more.
        var closed = false
        /// Operations inside `withDescriptors` (or a `wait`) now.
        var users = 0
        /// The descriptor and the wake-up eventfd are closed.
        var released = false
        /// The eventfd `close()` signals to wake readers and pollers, who wait in
        /// poll() on it beside the descriptor. Made on first read or poll, so an end
        /// that only sends costs no extra descriptor.
        var wakeUp: FileDescriptor?
        var unreadable: ConnectionError?
        var maxFrameLength: Int

        /// Marks the descriptors closed and returns them, for the caller to close
        /// once out of the lock.
        mutating func release(_ fd: FileDescriptor) -> [FileDescriptor] {
            released = true
            defer { wakeUp = nil }
            return [fd] + (wakeUp.map { [$0] } ?? [])
        }
    }

    /// What one operation holds open until it ends: the descriptor, and the
    /// eventfd that `close()` signals (for readers and pollers).
    fileprivate struct Descriptors {
        let fd: FileDescriptor
        let wakeUp: FileDescriptor?
    }

    /// The default `maxFrameLength`: 1 GiB.
    public static let defaultMaxFrameLength = 1 << 30

    /// The memory a payload's read starts with (all of it, for a frame this size
    /// or smaller); it then at most doubles as bytes arrive.
    static let firstReadSize = 1 << 16

    /// Takes ownership of a descriptor (from a pipe, a socket, or a parent process).
    /// - Parameters:
    ///   - fileDescriptor: The descriptor; the connection closes it.
    ///   - readable: Whether this end reads.
    ///   - writable: Whether this end writes.
    public init(owning fileDescriptor: FileDescriptor, readable: Bool = true, writable: Bool = true) {
        _ignoreSIGPIPE
        self.fileDescriptor = fileDescriptor
        self.isReadable = readable
        self.isWritable = writable
        self.state = Mutex(State(maxFrameLength: Connection.defaultMaxFrameLength))
    }

    deinit {
        // No operation can be running: each holds a reference to the connection.
        let open = state.withLock { $0.released ? [] : $0.release(fileDescriptor) }
        open.forEach(_close)
    }

    /// A pair of connected ends, as Python's `multiprocessing.Pipe(duplex)`.
    /// - Parameter duplex: `true` (the default): both ends read and write (a Unix
    ///   socket pair). `false`: the first end only reads and the second only writes
    ///   (a pipe, grown with F_SETPIPE_SZ).
    /// - Throws: `ConnectionError` with the system's error if the descriptors cannot be made.
    public static func pipe(duplex: Bool = true) throws(ConnectionError) -> (Connection, Connection) {
        do {
            if duplex {
                let (a, b) = try _socketPair()
                return (Connection(owning: a), Connection(owning: b))
            }
            let (read, write) = try _pipe()
            _ = _growPipe(write, to: 1 << 20)
            return (Connection(owning: read, readable: true, writable: false),
                    Connection(owning: write, readable: false, writable: true))
        } catch {
            throw .system(error, "creating a pipe")
        }
    }

    /// The longest frame `receive` accepts; checked before anything is allocated.
    public var maxFrameLength: Int {
        get { state.withLock { $0.maxFrameLength } }
        set { state.withLock { $0.maxFrameLength = newValue } }
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// The wake-up eventfd, while the connection has one (for tests).
    var wakeUpDescriptor: FileDescriptor? { state.withLock { $0.wakeUp } }

    /// Closes this end. The other end then reads end of file. Closing twice does nothing.
    ///
    /// Safe while other threads use the connection: a `receive`, `poll` or `wait`
    /// waiting on it returns at once (`receive` and `poll` throw `.closed`), and
    /// the descriptor is closed when the last of them is out, so none of them ever
    /// touches a file that took its number. A `send` blocked on a full pipe is not
    /// woken: it ends when the other end reads or closes, and the descriptor is
    /// closed then (waking it would cost a poll before every page written).
    public func close() {
        let toClose = state.withLock { state -> [FileDescriptor] in
            guard !state.closed else { return [] }
            state.closed = true
            if state.users == 0 { return state.release(fileDescriptor) }
            // Under the lock: the last user out may close the eventfd once it is released.
            if let wakeUp = state.wakeUp { _signalEventDescriptor(wakeUp) }
            return []
        }
        toClose.forEach(_close)
    }

    /// Registers an operation as a user of the descriptors, which stay open until
    /// `endUse()`; `wakeable` operations (reads, polls) get the wake-up eventfd.
    /// - Throws: `.closed` once `close()` was called; `.system` if the eventfd cannot be made.
    fileprivate func beginUse(wakeable: Bool) throws(ConnectionError) -> Descriptors {
        try state.withLock { (state) throws(ConnectionError) in
            guard !state.closed else { throw ConnectionError(.closed, "the connection is closed") }
            if wakeable && state.wakeUp == nil {
                do throws(Errno) {
                    state.wakeUp = try _eventDescriptor()
                } catch {
                    throw .system(error, "making the connection's wake-up eventfd")
                }
            }
            state.users += 1
            return Descriptors(fd: fileDescriptor, wakeUp: wakeable ? state.wakeUp : nil)
        }
    }

    /// Ends what `beginUse` began; the last user out after `close()` closes the descriptors.
    fileprivate func endUse() {
        let toClose = state.withLock { state -> [FileDescriptor] in
            state.users -= 1
            return state.closed && state.users == 0 ? state.release(fileDescriptor) : []
        }
        toClose.forEach(_close)
    }

    /// Keeps the descriptor open while it is handed to a child (`close()` meanwhile
    /// leaves the closing to `endHandOver()`), so the child never receives a number
    /// that another file took.
    func beginHandOver() throws(ConnectionError) -> FileDescriptor {
        try beginUse(wakeable: false).fd
    }

    func endHandOver() { endUse() }

    private func withDescriptors<R>(
        wakeable: Bool, _ body: (Descriptors) throws(ConnectionError) -> R
    ) throws(ConnectionError) -> R {
        let descriptors = try beginUse(wakeable: wakeable)
        defer { endUse() }
        return try body(descriptors)
    }

    // MARK: Bytes

    /// Sends one frame holding `bytes`.
    /// - Throws: `ConnectionError`: `.closed`, `.wrongDirection`, or `.system`
    ///   (EPIPE when the other end is closed).
    public func sendBytes(_ bytes: some Collection<UInt8>) throws(ConnectionError) {
        try check(writing: true)
        let header = _Frame.header(forLength: bytes.count)
        try withDescriptors(wakeable: false) { (io) throws(ConnectionError) in
            do throws(Errno) {
                if bytes.count <= 16384 {
                    // One write for small frames: atomic on a pipe (up to PIPE_BUF) and one syscall.
                    try _writeFully(io.fd, header + bytes)
                } else {
                    try _writeFully(io.fd, header)
                    try _writeFully(io.fd, bytes as? [UInt8] ?? Array(bytes))
                }
            } catch {
                throw .system(error, "writing a frame")
            }
        }
    }

    /// Receives one frame's payload.
    /// - Parameter maxLength: The longest payload accepted (default: `maxFrameLength`).
    ///   A longer frame throws `.frameTooLong` before anything is allocated for it.
    /// - Throws: `ConnectionError`: `.endOfFile` when the other end closed (before
    ///   or inside a frame), `.frameTooLong`, `.invalidFrame`, `.closed` (also when
    ///   `close()` is called meanwhile), `.system`.
    public func receiveBytes(maxLength: Int? = nil) throws(ConnectionError) -> [UInt8] {
        try check(writing: false)
        return try withDescriptors(wakeable: true) { (io) throws(ConnectionError) in
            if let broken = state.withLock({ $0.unreadable }) { throw broken }
            let limit = maxLength ?? maxFrameLength
            let header = try readExactly(4, what: "a frame header", atBoundary: true, io)
            // From here a failure leaves the rest of this frame in the pipe, and the next
            // read would take payload bytes for a header: the connection stays unreadable.
            do throws(ConnectionError) {
                var length = try _Frame.length(fromShortHeader: header)
                if length == nil {
                    length = try _Frame.length(fromLongHeader: readExactly(8, what: "a frame's 8-byte length", atBoundary: false, io))
                }
                let size = length!
                guard size <= limit else {
                    throw ConnectionError(.frameTooLong, "a frame of \(size) bytes is over the limit of \(limit) bytes")
                }
                return try readPayload(size, io)
            } catch {
                if error.code != .closed { state.withLock { $0.unreadable = $0.unreadable ?? error } }
                throw error
            }
        }
    }

    /// A frame's payload of `size` bytes, in memory that grows with the bytes that
    /// arrive (at most doubling each time), never sized from the header alone: the
    /// length is the other end's word, and 4 bytes could otherwise claim a GiB.
    /// A frame of up to `firstReadSize` bytes takes one allocation of its size.
    private func readPayload(_ size: Int, _ io: Descriptors) throws(ConnectionError) -> [UInt8] {
        var bytes: [UInt8] = []
        repeat {
            let capacity = min(size, max(Self.firstReadSize, 2 * bytes.count))
            bytes = try read(upTo: capacity, after: bytes, what: "a frame's payload of \(size) bytes", io)
            guard bytes.count == capacity else {
                throw ConnectionError(.endOfFile, "the other end closed the connection inside a frame's payload of \(size) bytes (\(bytes.count) of \(size) bytes)")
            }
        } while bytes.count < size
        return bytes
    }

    private func readExactly(_ count: Int, what: String, atBoundary: Bool, _ io: Descriptors) throws(ConnectionError) -> [UInt8] {
        let bytes = try read(upTo: count, after: [], what: what, io)
        let got = bytes.count
        guard got == count else {
            throw ConnectionError(.endOfFile, atBoundary && got == 0
                ? "the other end closed the connection"
                : "the other end closed the connection inside \(what) (\(got) of \(count) bytes)")
        }
        return bytes
    }

    /// `prefix` followed by what arrives, up to `capacity` bytes in all, in a new
    /// array of that capacity; shorter only at end of file.
    private func read(upTo capacity: Int, after prefix: [UInt8], what: String, _ io: Descriptors) throws(ConnectionError) -> [UInt8] {
        guard capacity > prefix.count else { return prefix }
        return try [UInt8](unsafeUninitializedCapacity: capacity) { (buffer, count) throws(ConnectionError) in
            _ = buffer.initialize(fromContentsOf: prefix)
            count = prefix.count
            while count < capacity {
                // Waits beside the wake-up eventfd: close() makes this throw `.closed`.
                guard try Self.waitReadable([io], until: nil)[0] else { continue }
                let free = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[count...]))
                let got: Int
                do throws(Errno) { got = try _read(io.fd, into: free) } catch { throw .system(error, "reading \(what)") }
                if got == 0 { break }
                count += got
            }
        }
    }

    /// Which of the operations' descriptors have something to read (a frame, end of
    /// file), waiting up to `deadline`; a connection closed meanwhile counts as ready
    /// when `closedIsReady`, and otherwise throws `.closed`.
    fileprivate static func waitReadable(
        _ operations: [Descriptors], until deadline: _Deadline?, closedIsReady: Bool = false
    ) throws(ConnectionError) -> [Bool] {
        var fds: [FileDescriptor] = []
        for operation in operations {
            fds.append(operation.fd)
            if let wakeUp = operation.wakeUp { fds.append(wakeUp) }
        }
        let ready: [Bool]
        do {
            ready = try _pollReadable(fds, deadline: deadline)
        } catch {
            throw .system(error, "polling")
        }
        var result: [Bool] = []
        var index = 0
        for operation in operations {
            var isReady = ready[index]
            if operation.wakeUp != nil {
                index += 1
                if ready[index] {
                    // Only close() signals the eventfd; closed connections never read again.
                    guard closedIsReady else { throw ConnectionError(.closed, "the connection was closed while waiting") }
                    isReady = true
                }
            }
            index += 1
            result.append(isReady)
        }
        return result
    }

    /// Fails early, as before the descriptor is touched; `beginUse` checks `closed` again under the lock.
    private func check(writing: Bool) throws(ConnectionError) {
        if isClosed { throw ConnectionError(.closed, "the connection is closed") }
        if writing && !isWritable { throw ConnectionError(.wrongDirection, "this end of the pipe only reads") }
        if !writing && !isReadable { throw ConnectionError(.wrongDirection, "this end of the pipe only writes") }
    }

    // MARK: Values

    /// Sends a value as one frame of MessagePack.
    /// - Throws: The encoder's `EncodingError` (nothing is sent then), or a `ConnectionError`.
    public func send<T: Encodable>(_ value: T) throws {
        try sendBytes(encoder.encode(value))
    }

    /// Receives one frame and decodes it as `T`.
    /// - Parameter timeout: How long to wait for a frame to begin; `nil` waits forever.
    /// - Throws: `ConnectionError` (`.timedOut` when no frame began in time, and as
    ///   `receiveBytes`), or the decoder's `DecodingError` (the frame is consumed).
    public func receive<T: Decodable>(_ type: T.Type = T.self, timeout: Duration? = nil) throws -> T {
        if let timeout, try !poll(timeout: timeout) {
            throw ConnectionError(.timedOut, "no frame arrived within \(timeout)")
        }
        return try decoder.decode(type, from: receiveBytes())
    }

    /// Whether there is something to read (a frame, or end of file), waiting up
    /// to `timeout` (`nil`: until there is). Python's `Connection.poll`.
    /// - Throws: `.closed`, also when `close()` is called meanwhile; `.wrongDirection`; `.system`.
    public func poll(timeout: Duration? = .zero) throws(ConnectionError) -> Bool {
        try check(writing: false)
        return try withDescriptors(wakeable: true) { (io) throws(ConnectionError) in
            try Self.waitReadable([io], until: .after(timeout))[0]
        }
    }
}

/// The connections that have something to read (a frame, or end of file), waiting
/// up to `timeout` (`nil`: until one has) — Python's `multiprocessing.connection.wait`.
/// Connections already closed are left out; one closed while this waits is
/// returned among the ready ones (its `receive` then throws `.closed`).
/// - Returns: The ready connections, in the order given; empty when the time ran out.
public func wait(_ connections: [Connection], timeout: Duration? = nil) throws(ConnectionError) -> [Connection] {
    var open: [Connection] = []
    var operations: [Connection.Descriptors] = []
    defer { open.forEach { $0.endUse() } }
    for connection in connections {
        do {
            operations.append(try connection.beginUse(wakeable: true))
            open.append(connection)
        } catch where error.code == .closed {
            continue
        }
    }
    let ready = try Connection.waitReadable(operations, until: .after(timeout), closedIsReady: true)
    return zip(open, ready).filter { $0.1 }.map { $0.0 }
}
