#if canImport(Glibc)
import Glibc
#endif
import CMsgPack

/// A keyed container: over a map, or over an array when the struct was written
/// as its fields in order (structs as arrays), whose fields are then taken in the
/// order they are asked for, as synthesized `init(from:)` asks.
///
/// One concrete type rather than two sharing a protocol extension: the extension's
/// methods, reached through a conformance that depends on `Key`, instantiated
/// that conformance's witness table on every field (about 5% of a decode).
struct _KeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    /// A positional container's array, and the next field to take.
    final class Cursor {
        let array: msgpack_object_array
        var next = 0
        init(_ array: msgpack_object_array) { self.array = array }

        func takeNext() -> msgpack_object? {
            guard next < Int(array.size) else { return nil }
            defer { next += 1 }
            return array.ptr[next]
        }
    }

    /// Unretained: a container lives only inside the `decode` call that made it
    /// (its map already points into that call's zone), while the decoder lives for
    /// the whole call. The stdlib copies a container on every field it reads, and a
    /// retained reference made each copy two atomic operations. Reached on the hot
    /// paths with `_withUnsafeGuaranteedRef`: through `unowned(unsafe)` every call
    /// on it was a retain and a release (atomic), two per field.
    let unretainedDecoder: Unmanaged<_MessagePackDecoder>
    private var decoder: _MessagePackDecoder { unretainedDecoder.takeUnretainedValue() }
    /// The map (empty for a positional container).
    let map: msgpack_object_map
    /// Set for a positional container.
    let cursor: Cursor?
    let path: _CodingPathNode

    init(decoder: _MessagePackDecoder, map: msgpack_object_map, path: _CodingPathNode) {
        self.unretainedDecoder = Unmanaged.passUnretained(decoder)
        self.map = map
        self.cursor = nil
        self.path = path
    }

    init(decoder: _MessagePackDecoder, positional array: msgpack_object_array, path: _CodingPathNode) {
        self.unretainedDecoder = Unmanaged.passUnretained(decoder)
        self.map = msgpack_object_map(size: 0, ptr: nil)
        self.cursor = Cursor(array)
        self.path = path
    }

    var codingPath: [any CodingKey] { path.path }

    var allKeys: [Key] {
        guard cursor == nil else { return [] }
        return (0..<Int(map.size)).compactMap { index in
            let key = map.ptr[index].key
            switch key.type {
            case MSGPACK_OBJECT_STR: return (try? _string(key, codingPath: [])).flatMap { Key(stringValue: $0) }
            case MSGPACK_OBJECT_POSITIVE_INTEGER: return Int(exactly: key.via.u64).flatMap { Key(intValue: $0) }
            case MSGPACK_OBJECT_NEGATIVE_INTEGER: return Int(exactly: key.via.i64).flatMap { Key(intValue: $0) }
            default: return nil
            }
        }
    }

    func contains(_ key: Key) -> Bool {
        if let cursor { return cursor.next < Int(cursor.array.size) }
        return take(key) != nil
    }

    /// A positional container consumes a nil and leaves anything else for `decode`,
    /// like an unkeyed container.
    func decodeNil(forKey key: Key) throws -> Bool {
        guard let cursor else { return try required(key).type == MSGPACK_OBJECT_NIL }
        guard cursor.next < Int(cursor.array.size) else { _ = try required(key); return false }
        guard cursor.array.ptr[cursor.next].type == MSGPACK_OBJECT_NIL else { return false }
        cursor.next += 1
        return true
    }

    /// The object of the `super` key (or the next field, for a positional container).
    func takeSuper() -> msgpack_object? {
        if let cursor { return cursor.takeNext() }
        return take(name: "super")
    }

    /// The object for `key` (consumed, for a positional container), or `nil`.
    func take(_ key: Key) -> msgpack_object? {
        if let cursor { return cursor.takeNext() }
        if let found = take(name: key.stringValue) { return found }
        guard let int = key.intValue, let entries = map.ptr else { return nil }
        for index in 0..<Int(map.size) {
            let candidate = entries[index].key
            if candidate.type == MSGPACK_OBJECT_POSITIVE_INTEGER && int >= 0 && candidate.via.u64 == UInt64(int)
                || candidate.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && candidate.via.i64 == Int64(int) {
                return entries[index].val
            }
        }
        return nil
    }

    /// Finds a string key. The search starts after the last key found in this map,
    /// so fields read in the order they were written are found at the first look.
    /// (`take(_:)` then tries an integer key equal to the key's `intValue`.)
    private func take(name: String) -> msgpack_object? {
        let count = Int(map.size)
        guard count > 0, let entries = map.ptr else { return nil }
        let hint = unretainedDecoder._withUnsafeGuaranteedRef { $0.hint }
        let start = hint.map == entries ? hint.index + 1 : 0
        // Borrowed in place where the UTF-8 is contiguous (no copy, no retain).
        var found: Int?
        if let result = name.utf8.withContiguousStorageIfAvailable({ Self.find($0, in: entries, count: count, from: start) }) {
            found = result
        } else {
            var name = name
            found = name.withUTF8 { Self.find($0, in: entries, count: count, from: start) }
        }
        guard let found else { return nil }
        unretainedDecoder._withUnsafeGuaranteedRef { $0.hint = (entries, found) }
        return entries[found].val
    }

    /// The index of the string key `utf8` among a map's `count` entries, looking from
    /// `start` round to where it began.
    private static func find(_ utf8: UnsafeBufferPointer<UInt8>, in entries: UnsafeMutablePointer<msgpack_object_kv>, count: Int, from start: Int) -> Int? {
        var index = start
        for _ in 0..<count {
            if index >= count { index = 0 }
            let candidate = entries[index].key
            if candidate.type == MSGPACK_OBJECT_STR, Int(candidate.via.str.size) == utf8.count,
               utf8.count == 0 || memcmp(candidate.via.str.ptr, utf8.baseAddress!, utf8.count) == 0 {
                return index
            }
            index += 1
        }
        return nil
    }

    @inline(__always) func required(_ key: Key) throws(DecodingError) -> msgpack_object {
        guard let object = take(key) else {
            throw DecodingError.keyNotFound(key, .init(
                codingPath: path.path,
                debugDescription: "No value for key \"\(key.stringValue)\" (at \(_render(path.appending(key).path)))."))
        }
        return object
    }

    @inline(__always) func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.bool(required(key), path.appending(key)) } }
    @inline(__always) func decode(_ type: String.Type, forKey key: Key) throws -> String { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.string(required(key), path.appending(key)) } }
    @inline(__always) func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.double(required(key), path.appending(key)) } }
    @inline(__always) func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.float(required(key), path.appending(key)) } }
    @inline(__always) func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    @inline(__always) func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    @inline(__always) func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    @inline(__always) func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    @inline(__always) func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    @inline(__always) func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    @inline(__always) func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    @inline(__always) func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    @inline(__always) func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    @inline(__always) func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }

    @inline(__always) private func integer<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(T.self, required(key), path.appending(key)) }
    }

    @inline(__always) func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try unretainedDecoder._withUnsafeGuaranteedRef { try $0.decodeValue(type, from: required(key), path: path.appending(key)) }
    }

    // One lookup for "absent or nil, else decode" (the default would look up three times).
    @inline(__always) func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let object = take(key), object.type != MSGPACK_OBJECT_NIL else { return nil }
        return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.decodeValue(type, from: object, path: path.appending(key)) }
    }
    @inline(__always) func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try present(type, key) }
    @inline(__always) func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try present(type, key) }

    @inline(__always) private func present<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let object = take(key), object.type != MSGPACK_OBJECT_NIL else { return nil }
        return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.decodeValue(type, from: object, path: path.appending(key)) }
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder.keyedContainer(required(key), path.appending(key))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder.unkeyedContainer(required(key), path.appending(key))
    }

    /// An absent `super` gives a decoder of nil, whose containers then report what is missing.
    func superDecoder() throws -> any Decoder {
        decoder.child(at: takeSuper() ?? msgpack_object(type: MSGPACK_OBJECT_NIL, via: .init()), path: path.appending(_MessagePackKey.super))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        decoder.child(at: try required(key), path: path.appending(key))
    }
}

/// An unkeyed container over an array.
struct _UnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let unretainedDecoder: Unmanaged<_MessagePackDecoder>  // unretained: see _KeyedDecodingContainer
    private var decoder: _MessagePackDecoder { unretainedDecoder.takeUnretainedValue() }
    let array: msgpack_object_array
    let path: _CodingPathNode
    private(set) var currentIndex = 0

    init(decoder: _MessagePackDecoder, array: msgpack_object_array, path: _CodingPathNode) {
        self.unretainedDecoder = Unmanaged.passUnretained(decoder)
        self.array = array
        self.path = path
    }

    var codingPath: [any CodingKey] { path.path }
    var count: Int? { Int(array.size) }
    var isAtEnd: Bool { currentIndex >= Int(array.size) }

    private var elementPath: _CodingPathNode { path.appending(_MessagePackKey(index: currentIndex)) }

    private mutating func next<T>(_ type: T.Type) throws(DecodingError) -> msgpack_object {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(
                codingPath: elementPath.path,
                debugDescription: "Unkeyed container is at end: the array has \(array.size) elements (at \(_render(path.path)))."))
        }
        defer { currentIndex += 1 }
        return array.ptr[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array.ptr[currentIndex].type == MSGPACK_OBJECT_NIL else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { let p = elementPath; return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.bool(next(type), p) } }
    mutating func decode(_ type: String.Type) throws -> String { let p = elementPath; return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.string(next(type), p) } }
    mutating func decode(_ type: Double.Type) throws -> Double { let p = elementPath; return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.double(next(type), p) } }
    mutating func decode(_ type: Float.Type) throws -> Float { let p = elementPath; return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.float(next(type), p) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer() }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer() }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer() }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer() }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer() }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer() }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer() }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer() }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer() }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer() }

    private mutating func integer<T: FixedWidthInteger>() throws -> T {
        let p = elementPath
        return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(T.self, next(T.self), p) }
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = elementPath
        return try unretainedDecoder._withUnsafeGuaranteedRef { try $0.decodeValue(type, from: next(type), path: p) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let p = elementPath
        return try decoder.keyedContainer(next([String: Int].self), p)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let p = elementPath
        return try decoder.unkeyedContainer(next([Int].self), p)
    }

    mutating func superDecoder() throws -> any Decoder {
        let p = elementPath
        return decoder.child(at: try next(Int.self), path: p)
    }
}

/// The single-value container of the current object.
struct _SingleValueDecodingContainer: SingleValueDecodingContainer {
    let unretainedDecoder: Unmanaged<_MessagePackDecoder>  // unretained: see _KeyedDecodingContainer
    let object: msgpack_object
    let path: _CodingPathNode

    init(decoder: _MessagePackDecoder, object: msgpack_object, path: _CodingPathNode) {
        self.unretainedDecoder = Unmanaged.passUnretained(decoder)
        self.object = object
        self.path = path
    }

    var codingPath: [any CodingKey] { path.path }

    func decodeNil() -> Bool { object.type == MSGPACK_OBJECT_NIL }
    func decode(_ type: Bool.Type) throws -> Bool { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.bool(object, path) } }
    func decode(_ type: String.Type) throws -> String { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.string(object, path) } }
    func decode(_ type: Double.Type) throws -> Double { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.double(object, path) } }
    func decode(_ type: Float.Type) throws -> Float { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.float(object, path) } }
    func decode(_ type: Int.Type) throws -> Int { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: Int8.Type) throws -> Int8 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: Int16.Type) throws -> Int16 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: Int32.Type) throws -> Int32 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: Int64.Type) throws -> Int64 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: UInt.Type) throws -> UInt { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.integer(type, object, path) } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unretainedDecoder._withUnsafeGuaranteedRef { try $0.decodeValue(type, from: object, path: path) } }
}

extension _MessagePackDecoder {
    /// A decoder standing at another object (for nested containers and super decoders).
    /// A decoder for a super decoder, kept by the call's first decoder until the call
    /// ends: containers refer to their decoder unretained (see _KeyedDecodingContainer),
    /// and `superDecoder().container(keyedBy:)` drops the decoder at once.
    func child(at object: msgpack_object, path: _CodingPathNode) -> _MessagePackDecoder {
        let child = _MessagePackDecoder(options: options, root: object, path: path)
        let top = callOwner ?? self
        child.callOwner = top
        top.children.append(child)
        return child
    }
}
