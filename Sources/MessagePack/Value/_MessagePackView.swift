import CMsgPack

/// One value of a parsed MessagePack tree (msgpack-c's), read where it lies: for a
/// reader that takes a few fields out of a small value many times a second (the
/// process pool's frames), where building a whole `MessagePackValue` of it, every
/// string and array allocated, cost more than the rest of its reading. Valid only
/// inside the body of `MessagePackValue.withView(of:limits:_:)`.
package struct _MessagePackView {
    private let object: msgpack_object

    fileprivate init(_ object: msgpack_object) { self.object = object }

    /// Nil (Python's None).
    package var isNil: Bool { object.type == MSGPACK_OBJECT_NIL }

    /// A non-negative integer.
    package var unsignedInteger: UInt64? {
        switch object.type {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: object.via.u64
        case MSGPACK_OBJECT_NEGATIVE_INTEGER where object.via.i64 >= 0: UInt64(object.via.i64)
        default: nil
        }
    }

    /// A string of valid UTF-8; nil for anything else.
    package var string: String? {
        guard object.type == MSGPACK_OBJECT_STR else { return nil }
        return try? _string(object, codingPath: [])
    }

    /// Whether this is the string `text`, by its bytes (no String is made).
    package func isString(_ text: StaticString) -> Bool {
        guard object.type == MSGPACK_OBJECT_STR, Int(object.via.str.size) == text.utf8CodeUnitCount else { return false }
        return UnsafeRawBufferPointer(start: object.via.str.ptr, count: Int(object.via.str.size))
            .elementsEqual(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A binary's bytes; nil for anything else.
    package var binary: [UInt8]? {
        object.type == MSGPACK_OBJECT_BIN ? _bytes(object.via.bin.ptr, object.via.bin.size) : nil
    }

    /// An array's elements; nil for anything else.
    package var elements: [_MessagePackView]? {
        guard object.type == MSGPACK_OBJECT_ARRAY else { return nil }
        let array = object.via.array
        return (0..<Int(array.size)).map { _MessagePackView(array.ptr[$0]) }
    }

    /// A map's pairs, in order; nil for anything else.
    package var pairs: [(key: _MessagePackView, value: _MessagePackView)]? {
        guard object.type == MSGPACK_OBJECT_MAP else { return nil }
        let map = object.via.map
        return (0..<Int(map.size)).map { (_MessagePackView(map.ptr[$0].key), _MessagePackView(map.ptr[$0].val)) }
    }
}

extension MessagePackValue {
    /// Parses `bytes`, which must hold exactly one value, and gives `body` a view of
    /// it, valid during the call: the same checks as `init(bytes:limits:)`, without
    /// building the value.
    /// - Throws: what `init(bytes:limits:)` throws, or what `body` throws.
    package static func withView<R>(
        of bytes: [UInt8], limits: MessagePackLimits = MessagePackLimits(), _ body: (_MessagePackView) throws -> R
    ) throws -> R {
        try withTree(of: bytes, limits: limits) { try body(_MessagePackView($0)) }
    }
}
