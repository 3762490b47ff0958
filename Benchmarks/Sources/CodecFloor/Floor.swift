// The floor lives in a module of its own: msgpack-c's declarations, seen both here
// (CMsgPackBench) and in the library (its CMsgPack), would otherwise be merged by
// Clang and credited to CMsgPack, which this package does not import.
internal import CMsgPackBench
import Foundation

/// The floor: `Reference` packed and unpacked by hand with msgpack-c, as someone
/// who wanted the last nanosecond would write it from Swift. Same contract as the
/// library (a value in, a fresh `[UInt8]` out; bytes in, a `Reference` out, every
/// type checked, strings validated as UTF-8) and byte-for-byte the same output as
/// `MessagePackEncoder` with its default options.
public enum Floor {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    // MARK: Packing

    /// Packs into a fresh msgpack-c buffer and returns its bytes.
    public static func encode(_ value: Reference) throws -> [UInt8] {
        try withPacker { try pack(value, $0) }
    }

    /// An array of values: an array header, then each value.
    public static func encode(_ values: [Reference]) throws -> [UInt8] {
        try withPacker { packer in
            guard msgpack_pack_array(packer, values.count) == 0 else { throw Failure(description: "out of memory") }
            for value in values { try pack(value, packer) }
        }
    }

    /// The small item, packed the same way.
    public static func encode(_ item: Item) throws -> [UInt8] {
        try withPacker { p in
            var failed: Int32 = 0
            failed |= msgpack_pack_map(p, 5)
            failed |= key(p, "id")
            failed |= msgpack_pack_int64(p, Int64(item.id))
            failed |= key(p, "name")
            failed |= string(p, item.name)
            failed |= key(p, "score")
            failed |= msgpack_pack_double(p, item.score)
            failed |= key(p, "tags")
            failed |= msgpack_pack_array(p, item.tags.count)
            for tag in item.tags { failed |= string(p, tag) }
            failed |= key(p, "ok")
            failed |= item.ok ? msgpack_pack_true(p) : msgpack_pack_false(p)
            guard failed == 0 else { throw Failure(description: "out of memory") }
        }
    }

    private static func withPacker(_ body: (UnsafeMutablePointer<msgpack_packer>) throws -> Void) throws -> [UInt8] {
        var buffer = msgpack_sbuffer()
        var packer = msgpack_packer()
        return try withUnsafeMutablePointer(to: &buffer) { buffer in
            msgpack_sbuffer_init(buffer)
            defer { msgpack_sbuffer_destroy(buffer) }
            return try withUnsafeMutablePointer(to: &packer) { packer in
                msgpack_packer_init(packer, UnsafeMutableRawPointer(buffer), msgpack_sbuffer_write)
                try body(packer)
                return [UInt8](UnsafeRawBufferPointer(start: buffer.pointee.data, count: buffer.pointee.size))
            }
        }
    }

    @inline(__always) private static func key(_ packer: UnsafeMutablePointer<msgpack_packer>, _ key: StaticString) -> Int32 {
        msgpack_pack_str_with_body(packer, key.utf8Start, key.utf8CodeUnitCount)
    }

    @inline(__always) private static func string(_ packer: UnsafeMutablePointer<msgpack_packer>, _ value: String) -> Int32 {
        var value = value
        return value.withUTF8 { msgpack_pack_str_with_body(packer, $0.baseAddress, $0.count) }
    }

    /// A map of the fields in declaration order (an absent `note` left out, as
    /// synthesized `encode(to:)` does with `encodeIfPresent`).
    private static func pack(_ r: Reference, _ p: UnsafeMutablePointer<msgpack_packer>) throws {
        var failed: Int32 = 0
        failed |= msgpack_pack_map(p, r.note == nil ? 9 : 10)

        failed |= key(p, "id")
        failed |= msgpack_pack_int64(p, Int64(r.id))
        failed |= key(p, "price")
        failed |= msgpack_pack_double(p, r.price)
        failed |= key(p, "name")
        failed |= string(p, r.name)
        failed |= key(p, "active")
        failed |= r.active ? msgpack_pack_true(p) : msgpack_pack_false(p)

        failed |= key(p, "samples")
        failed |= msgpack_pack_array(p, r.samples.count)
        for sample in r.samples { failed |= msgpack_pack_int64(p, Int64(sample)) }

        if let note = r.note {
            failed |= key(p, "note")
            failed |= string(p, note)
        }

        failed |= key(p, "nested")
        failed |= msgpack_pack_map(p, 3)
        failed |= key(p, "x")
        failed |= msgpack_pack_int64(p, Int64(r.nested.x))
        failed |= key(p, "y")
        failed |= msgpack_pack_double(p, r.nested.y)
        failed |= key(p, "label")
        failed |= string(p, r.nested.label)

        // Keys sorted by their UTF-8 bytes, as the encoder does by default.
        failed |= key(p, "counts")
        failed |= msgpack_pack_map(p, r.counts.count)
        for (name, count) in r.counts.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            failed |= string(p, name)
            failed |= msgpack_pack_int64(p, Int64(count))
        }

        // The timestamp extension (type -1), split in the reference epoch as the encoder does.
        failed |= key(p, "created")
        let interval = r.created.timeIntervalSinceReferenceDate
        var seconds = interval.rounded(.down)
        var nanoseconds = ((interval - seconds) * 1e9).rounded()
        if nanoseconds >= 1e9 { seconds += 1; nanoseconds = 0 }
        var stamp = msgpack_timestamp(tv_sec: Int64(seconds) + 978_307_200, tv_nsec: UInt32(nanoseconds))
        failed |= msgpack_pack_timestamp(p, &stamp)

        failed |= key(p, "blob")
        failed |= r.blob.withUnsafeBytes { msgpack_pack_bin_with_body(p, $0.baseAddress, $0.count) }

        guard failed == 0 else { throw Failure(description: "out of memory") }
    }

    // MARK: Unpacking

    /// Unpacks one `Reference` from bytes holding exactly that value.
    public static func decode(_ bytes: [UInt8]) throws -> Reference {
        try withUnpacked(bytes) { try reference($0) }
    }

    /// Unpacks one small `Item`.
    public static func decodeItem(_ bytes: [UInt8]) throws -> Item {
        try withUnpacked(bytes) { object in
            guard object.type == MSGPACK_OBJECT_MAP else { throw Failure(description: "expected a map") }
            let map = object.via.map
            var id: Int?, name: String?, score: Double?, tags: [String]?, ok: Bool?
            for index in 0..<Int(map.size) {
                let pair = map.ptr[index]
                guard pair.key.type == MSGPACK_OBJECT_STR else { continue }
                let key = pair.key.via.str
                let value = pair.val
                if `is`(key, "id") {
                    id = try int(value)
                } else if `is`(key, "name") {
                    name = try string(value)
                } else if `is`(key, "score") {
                    score = try double(value)
                } else if `is`(key, "tags") {
                    guard value.type == MSGPACK_OBJECT_ARRAY else { throw Failure(description: "expected an array") }
                    let array = value.via.array
                    var result: [String] = []
                    result.reserveCapacity(Int(array.size))
                    for i in 0..<Int(array.size) { result.append(try string(array.ptr[i])) }
                    tags = result
                } else if `is`(key, "ok") {
                    guard value.type == MSGPACK_OBJECT_BOOLEAN else { throw Failure(description: "expected a boolean") }
                    ok = value.via.boolean
                }
            }
            guard let id, let name, let score, let tags, let ok else { throw Failure(description: "a field of Item is missing") }
            return Item(id: id, name: name, score: score, tags: tags, ok: ok)
        }
    }

    /// Unpacks an array of `Reference`.
    public static func decodeArray(_ bytes: [UInt8]) throws -> [Reference] {
        try withUnpacked(bytes) { object in
            guard object.type == MSGPACK_OBJECT_ARRAY else { throw Failure(description: "expected an array") }
            let array = object.via.array
            var result: [Reference] = []
            result.reserveCapacity(Int(array.size))
            for index in 0..<Int(array.size) { result.append(try reference(array.ptr[index])) }
            return result
        }
    }

    private static func withUnpacked<T>(_ bytes: [UInt8], _ body: (msgpack_object) throws -> T) throws -> T {
        var unpacked = msgpack_unpacked()
        return try withUnsafeMutablePointer(to: &unpacked) { unpacked in
            msgpack_unpacked_init(unpacked)
            defer { msgpack_unpacked_destroy(unpacked) }
            return try bytes.withUnsafeBytes { raw in
                var offset = 0
                let result = msgpack_unpack_next(
                    unpacked, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count, &offset)
                guard result == MSGPACK_UNPACK_SUCCESS, offset == raw.count else {
                    throw Failure(description: "msgpack_unpack_next returned \(result.rawValue) at offset \(offset)")
                }
                return try body(unpacked.pointee.data)
            }
        }
    }

    @inline(__always) private static func `is`(_ key: msgpack_object_str, _ name: StaticString) -> Bool {
        Int(key.size) == name.utf8CodeUnitCount && memcmp(key.ptr, name.utf8Start, Int(key.size)) == 0
    }

    private static func int(_ object: msgpack_object) throws -> Int {
        switch object.type {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            guard let value = Int(exactly: object.via.u64) else { throw Failure(description: "integer too large") }
            return value
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return Int(object.via.i64)
        default:
            throw Failure(description: "expected an integer")
        }
    }

    private static func double(_ object: msgpack_object) throws -> Double {
        switch object.type {
        case MSGPACK_OBJECT_FLOAT64, MSGPACK_OBJECT_FLOAT32: return object.via.f64
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return Double(object.via.u64)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return Double(object.via.i64)
        default: throw Failure(description: "expected a number")
        }
    }

    private static func string(_ object: msgpack_object) throws -> String {
        guard object.type == MSGPACK_OBJECT_STR else { throw Failure(description: "expected a string") }
        let str = object.via.str
        let buffer = UnsafeRawBufferPointer(start: str.ptr, count: Int(str.size)).assumingMemoryBound(to: UInt8.self)
        guard let string = String(validating: buffer, as: UTF8.self) else { throw Failure(description: "invalid UTF-8") }
        return string
    }

    private static func inner(_ object: msgpack_object) throws -> Inner {
        guard object.type == MSGPACK_OBJECT_MAP else { throw Failure(description: "expected a map") }
        let map = object.via.map
        var x: Int?, y: Double?, label: String?
        for index in 0..<Int(map.size) {
            let pair = map.ptr[index]
            guard pair.key.type == MSGPACK_OBJECT_STR else { continue }
            let key = pair.key.via.str
            if `is`(key, "x") { x = try int(pair.val) }
            else if `is`(key, "y") { y = try double(pair.val) }
            else if `is`(key, "label") { label = try string(pair.val) }
        }
        guard let x, let y, let label else { throw Failure(description: "a field of Inner is missing") }
        return Inner(x: x, y: y, label: label)
    }

    /// Reads the fields back by comparing each key with the field names.
    private static func reference(_ object: msgpack_object) throws -> Reference {
        guard object.type == MSGPACK_OBJECT_MAP else { throw Failure(description: "expected a map") }
        let map = object.via.map
        var id: Int?, price: Double?, name: String?, active: Bool?, samples: [Int]?
        var note: String?, nested: Inner?, counts: [String: Int]?, created: Date?, blob: Data?
        for index in 0..<Int(map.size) {
            let pair = map.ptr[index]
            guard pair.key.type == MSGPACK_OBJECT_STR else { continue }
            let key = pair.key.via.str
            let value = pair.val
            if `is`(key, "id") {
                id = try int(value)
            } else if `is`(key, "price") {
                price = try double(value)
            } else if `is`(key, "name") {
                name = try string(value)
            } else if `is`(key, "active") {
                guard value.type == MSGPACK_OBJECT_BOOLEAN else { throw Failure(description: "expected a boolean") }
                active = value.via.boolean
            } else if `is`(key, "samples") {
                guard value.type == MSGPACK_OBJECT_ARRAY else { throw Failure(description: "expected an array") }
                let array = value.via.array
                var result: [Int] = []
                result.reserveCapacity(Int(array.size))
                for i in 0..<Int(array.size) { result.append(try int(array.ptr[i])) }
                samples = result
            } else if `is`(key, "note") {
                note = value.type == MSGPACK_OBJECT_NIL ? nil : try string(value)
            } else if `is`(key, "nested") {
                nested = try inner(value)
            } else if `is`(key, "counts") {
                guard value.type == MSGPACK_OBJECT_MAP else { throw Failure(description: "expected a map") }
                let entries = value.via.map
                var result: [String: Int] = [:]
                result.reserveCapacity(Int(entries.size))
                for i in 0..<Int(entries.size) {
                    result[try string(entries.ptr[i].key)] = try int(entries.ptr[i].val)
                }
                counts = result
            } else if `is`(key, "created") {
                var stamp = msgpack_timestamp()
                var object = value
                guard msgpack_object_to_timestamp(&object, &stamp) else { throw Failure(description: "expected a timestamp") }
                created = Date(timeIntervalSinceReferenceDate:
                    Double(stamp.tv_sec - 978_307_200) + Double(stamp.tv_nsec) / 1e9)
            } else if `is`(key, "blob") {
                guard value.type == MSGPACK_OBJECT_BIN else { throw Failure(description: "expected binary data") }
                let bin = value.via.bin
                blob = bin.ptr.map { Data(bytes: $0, count: Int(bin.size)) } ?? Data()
            }
        }
        guard let id, let price, let name, let active, let samples, let nested, let counts, let created, let blob else {
            throw Failure(description: "a field of Reference is missing")
        }
        return Reference(
            id: id, price: price, name: name, active: active, samples: samples, note: note,
            nested: nested, counts: counts, created: created, blob: blob)
    }
}
