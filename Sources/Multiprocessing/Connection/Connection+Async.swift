import CSystemShims
import MessagePack
import SystemPackage

/// The async forms: the same frames, suspending instead of blocking a thread.
///
/// A call that has to wait costs no thread of the cooperative pool: it tries its
/// read or write without blocking and, when that would wait, suspends in
/// `_Reactor` (the process's one epoll thread) until the descriptor is readable or
/// writable, then tries again. The descriptor stays blocking, as the child
/// processes sharing it expect: a socket is read and written with `MSG_DONTWAIT`,
/// a pipe read after `poll` says it holds something, and written `PIPE_BUF` bytes
/// at a time after `poll` says it has room for them.
///
/// Cancellation is prompt and loses nothing:
/// - A cancelled `receive` throws `CancellationError` and leaves the connection
///   usable: the bytes of a frame that had begun to arrive stay in the connection,
///   and the next receive (async or blocking) returns that frame whole. Every frame
///   is returned by exactly one receive: none is skipped, split or returned twice.
/// - A cancelled `send` throws `CancellationError` if it had written nothing, and
///   then nothing was sent. Once the frame's first byte is written, the frame is
///   written to its end (a half frame would make the other end read the next
///   frame's bytes as this one's) and `send` returns normally.
///
/// As for the blocking forms, a connection has one writer at a time: two tasks
/// sending at once could interleave their frames' bytes. Readers may overlap (each
/// frame goes to one of them, whole), though which gets which is not defined.
extension Connection {
    // MARK: Receiving

    /// Receives one frame and decodes it as `T`, suspending until it has arrived.
    /// - Parameters:
    ///   - type: The type to decode (inferred from the context when left out).
    ///   - timeout: How long to wait for the whole frame; `nil` waits as long as it
    ///     takes. A frame begun when the time runs out stays for the next receive.
    /// - Throws: `ConnectionError` (`.timedOut`, and as `receiveBytes`), the
    ///   decoder's `DecodingError` (the frame is consumed), `CancellationError`.
    public func receive<T: Decodable>(_ type: T.Type = T.self, timeout: Duration? = nil) async throws -> T {
        try await decoder.decode(type, from: receiveFrame(maxLength: nil, until: .after(timeout)))
    }

    /// Receives one frame's payload, suspending until it has arrived.
    /// - Parameter maxLength: The longest payload accepted (default: `maxFrameLength`).
    /// - Throws: `ConnectionError`: `.endOfFile` when the other end closed (before
    ///   or inside a frame), `.frameTooLong`, `.invalidFrame`, `.closed` (also when
    ///   `close()` is called meanwhile), `.wrongDirection`, `.system`; or
    ///   `CancellationError`, after which the next receive gets the frame.
    public func receiveBytes(maxLength: Int? = nil) async throws -> [UInt8] {
        try await receiveFrame(maxLength: maxLength, until: nil)
    }

    private func receiveFrame(maxLength: Int?, until deadline: _Deadline?) async throws -> [UInt8] {
        guard case .frame(let payload)? = try await nextFrame(maxLength: maxLength, until: deadline) else {
            throw ConnectionError(.endOfFile, "the other end closed the connection")
        }
        return payload
    }

    /// The next frame, or `.endOfFile` at a frame boundary; nil when `deadline` passed.
    fileprivate func nextFrame(maxLength: Int?, until deadline: _Deadline?) async throws -> _Received? {
        try check(writing: false)
        try Task.checkCancellation()
        let limit = maxLength ?? maxFrameLength
        // Not wakeable: close() wakes async waiters through the reactor.
        let io = try beginUse(wakeable: false)
        defer { endUse() }
        // At once if the frame is there: no epoll registration.
        if let received = try readAvailable(io.fd, limit: limit) { return received }
        let received = try await reactor().retry(io.fd, events: SWIFTMP_EPOLLIN, until: deadline) {
            try readAvailable(io.fd, limit: limit)
        }
        guard let received else { throw ConnectionError(.timedOut, "no whole frame arrived in time") }
        return received
    }

    /// The frames as they come, each decoded as `T`:
    /// `for try await order in connection.messages(Order.self) { … }`.
    ///
    /// The sequence ends (the loop ends normally) when the other end closes at a
    /// frame boundary, and when this connection is closed (`close()`, from any task or
    /// thread, also while the loop waits; frames not yet received are then not
    /// received). It throws, and then ends, when the other end closes inside a
    /// frame (`.endOfFile`), on the other errors of `receive`, and on cancellation,
    /// which loses nothing: a later `receive` or `messages` gets the frame.
    public func messages<T: Decodable>(_ type: T.Type = T.self) -> Messages<T> {
        Messages(connection: self)
    }

    /// An `AsyncSequence` of the values received on a connection (see `messages(_:)`).
    public struct Messages<Element: Decodable>: AsyncSequence, Sendable {
        let connection: Connection

        /// An iterator that receives the frames.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(connection: connection)
        }

        /// Receives the frames one at a time, each as `Element`.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let connection: Connection
            var finished = false

            /// The next frame's value; nil when the other end closed at a frame boundary
            /// or this connection was closed.
            public mutating func next() async throws -> Element? {
                guard !finished else { return nil }
                do {
                    guard case .frame(let payload)? = try await connection.nextFrame(maxLength: nil, until: nil) else {
                        finished = true
                        return nil
                    }
                    return try connection.decoder.decode(Element.self, from: payload)
                } catch let error as ConnectionError where error.code == .closed {
                    finished = true
                    return nil
                } catch {
                    finished = true
                    throw error
                }
            }
        }
    }

    // MARK: Sending

    /// Sends a value as one frame of MessagePack, suspending while the other end
    /// has no room for it.
    /// - Throws: The encoder's `EncodingError` (nothing is sent), a `ConnectionError`
    ///   as `sendBytes`, or `CancellationError` (nothing was sent).
    public func send<T: Encodable>(_ value: T) async throws {
        try await sendBytes(encoder.encode(value))
    }

    /// Sends one frame holding `bytes`, suspending while the other end has no room.
    /// - Throws: `ConnectionError`: `.closed` (also when `close()` is called while
    ///   this waits; the frame may then be cut short, on a connection that is closed),
    ///   `.wrongDirection`, `.system` (EPIPE when the other end is closed); or
    ///   `CancellationError` when the task was cancelled before the frame's first
    ///   byte was written (after that, the frame is written to its end).
    public func sendBytes(_ bytes: some Collection<UInt8> & Sendable) async throws {
        try check(writing: true)
        try Task.checkCancellation()
        let frame = _OutgoingFrame(bytes)
        let io = try beginUse(wakeable: false)
        defer { endUse() }
        var written = try writeAvailable(io.fd, frame, from: 0)
        do {
            try await writeRest(io.fd, frame, written: &written)
        } catch is CancellationError where written > 0 {
            // Ending here would leave half a frame in the stream. An unstructured
            // task is not cancelled with this one; this call keeps the descriptor open.
            let from = written
            try await Task {
                var written = from
                try await self.writeRest(io.fd, frame, written: &written)
            }.value
        }
    }

    /// Writes the rest of `frame`, suspending while there is no room.
    private func writeRest(_ fd: FileDescriptor, _ frame: _OutgoingFrame, written: inout Int) async throws {
        guard written < frame.count else { return }
        _ = try await reactor().retry(fd, events: SWIFTMP_EPOLLOUT) { () throws -> Bool? in
            written = try writeAvailable(fd, frame, from: written)
            return written == frame.count ? true : nil
        }
    }

    /// Writes what the descriptor has room for now, of `frame` from `offset` on,
    /// without waiting: the offset reached.
    private func writeAvailable(_ fd: FileDescriptor, _ frame: _OutgoingFrame, from offset: Int) throws(ConnectionError) -> Int {
        if isClosed { throw ConnectionError(.closed, "the connection was closed while sending") }
        let socket = isSocket(fd)
        var offset = offset
        while offset < frame.count {
            let (part, start) = offset < frame.head.count ? (frame.head, offset) : (frame.tail, offset - frame.head.count)
            var outcome: Result<Int?, Errno> = .success(nil)
            part.withUnsafeBytes { raw in
                let rest = UnsafeRawBufferPointer(rebasing: raw[start...])
                outcome = Result { () throws(Errno) -> Int? in
                    if socket { return try _sendNow(fd, rest) }
                    // Room in a pipe is a free page: a write of up to PIPE_BUF bytes then does not wait.
                    guard try _isReadyNow(fd, writing: true) else { return nil }
                    return try _write(fd, UnsafeRawBufferPointer(rebasing: rest.prefix(Self.pipeBufferSize)))
                }
            }
            let got: Int?
            do throws(Errno) { got = try outcome.get() } catch { throw .system(error, "writing a frame") }
            guard let got else { break }
            offset += got
        }
        return offset
    }

    /// PIPE_BUF on Linux: a pipe that polls writable takes a write this long at once.
    private static let pipeBufferSize = 4096

    private func reactor() throws(ConnectionError) -> _Reactor {
        do throws(Errno) { return try _Reactor.shared() } catch { throw .system(error, "starting the async waiting thread") }
    }
}

/// A frame to write: a small one in one piece (one write, atomic on a pipe up to
/// PIPE_BUF, as the blocking `sendBytes` does), a large one as header and payload
/// (no copy of a payload that is already an array).
private struct _OutgoingFrame: Sendable {
    let head: [UInt8]
    let tail: [UInt8]
    var count: Int { head.count + tail.count }

    init(_ bytes: some Collection<UInt8>) {
        let header = _Frame.header(forLength: bytes.count)
        if bytes.count <= 16384 {
            (head, tail) = (header + bytes, [])
        } else {
            (head, tail) = (header, bytes as? [UInt8] ?? Array(bytes))
        }
    }
}
