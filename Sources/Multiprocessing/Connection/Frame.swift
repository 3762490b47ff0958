/// The framing of Python's `multiprocessing.connection`: a 4-byte big-endian
/// signed length, then the payload; for a payload longer than 0x7fffffff, the
/// length -1 and then an 8-byte big-endian length. A Python process calling
/// `Connection.send_bytes` / `recv_bytes` reads and writes exactly these bytes.
enum _Frame {
    /// The header for a payload of `length` bytes: 4 bytes, or 12 above 0x7fffffff.
    static func header(forLength length: Int) -> [UInt8] {
        if length > 0x7fff_ffff {
            return [0xff, 0xff, 0xff, 0xff] + bigEndian(UInt64(length), width: 8)
        }
        return bigEndian(UInt64(length), width: 4)
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
        let value = Int32(bitPattern: UInt32(fromBigEndian: bytes))
        if value == -1 { return nil }
        guard value >= 0 else {
            throw ConnectionError(.invalidFrame, "a frame header states the length \(value)")
        }
        return Int(value)
    }

    /// The payload length an 8-byte header states.
    static func length(fromLongHeader bytes: [UInt8]) throws(ConnectionError) -> Int {
        let value = UInt64(fromBigEndian: bytes)
        guard value <= UInt64(Int.max) else {
            throw ConnectionError(.invalidFrame, "a frame header states the length \(value)")
        }
        return Int(value)
    }

    /// The header at the start of `bytes`: its size (4 or 12) and the payload length
    /// it states; nil when `bytes` does not hold the whole header yet.
    static func header(in bytes: UnsafeRawBufferPointer) throws(ConnectionError) -> (size: Int, length: Int)? {
        guard bytes.count >= 4 else { return nil }
        let short = Int32(bitPattern: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)))
        if short >= 0 { return (4, Int(short)) }
        guard short == -1 else { throw ConnectionError(.invalidFrame, "a frame header states the length \(short)") }
        guard bytes.count >= 12 else { return nil }
        let long = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self))
        guard long <= UInt64(Int.max) else { throw ConnectionError(.invalidFrame, "a frame header states the length \(long)") }
        return (12, Int(long))
    }

    private static func bigEndian(_ value: UInt64, width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(width - 1 - $0))) }
    }
}

extension FixedWidthInteger where Self: UnsignedInteger {
    init(fromBigEndian bytes: [UInt8]) {
        self = bytes.reduce(0) { $0 << 8 | Self($1) }
    }
}
