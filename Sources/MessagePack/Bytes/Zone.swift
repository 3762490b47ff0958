import CMsgPack

/// A msgpack-c zone kept across parses. `clear()` keeps its first chunk, so a
/// steady stream of decodes does not allocate a zone per call (as
/// `msgpack_unpack_next` does).
final class _ReusableZone {
    private let zone: UnsafeMutablePointer<msgpack_zone>?

    init() {
        zone = msgpack_zone_new(8192)
    }

    deinit {
        if let zone { msgpack_zone_free(zone) }
    }

    /// False when msgpack-c could not make the zone (out of memory): every parse throws.
    var isUsable: Bool { zone != nil }

    /// Parses `bytes`, which must hold exactly one value, into the zone: the
    /// tree is valid until `clear()`, and (its strings point into `bytes`) while
    /// `bytes` is.
    /// - Throws: `DecodingError.dataCorrupted` for bytes the scanner or msgpack-c rejects.
    func parse(_ bytes: UnsafeRawBufferPointer, limits: MessagePackLimits) throws(DecodingError) -> msgpack_object {
        let scanner = _Scanner(limits: limits)
        try scanner.scanWhole(bytes)
        guard let zone else { throw scanner.corrupted("out of memory for msgpack-c's zone") }
        var object = msgpack_object()
        var offset = 0
        let result = msgpack_unpack(
            bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, &offset, zone, &object)
        guard result == MSGPACK_UNPACK_SUCCESS, offset == bytes.count else {
            throw scanner.corrupted("msgpack-c could not parse the value (result \(result.rawValue))")
        }
        return object
    }

    /// Frees the trees parsed so far, keeping the memory for the next parse.
    func clear() {
        if let zone { msgpack_zone_clear(zone) }
    }
}
