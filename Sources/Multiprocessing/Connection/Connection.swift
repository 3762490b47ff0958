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
    public let fileDescriptor: FileDescriptor
    /// Whether this end reads (`receive`) and writes (`send`).
    public let isReadable: Bool
    public let isWritable: Bool

    private let state: Mutex<State>
    private let encoder = MessagePackEncoder()
    private let decoder = MessagePackDecoder()

    private struct State {
        var closed = false
        var unreadable: ConnectionError?
        var maxFrameLength: Int
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
        if !state.withLock({ $0.closed }) { _close(fileDescriptor) }
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

    /// Closes this end. The other end then reads end of file. Closing twice does nothing.
    public func close() {
        let wasOpen = state.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
        if wasOpen { _close(fileDescriptor) }
    }

    // MARK: Bytes

    /// Sends one frame holding `bytes`.
    /// - Throws: `ConnectionError`: `.closed`, `.wrongDirection`, or `.system`
    ///   (EPIPE when the other end is closed).
    public func sendBytes(_ bytes: some Collection<UInt8>) throws(ConnectionError) {
        try check(writing: true)
        let header = _Frame.header(forLength: bytes.count)
        do {
            if bytes.count <= 16384 {
                // One write for small frames: atomic on a pipe (up to PIPE_BUF) and one syscall.
                try _writeFully(fileDescriptor, header + bytes)
            } else {
                try _writeFully(fileDescriptor, header)
                try _writeFully(fileDescriptor, bytes as? [UInt8] ?? Array(bytes))
            }
        } catch {
            throw .system(error, "writing a frame")
        }
    }

    /// Receives one frame's payload.
    /// - Parameter maxLength: The longest payload accepted (default: `maxFrameLength`).
    ///   A longer frame throws `.frameTooLong` before anything is allocated for it.
    /// - Throws: `ConnectionError`: `.endOfFile` when the other end closed (before
    ///   or inside a frame), `.frameTooLong`, `.invalidFrame`, `.closed`, `.system`.
    public func receiveBytes(maxLength: Int? = nil) throws(ConnectionError) -> [UInt8] {
        try check(writing: false)
        if let broken = state.withLock({ $0.unreadable }) { throw broken }
        let limit = maxLength ?? maxFrameLength
        var length = try _Frame.length(fromShortHeader: readExactly(4, what: "a frame header", atBoundary: true))
        if length == nil {
            length = try _Frame.length(fromLongHeader: readExactly(8, what: "a frame's 8-byte length", atBoundary: false))
        }
        let size = length!
        guard size <= limit else {
            let error = ConnectionError(.frameTooLong, "a frame of \(size) bytes is over the limit of \(limit) bytes")
            state.withLock { $0.unreadable = error }  // its payload is still in the pipe
            throw error
        }
        return try readPayload(size)
    }

    /// A frame's payload of `size` bytes, in memory that grows with the bytes that
    /// arrive (at most doubling each time), never sized from the header alone: the
    /// length is the other end's word, and 4 bytes could otherwise claim a GiB.
    /// A frame of up to `firstReadSize` bytes takes one allocation of its size.
    private func readPayload(_ size: Int) throws(ConnectionError) -> [UInt8] {
        var bytes: [UInt8] = []
        repeat {
            let capacity = min(size, max(Self.firstReadSize, 2 * bytes.count))
            bytes = try read(upTo: capacity, after: bytes, what: "a frame's payload of \(size) bytes")
            guard bytes.count == capacity else {
                throw ConnectionError(.endOfFile, "the other end closed the connection inside a frame's payload of \(size) bytes (\(bytes.count) of \(size) bytes)")
            }
        } while bytes.count < size
        return bytes
    }

    private func readExactly(_ count: Int, what: String, atBoundary: Bool) throws(ConnectionError) -> [UInt8] {
        let bytes = try read(upTo: count, after: [], what: what)
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
    private func read(upTo capacity: Int, after prefix: [UInt8], what: String) throws(ConnectionError) -> [UInt8] {
        guard capacity > prefix.count else { return prefix }
        return try [UInt8](unsafeUninitializedCapacity: capacity) { (buffer, count) throws(ConnectionError) in
            _ = buffer.initialize(fromContentsOf: prefix)
            count = prefix.count
            while count < capacity {
                let free = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[count...]))
                let got: Int
                do throws(Errno) { got = try _read(fileDescriptor, into: free) } catch { throw .system(error, "reading \(what)") }
                if got == 0 { break }
                count += got
            }
        }
    }

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
    public func poll(timeout: Duration? = .zero) throws(ConnectionError) -> Bool {
        try check(writing: false)
        do {
            return try _pollReadable([fileDescriptor], deadline: .after(timeout))[0]
        } catch {
            throw .system(error, "polling")
        }
    }
}

/// The connections that have something to read (a frame, or end of file), waiting
/// up to `timeout` (`nil`: until one has) — Python's `multiprocessing.connection.wait`.
/// - Returns: The ready connections, in the order given; empty when the time ran out.
public func wait(_ connections: [Connection], timeout: Duration? = nil) throws(ConnectionError) -> [Connection] {
    let open = connections.filter { !$0.isClosed }
    do {
        let ready = try _pollReadable(open.map(\.fileDescriptor), deadline: .after(timeout))
        return zip(open, ready).filter { $0.1 }.map { $0.0 }
    } catch {
        throw .system(error, "waiting on connections")
    }
}
