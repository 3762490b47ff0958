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
///
/// `send`, `receive` and `receiveBytes` have async forms that suspend instead of
/// blocking a thread, and `messages(_:)` is the frames as an `AsyncSequence`
/// (Connection+Async.swift).
public final class Connection: Sendable {
    /// The descriptor, owned by the connection: `close()` or deinit closes it.
    /// Reading or writing it directly is outside the connection's knowledge: once
    /// `close()` was called, its number may already name another file.
    public let fileDescriptor: FileDescriptor
    /// Whether this end reads (`receive`): false for the write end of a one-way pipe.
    public let isReadable: Bool
    /// Whether this end writes (`send`): false for the read end of a one-way pipe.
    public let isWritable: Bool

    private let state: Mutex<State>
    /// The frame being read, apart from `state` so that reading never holds up a
    /// sender or `close()`; held only for reads that do not wait.
    private let reading = Mutex(_FrameAssembly())
    /// Whether the descriptor is a socket: 0 not looked at yet, 1 yes, 2 no.
    private let descriptorKind = Atomic<UInt8>(0)
    let encoder = MessagePackEncoder()
    let decoder = MessagePackDecoder()

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
    struct Descriptors {
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
    /// Safe while other threads and tasks use the connection: a `receive`, `poll`
    /// or `wait` waiting on it returns at once (`receive` and `poll` throw
    /// `.closed`), as does an async `send` waiting for room, and the descriptor is
    /// closed when the last of them is out, so none of them ever touches a file that
    /// took its number. A blocking `send` on a full pipe is not woken: it ends when
    /// the other end reads or closes, and the descriptor is closed then (waking it
    /// would cost a poll before every page written).
    public func close() {
        let (toClose, inUse) = state.withLock { state -> ([FileDescriptor], Bool) in
            guard !state.closed else { return ([], false) }
            state.closed = true
            if state.users == 0 { return (state.release(fileDescriptor), false) }
            // Under the lock: the last user out may close the eventfd once it is released.
            if let wakeUp = state.wakeUp { _signalEventDescriptor(wakeUp) }
            return ([], true)
        }
        toClose.forEach(_close)
        // Async waiters (which hold the descriptor open) try again, and see `closed`.
        if inUse { _Reactor.wakeAllIfStarted(fileDescriptor) }
    }

    /// Registers an operation as a user of the descriptors, which stay open until
    /// `endUse()`; `wakeable` operations (reads, polls) get the wake-up eventfd.
    /// - Throws: `.closed` once `close()` was called; `.system` if the eventfd cannot be made.
    func beginUse(wakeable: Bool) throws(ConnectionError) -> Descriptors {
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
    func endUse() {
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

    /// Sends several frames, as few writes as their size allows (one, up to 64 KiB):
    /// a pool sends a worker the requests that queued up for it together. Not atomic
    /// on a pipe, so only for a connection that one sender at a time writes to.
    func sendFrames(_ payloads: [[UInt8]]) throws(ConnectionError) {
        try check(writing: true)
        try withDescriptors(wakeable: false) { (io) throws(ConnectionError) in
            var batch: [UInt8] = []
            do throws(Errno) {
                for payload in payloads {
                    batch += _Frame.header(forLength: payload.count)
                    batch += payload
                    if batch.count >= 65536 {
                        try _writeFully(io.fd, batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                if !batch.isEmpty { try _writeFully(io.fd, batch) }
            } catch {
                throw .system(error, "writing frames")
            }
        }
    }

    /// Receives one frame's payload.
    /// - Parameter maxLength: The longest payload accepted (default: `maxFrameLength`).
    ///   A longer frame throws `.frameTooLong` before anything is allocated for it.
    /// - Throws: `ConnectionError`: `.endOfFile` when the other end closed (before
    ///   or inside a frame), `.frameTooLong`, `.invalidFrame`, `.closed` (also when
    ///   `close()` is called meanwhile), `.system`.
    ///
    /// A frame that an async `receive` began and did not finish (it was cancelled or
    /// timed out) is continued here: nothing of it is lost or read twice.
    public func receiveBytes(maxLength: Int? = nil) throws(ConnectionError) -> [UInt8] {
        try check(writing: false)
        let limit = maxLength ?? maxFrameLength
        return try withDescriptors(wakeable: true) { (io) throws(ConnectionError) in
            while true {
                switch try readAvailable(io.fd, limit: limit) {
                case .frame(let payload)?: return payload
                case .endOfFile?: throw ConnectionError(.endOfFile, "the other end closed the connection")
                // Waits beside the wake-up eventfd: close() makes this throw `.closed`.
                case nil: _ = try Self.waitReadable([io], until: nil)
                }
            }
        }
    }

    /// Takes what has arrived of the current frame without waiting: the payload once
    /// the frame is whole, `.endOfFile` at a frame boundary, nil while more is to
    /// come. Called by a user of the descriptor (between `beginUse` and `endUse`).
    /// - Throws: `.closed` once `close()` was called; otherwise as `receiveBytes`.
    func readAvailable(_ fd: FileDescriptor, limit: Int) throws(ConnectionError) -> _Received? {
        if isClosed { throw ConnectionError(.closed, "the connection was closed while waiting") }
        let socket = isSocket(fd)
        return try reading.withLock { (assembly) throws(ConnectionError) -> _Received? in
            try assembly.advance(fd, isSocket: socket, limit: limit)
        }
    }

    /// Whether the descriptor is a socket (looked at once); called by a user of it.
    func isSocket(_ fd: FileDescriptor) -> Bool {
        switch descriptorKind.load(ordering: .relaxed) {
        case 1: return true
        case 2: return false
        default:
            let socket = _isSocket(fd)
            descriptorKind.store(socket ? 1 : 2, ordering: .relaxed)
            return socket
        }
    }

    /// Bytes of a frame that a receive began and left unfinished (for tests).
    var bytesOfUnfinishedFrame: Int { reading.withLock { $0.headerCount + $0.received } }

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
    func check(writing: Bool) throws(ConnectionError) {
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
    /// - Parameters:
    ///   - type: The type to decode (inferred from the context when left out).
    ///   - timeout: How long to wait for a frame to begin; `nil` waits forever.
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
        if hasStagedBytes { return true }
        return try withDescriptors(wakeable: true) { (io) throws(ConnectionError) in
            try Self.waitReadable([io], until: .after(timeout))[0]
        }
    }

    /// Bytes read ahead and not yet taken: readable, though the descriptor is not.
    var hasStagedBytes: Bool { reading.withLock { $0.hasStagedBytes } }

    /// Turns on read-ahead, for a connection no other process reads (a pool's, at
    /// each end): one read then takes every frame that has arrived (up to 64 KiB),
    /// and the frames after the first are taken from memory. Bytes read ahead
    /// would be lost to a process the descriptor is handed to, so it is off by default.
    /// (SPI: for the fuzzer, which reads both ways.)
    @_spi(Fuzzing) public func enableReadAhead() {
        reading.withLock { $0.readsAhead = true }
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
    // Bytes read ahead (a pool's connections) are ready without the descriptor.
    let staged = open.filter(\.hasStagedBytes)
    if !staged.isEmpty { return staged }
    let ready = try Connection.waitReadable(operations, until: .after(timeout), closedIsReady: true)
    return zip(open, ready).filter { $0.1 }.map { $0.0 }
}

/// What a read that does not wait found: a whole frame's payload, or end of file
/// at a frame boundary (nothing lost).
enum _Received: Sendable {
    case frame([UInt8])
    case endOfFile
}

/// The frame being read, kept between reads so that a receive that stops half-way
/// (cancelled, timed out) loses nothing: the next receive, async or blocking,
/// goes on with the same frame. It takes bytes from the descriptor no further
/// than the frame's end, so the kernel holds everything after it, and `poll` and
/// `wait` still say truly whether a frame is readable.
///
/// Every read here takes only what has arrived, so holding the lock around one
/// never blocks a thread: on a socket `recv(MSG_DONTWAIT)`; on a pipe a `read`
/// after `poll` said it holds something (a pipe's read returns what is there).
/// The descriptor stays blocking: child processes share it.
private struct _FrameAssembly {
    /// The header's bytes so far: 4, or 12 when the first 4 are -1.
    var header = [UInt8](repeating: 0, count: 12)
    var headerCount = 0
    /// The payload's length, once the header is whole.
    var length: Int?
    /// The payload's memory (zeroed beyond `received`): at most twice the bytes
    /// received, never sized from the header alone (it could claim a GiB).
    var payload: [UInt8] = []
    var received = 0
    /// Why no frame can be read any more: a failure inside a frame leaves the rest
    /// of it in the pipe, and the next read would take payload for a header.
    var broken: ConnectionError?

    /// Read-ahead (`Connection.enableReadAhead`): bytes read past the current frame,
    /// `stage[staged]`, taken before the descriptor is read again.
    var readsAhead = false
    private var stage: [UInt8] = []
    private var staged: Range<Int> = 0..<0
    private static let stageSize = 1 << 16

    var hasStagedBytes: Bool { !staged.isEmpty }

    mutating func advance(_ fd: FileDescriptor, isSocket: Bool, limit: Int) throws(ConnectionError) -> _Received? {
        if let broken { throw broken }
        do throws(ConnectionError) {
            return try step(fd, isSocket: isSocket, limit: limit)
        } catch {
            if headerCount > 0 { broken = error }
            throw error
        }
    }

    private mutating func step(_ fd: FileDescriptor, isSocket: Bool, limit: Int) throws(ConnectionError) -> _Received? {
        while true {
            guard let size = length else {
                let long = headerCount >= 4
                let what = long ? "a frame's 8-byte length" : "a frame header"
                guard let got = try fill(fd, isSocket, into: .header, headerCount..<(long ? 12 : 4), what: what) else { return nil }
                if got == 0 {
                    if headerCount == 0 { return .endOfFile }
                    throw ConnectionError(.endOfFile, "the other end closed the connection inside \(what) (\(long ? headerCount - 4 : headerCount) of \(long ? 8 : 4) bytes)")
                }
                headerCount += got
                if headerCount == 4 {
                    length = try _Frame.length(fromShortHeader: Array(header[0..<4]))  // nil: 8 more bytes to come
                } else if headerCount == 12 {
                    length = try _Frame.length(fromLongHeader: Array(header[4..<12]))
                }
                continue
            }
            guard size <= limit else {
                throw ConnectionError(.frameTooLong, "a frame of \(size) bytes is over the limit of \(limit) bytes")
            }
            if received == size {
                let frame = payload
                (headerCount, length, payload, received) = (0, nil, [], 0)
                return .frame(frame)
            }
            if received == payload.count {
                // At most doubling: memory follows the bytes that came. (Array(repeating:)
                // is a memset even unoptimized; appending zeros is not.)
                var grown = [UInt8](repeating: 0, count: min(size, max(Connection.firstReadSize, 2 * received)))
                grown.withUnsafeMutableBytes { new in payload.withUnsafeBytes { new.copyMemory(from: $0) } }
                payload = grown
            }
            guard let got = try fill(fd, isSocket, into: .payload, received..<payload.count, what: "a frame's payload of \(size) bytes") else { return nil }
            if got == 0 {
                throw ConnectionError(.endOfFile, "the other end closed the connection inside a frame's payload of \(size) bytes (\(received) of \(size) bytes)")
            }
            received += got
        }
    }

    /// Which buffer a `fill` writes.
    private enum Part { case header, payload }

    /// `readNow`, through the stage when reading ahead: what is staged first; when
    /// nothing is, one read of up to `stageSize` into it (for a small want).
    private mutating func fill(
        _ fd: FileDescriptor, _ isSocket: Bool, into part: Part, _ range: Range<Int>,
        what: @autoclosure () -> String
    ) throws(ConnectionError) -> Int? {
        // Moved out while it is written (no copy), so that the stage can be used
        // meanwhile. (By a switch: a key path here cost more than the read, per frame.)
        var buffer: [UInt8]
        switch part {
        case .header: (buffer, header) = (header, [])
        case .payload: (buffer, payload) = (payload, [])
        }
        defer {
            switch part {
            case .header: header = buffer
            case .payload: payload = buffer
            }
        }
        if staged.isEmpty && readsAhead && range.count < Self.stageSize {
            if stage.isEmpty { stage = [UInt8](repeating: 0, count: Self.stageSize) }
            guard let got = try Self.readNow(fd, isSocket, into: &stage, 0..<Self.stageSize, what: what()) else { return nil }
            if got == 0 { return 0 }
            staged = 0..<got
        }
        guard !staged.isEmpty else { return try Self.readNow(fd, isSocket, into: &buffer, range, what: what()) }
        let count = min(range.count, staged.count)
        let from = staged.lowerBound
        buffer.withUnsafeMutableBytes { to in
            stage.withUnsafeBytes { stage in
                UnsafeMutableRawBufferPointer(rebasing: to[range.lowerBound..<range.lowerBound + count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: stage[from..<from + count]))
            }
        }
        staged = from + count..<staged.upperBound
        return count
    }

    /// Reads into `buffer[range]` what has arrived, without waiting: how much (0:
    /// end of file), or nil when nothing has.
    private static func readNow(
        _ fd: FileDescriptor, _ isSocket: Bool, into buffer: inout [UInt8], _ range: Range<Int>, what: @autoclosure () -> String
    ) throws(ConnectionError) -> Int? {
        var outcome: Result<Int?, Errno> = .success(nil)
        buffer.withUnsafeMutableBytes { raw in
            let free = UnsafeMutableRawBufferPointer(rebasing: raw[range])
            outcome = Result { () throws(Errno) -> Int? in
                if isSocket { return try _receiveNow(fd, into: free) }
                // Readable (bytes, end of file or an error): the read returns at once.
                guard try _isReadyNow(fd) else { return nil }
                return try _read(fd, into: free)
            }
        }
        do throws(Errno) { return try outcome.get() } catch { throw .system(error, "reading \(what())") }
    }
}
