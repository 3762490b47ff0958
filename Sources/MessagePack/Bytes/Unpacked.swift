import CMsgPack

/// One MessagePack value parsed by msgpack-c: its object tree, in a zone owned here.
///
/// Strings, binaries and extensions in the tree point into the input, so the
/// input must outlive every use of `root`; callers parse inside
/// `withUnsafeBytes` and finish with the tree before it returns.
final class _Unpacked {
    private let unpacked: UnsafeMutablePointer<msgpack_unpacked>

    /// The value's root object.
    var root: msgpack_object { unpacked.pointee.data }

    /// Parses the first value of `bytes`, which `_Scanner` has checked first.
    /// - Throws: `DecodingError.dataCorrupted` if msgpack-c rejects the bytes.
    init(parsing bytes: UnsafeRawBufferPointer, limits: MessagePackLimits) throws(DecodingError) {
        let scanner = _Scanner(limits: limits)
        try scanner.scanWhole(bytes)
        unpacked = .allocate(capacity: 1)
        msgpack_unpacked_init(unpacked)
        var offset = 0
        let result = msgpack_unpack_next(
            unpacked, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, &offset)
        guard result == MSGPACK_UNPACK_SUCCESS, offset == bytes.count else {
            msgpack_unpacked_destroy(unpacked)
            unpacked.deallocate()
            throw scanner.corrupted("msgpack-c could not parse the value (result \(result.rawValue))")
        }
    }

    deinit {
        msgpack_unpacked_destroy(unpacked)
        unpacked.deallocate()
    }
}
