/// The framing of Python's `multiprocessing.connection`: a 4-byte big-endian
/// signed length, then the payload; for a payload longer than 0x7fffffff, the
/// length -1 and then an 8-byte big-endian length. A Python process calling
/// `Connection.send_bytes` / `recv_bytes` reads and writes exactly these bytes.
enum _Frame {
    /// The header for a payload of `length` bytes: 4 bytes, or 12 above 0x7fffffff.
    static func header(forLength length: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: headerSize(forLength: length)) { buffer, count in
            writeHeader(forLength: length, to: UnsafeMutableRawPointer(buffer.baseAddress!))
            count = buffer.count
        }
    }

    /// The size of the header for a payload of `length` bytes.
    static func headerSize(forLength length: Int) -> Int {
        length > 0x7fff_ffff ? 12 : 4
    }

    /// Writes the header for a payload of `length` bytes at `destination`, which has
    /// room for `headerSize(forLength:)` bytes.
    static func writeHeader(forLength length: Int, to destination: UnsafeMutableRawPointer) {
        if length > 0x7fff_ffff {
            destination.storeBytes(of: UInt32.max, as: UInt32.self)
            (destination + 4).storeBytes(of: UInt64(length).bigEndian, toByteOffset: 0, as: UInt64.self)
        } else {
            destination.storeBytes(of: UInt32(length).bigEndian, as: UInt32.self)
        }
    }

    /// The payload length a 4-byte header states: a length, or `nil` for the -1
    /// that announces an 8-byte length. Other negative values are invalid.
    static func length(fromShortHeader bytes: [UInt8]) throws(ConnectionError) -> Int? {
        try length(short: UInt32(fromBigEndian: bytes))
    }

    /// The payload length an 8-byte header states.
    static func length(fromLongHeader bytes: [UInt8]) throws(ConnectionError) -> Int {
        try length(long: UInt64(fromBigEndian: bytes))
    }

    /// The header at the start of `bytes`: its size (4 or 12) and the payload length
    /// it states; nil when `bytes` does not hold the whole header yet.
    static func header(in bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> (size: Int, length: Int)? {
        guard bytes.count >= 4 else { return nil }
        if let length = try length(short: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))) { return (4, length) }
        guard bytes.count >= 12 else { return nil }
        return (12, try length(long: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self))))
    }

    private static func length(short value: UInt32) throws(ConnectionError) -> Int? {
        let signed = Int32(bitPattern: value)
        if signed == -1 { return nil }
        guard signed >= 0 else {
            throw ConnectionError(.invalidFrame, "a frame header states the length \(signed)")
        }
        return Int(signed)
    }

    private static func length(long value: UInt64) throws(ConnectionError) -> Int {
        guard value <= UInt64(Int.max) else {
            throw ConnectionError(.invalidFrame, "a frame header states the length \(value)")
        }
        return Int(value)
    }
}

extension FixedWidthInteger where Self: UnsignedInteger {
    init(fromBigEndian bytes: [UInt8]) {
        self = bytes.reduce(0) { $0 << 8 | Self($1) }
    }
}
