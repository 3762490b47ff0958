/// Decodes a stream of MessagePack values that carries no framing: bytes go in
/// as they arrive, in chunks of any size, and whole values come out.
///
/// ```swift
/// var stream = MessagePackStreamDecoder()
/// stream.append(chunk)                       // from a socket, a file, a pipe
/// while let event = try stream.next(Event.self) { handle(event) }
/// ```
///
/// Each value is checked against ``limits`` as its headers arrive, and msgpack-c
/// is handed only complete values. (msgpack-c's own `msgpack_unpacker` allocates
/// a container's storage from its header before the elements arrive, so a
/// hostile five-byte header could make it reserve gigabytes.) A value that
/// would exceed a limit is an error as soon as its header is seen.
public struct MessagePackStreamDecoder: Sendable {
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` already consumed by returned values.
    private var start = 0
    /// Where the scan of the value at `start` stopped for want of bytes.
    private var progress = _Scanner.Progress()

    /// Bounds on nesting and lengths, and `maxInputLength` bounds one value.
    public var limits: MessagePackLimits
    /// Decodes the values; its date strategy and user info apply.
    public var decoder: MessagePackDecoder

    /// A stream decoder with no bytes yet.
    /// - Parameters:
    ///   - limits: What each value's headers are checked against as they arrive.
    ///   - decoder: Decodes the values ``next(_:)`` returns, with its options.
    public init(limits: MessagePackLimits = MessagePackLimits(), decoder: MessagePackDecoder = MessagePackDecoder()) {
        self.limits = limits
        self.decoder = decoder
    }

    /// Bytes received but not yet returned as values.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Adds bytes from the stream.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            // Drop what was consumed once it is at least half the buffer: amortized O(1) per byte.
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole value's bytes, or `nil` until more bytes arrive.
    /// - Throws: `DecodingError.dataCorrupted` when the bytes cannot begin a valid
    ///   value or exceed a limit; the stream cannot continue past such bytes.
    public mutating func nextBytes() throws -> [UInt8]? {
        let scanner = _Scanner(limits: limits)
        let result = try buffer.withUnsafeBytes { raw throws(DecodingError) in
            try scanner.scan(UnsafeRawBufferPointer(rebasing: raw[start...]), resuming: &progress)
        }
        // One limit for a value, however its bytes arrived: in pieces (refused once the
        // bytes buffered pass it) or at once (refused when it is found complete).
        switch result {
        case .incomplete:
            guard bufferedByteCount <= limits.maxInputLength else {
                throw scanner.corrupted("a value longer than the limit of \(limits.maxInputLength) bytes")
            }
            return nil
        case .complete(let length):
            guard length <= limits.maxInputLength else {
                throw scanner.corrupted("a value longer than the limit of \(limits.maxInputLength) bytes")
            }
            defer { start += length }
            return Array(buffer[start..<start + length])
        }
    }

    /// The next whole value as a `MessagePackValue`, or `nil` until more bytes arrive.
    public mutating func nextValue() throws -> MessagePackValue? {
        try nextBytes().map { try MessagePackValue(bytes: $0, limits: limits) }
    }

    /// The next whole value decoded as `T`, or `nil` until more bytes arrive.
    /// A value that fails to decode as `T` is consumed, and the error thrown.
    public mutating func next<T: Decodable>(_ type: T.Type) throws -> T? {
        try nextBytes().map { try decoder.decode(type, from: $0) }
    }
}
