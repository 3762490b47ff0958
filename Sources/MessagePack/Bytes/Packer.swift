import CMsgPack

/// A growable byte buffer that msgpack-c packs into.
///
/// msgpack-c's packer writes through a callback; here it is `swiftmp_sbuffer_write`
/// into an `msgpack_sbuffer`, both at stable heap addresses. Every byte of
/// MessagePack the library writes goes through one of these methods. A failed
/// write (only when `realloc` fails) is remembered in `failed` and reported once by
/// the caller, so the hot path carries no throwing calls.
///
/// A handle to that memory, not its owner: copying one is free (no reference
/// counting on every value written, as a class would have). Whoever `make`s one
/// calls `destroy()` once, when no copy of it is used any more.
struct _Packer {
    private let buffer: UnsafeMutablePointer<msgpack_sbuffer>
    private let packer: UnsafeMutablePointer<msgpack_packer>
    private let failure: UnsafeMutablePointer<Bool>

    private init(buffer: UnsafeMutablePointer<msgpack_sbuffer>, packer: UnsafeMutablePointer<msgpack_packer>, failure: UnsafeMutablePointer<Bool>) {
        (self.buffer, self.packer, self.failure) = (buffer, packer, failure)
    }

    /// A new, empty buffer.
    static func make() -> _Packer {
        let buffer = UnsafeMutablePointer<msgpack_sbuffer>.allocate(capacity: 1)
        msgpack_sbuffer_init(buffer)
        let packer = UnsafeMutablePointer<msgpack_packer>.allocate(capacity: 1)
        msgpack_packer_init(packer, UnsafeMutableRawPointer(buffer), swiftmp_sbuffer_write)
        let failure = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
        failure.initialize(to: false)
        return _Packer(buffer: buffer, packer: packer, failure: failure)
    }

    /// Frees the memory; no copy of this handle may be used after.
    func destroy() {
        msgpack_sbuffer_destroy(buffer)
        buffer.deallocate()
        packer.deallocate()
        failure.deallocate()
    }

    /// Set when msgpack-c could not grow the buffer.
    var failed: Bool { failure.pointee }

    /// Bytes allocated.
    var capacity: Int { buffer.pointee.alloc }

    /// Bytes written so far.
    var count: Int { buffer.pointee.size }

    /// The bytes written so far; valid until the next write.
    var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.pointee.data, count: buffer.pointee.size)
    }

    /// Forgets the contents, keeping the allocation for the next use.
    func removeAll() {
        msgpack_sbuffer_clear(buffer)
        failure.pointee = false
    }

    /// Truncates the contents to the first `count` bytes.
    func truncate(to count: Int) {
        precondition(count <= buffer.pointee.size)
        buffer.pointee.size = count
    }

    @inline(__always) private func check(_ result: Int32) {
        if result != 0 { failure.pointee = true }
    }

    func packNil() { check(swiftmp_pack_nil(packer)) }
    func packBool(_ value: Bool) { check(value ? swiftmp_pack_true(packer) : swiftmp_pack_false(packer)) }
    /// The smallest format that holds the value: positive fixint or uint8…64 for
    /// non-negative values, negative fixint or int8…64 for negative ones.
    func packInt(_ value: Int64) { check(swiftmp_pack_int64(packer, value)) }
    func packUInt(_ value: UInt64) { check(swiftmp_pack_uint64(packer, value)) }
    func packFloat(_ value: Float) { check(swiftmp_pack_float(packer, value)) }
    func packDouble(_ value: Double) { check(swiftmp_pack_double(packer, value)) }
    func packArrayHeader(_ count: Int) { check(swiftmp_pack_array(packer, count)) }
    func packMapHeader(_ count: Int) { check(swiftmp_pack_map(packer, count)) }

    func packString(_ value: String) {
        // Borrowed in place (no copy of the string, no retain) when its UTF-8 is contiguous.
        if value.utf8.withContiguousStorageIfAvailable({ packStringBody($0) }) == nil {
            var value = value
            value.withUTF8 { packStringBody($0) }
        }
    }

    func packStringBody(_ utf8: UnsafeBufferPointer<UInt8>) {
        check(swiftmp_pack_str_with_body(packer, utf8.baseAddress, utf8.count))
    }

    func packBinary(_ bytes: UnsafeRawBufferPointer) {
        check(swiftmp_pack_bin_with_body(packer, bytes.baseAddress, bytes.count))
    }

    func packExtension(type: Int8, data: UnsafeRawBufferPointer) {
        check(msgpack_pack_ext_with_body(packer, data.baseAddress, data.count, type))
    }

    /// The timestamp extension in the smallest of its three sizes.
    func packTimestamp(seconds: Int64, nanoseconds: UInt32) {
        var stamp = msgpack_timestamp(tv_sec: seconds, tv_nsec: nanoseconds)
        check(msgpack_pack_timestamp(packer, &stamp))
    }

    /// Appends bytes that are already MessagePack (a finished nested value).
    func append(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        check(swiftmp_sbuffer_write(UnsafeMutableRawPointer(buffer), base.assumingMemoryBound(to: CChar.self), raw.count))
    }

    /// Inserts `raw` at `offset`, moving what follows it.
    func insert(_ raw: UnsafeRawBufferPointer, at offset: Int) {
        let tail = count - offset
        precondition(offset >= 0 && tail >= 0)
        guard raw.count > 0 else { return }
        append(raw)  // grows the buffer by raw.count; the bytes are then rotated into place
        guard !failed, let data = UnsafeMutableRawPointer(buffer.pointee.data) else { return }
        if tail > 0 {
            // [offset, offset+tail) moves right; the appended copy is rewritten below.
            (data + offset + raw.count).copyMemory(from: data + offset, byteCount: tail)  // overlapping: a memmove
        }
        data.advanced(by: offset).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
    }

    /// Replaces the one byte at `offset` with `raw` (a header where its placeholder was).
    func replaceByte(at offset: Int, with raw: UnsafeRawBufferPointer) {
        precondition(offset < count && raw.count > 0)
        guard let data = UnsafeMutableRawPointer(buffer.pointee.data) else { return }
        data.storeBytes(of: raw[0], toByteOffset: offset, as: UInt8.self)
        if raw.count > 1 {
            insert(UnsafeRawBufferPointer(rebasing: raw[1...]), at: offset + 1)
        }
    }

    /// A copy of the contents as a Swift array.
    func makeArray() -> [UInt8] {
        [UInt8](bytes)
    }
}

/// A `_Packer` owned by an object, freed with it: one kept between calls (`_Spare`).
final class _OwnedPacker {
    /// The most memory a kept packer may hold.
    static let keptCapacity = 1 << 16
    let packer = _Packer.make()
    deinit { packer.destroy() }
}
