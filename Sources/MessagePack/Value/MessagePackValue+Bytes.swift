import CMsgPack

extension MessagePackValue {
    /// Parses MessagePack bytes that hold exactly one value.
    /// - Parameters:
    ///   - bytes: The MessagePack bytes.
    ///   - limits: Bounds on depth and lengths, checked before anything is allocated.
    /// - Throws: `DecodingError.dataCorrupted` for truncated or invalid bytes, invalid
    ///   UTF-8 in a string, bytes after the value, or a limit exceeded.
    public init(bytes: some Sequence<UInt8>, limits: MessagePackLimits = MessagePackLimits()) throws {
        self = try Self.withTree(of: bytes as? [UInt8] ?? Array(bytes), limits: limits) { object in
            try MessagePackValue(object: object, codingPath: [])
        }
    }

    /// Parses `bytes` (exactly one value) into msgpack-c's tree, valid during `body`.
    static func withTree<R>(of bytes: [UInt8], limits: MessagePackLimits, _ body: (msgpack_object) throws -> R) throws -> R {
        let zone = spareZone.take() ?? _ReusableZone()
        defer {
            zone.clear()
            // One that could not be made (out of memory) is not kept to fail the next calls.
            if zone.isUsable { spareZone.giveBack(zone) }
        }
        return try bytes.withUnsafeBytes { raw in try body(zone.parse(raw, limits: limits)) }
    }

    /// The value as MessagePack bytes, each integer in its smallest format.
    /// - Throws: `EncodingError.invalidValue` if a container holds more than
    ///   2^32 - 1 elements or a string or binary is 4 GiB or longer.
    public func bytes() throws -> [UInt8] {
        let buffer = Self.sparePacker.take() ?? _OwnedPacker()
        defer {
            buffer.packer.removeAll()
            // A buffer grown for a large value is let go, not kept.
            if buffer.packer.capacity <= _OwnedPacker.keptCapacity { Self.sparePacker.giveBack(buffer) }
        }
        let packer = buffer.packer
        try pack(into: packer)
        guard !packer.failed else {
            throw EncodingError.invalidValue(self, .init(codingPath: [], debugDescription: "Out of memory while packing."))
        }
        return packer.makeArray()
    }

    // Kept from one call to the next: a zone (8 KiB) and a packer's buffer made and
    // freed per call were most of the cost of a small value such as a pool's frame.
    private static let spareZone = _Spare<_ReusableZone>()
    private static let sparePacker = _Spare<_OwnedPacker>()

    func pack(into packer: _Packer) throws(EncodingError) {
        switch self {
        case .nil: packer.packNil()
        case .bool(let value): packer.packBool(value)
        case .int(let value): packer.packInt(value)
        case .uint(let value): packer.packUInt(value)
        case .float(let value): packer.packFloat(value)
        case .double(let value): packer.packDouble(value)
        case .string(let value):
            try _checkLength(value.utf8.count, of: self)
            packer.packString(value)
        case .binary(let value):
            try _checkLength(value.count, of: self)
            value.withUnsafeBytes { packer.packBinary($0) }
        case .array(let elements):
            try _checkLength(elements.count, of: self)
            packer.packArrayHeader(elements.count)
            for element in elements { try element.pack(into: packer) }
        case .map(let pairs):
            try _checkLength(pairs.count, of: self)
            packer.packMapHeader(pairs.count)
            for pair in pairs {
                try pair.key.pack(into: packer)
                try pair.value.pack(into: packer)
            }
        case .timestamp(let stamp):
            try stamp.validate(codingPath: [])
            packer.packTimestamp(seconds: stamp.seconds, nanoseconds: stamp.nanoseconds)
        case .extension(let ext):
            try _checkLength(ext.data.count, of: self)
            ext.data.withUnsafeBytes { packer.packExtension(type: ext.type, data: $0) }
        }
    }

    /// Converts one node of msgpack-c's object tree. The coding path is built only
    /// if an error needs it: describing each map key for its values' paths, as this
    /// once did eagerly, made a value of many maps cost time quadratic in its size
    /// (found by the fuzzer as a slow input).
    init(object: msgpack_object, codingPath: [any CodingKey]) throws(DecodingError) {
        try self.init(object: object, path: { codingPath })
    }

    private init(object: msgpack_object, path codingPath: () -> [any CodingKey]) throws(DecodingError) {
        switch object.type {
        case MSGPACK_OBJECT_NIL: self = .nil
        case MSGPACK_OBJECT_BOOLEAN: self = .bool(object.via.boolean)
        case MSGPACK_OBJECT_POSITIVE_INTEGER: self = .uint(object.via.u64)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: self = .int(object.via.i64)
        case MSGPACK_OBJECT_FLOAT32: self = .float(Float(object.via.f64))
        case MSGPACK_OBJECT_FLOAT64: self = .double(object.via.f64)
        case MSGPACK_OBJECT_STR: self = .string(try _string(object, codingPath: codingPath()))
        case MSGPACK_OBJECT_BIN: self = .binary(_bytes(object.via.bin.ptr, object.via.bin.size))
        case MSGPACK_OBJECT_ARRAY:
            let array = object.via.array
            var elements: [MessagePackValue] = []
            elements.reserveCapacity(Int(array.size))
            for index in 0..<Int(array.size) {
                elements.append(try MessagePackValue(
                    object: array.ptr[index], path: { codingPath() + [_MessagePackKey(index: index)] }))
            }
            self = .array(elements)
        case MSGPACK_OBJECT_MAP:
            let map = object.via.map
            var pairs: [(key: MessagePackValue, value: MessagePackValue)] = []
            pairs.reserveCapacity(Int(map.size))
            for index in 0..<Int(map.size) {
                let key = try MessagePackValue(object: map.ptr[index].key, path: codingPath)
                let value = try MessagePackValue(
                    object: map.ptr[index].val, path: { codingPath() + [_MessagePackKey(describing: key)] })
                pairs.append((key, value))
            }
            self = .map(pairs)
        case MSGPACK_OBJECT_EXT:
            if let stamp = MessagePackTimestamp(object: object) {
                self = .timestamp(stamp)
            } else {
                let ext = object.via.ext
                self = .extension(MessagePackExtension(type: ext.type, data: _bytes(ext.ptr, ext.size)))
            }
        default:
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath(), debugDescription: "msgpack-c returned an unknown object type \(object.type.rawValue)."))
        }
    }
}

extension MessagePackTimestamp {
    /// The timestamp in an extension object of type -1, or `nil` if it is another
    /// extension or not one of the three timestamp sizes with nanoseconds below 10^9.
    init?(object: msgpack_object) {
        guard object.type == MSGPACK_OBJECT_EXT, object.via.ext.type == -1 else { return nil }
        var object = object
        var stamp = msgpack_timestamp()
        guard msgpack_object_to_timestamp(&object, &stamp), stamp.tv_nsec < 1_000_000_000 else { return nil }
        self.init(seconds: stamp.tv_sec, nanoseconds: stamp.tv_nsec)
    }

    func validate(codingPath: [any CodingKey]) throws(EncodingError) {
        guard nanoseconds < 1_000_000_000 else {
            throw EncodingError.invalidValue(self, .init(
                codingPath: codingPath, debugDescription: "A timestamp's nanoseconds must be below 1,000,000,000, not \(nanoseconds)."))
        }
    }
}

/// MessagePack lengths are 32-bit.
func _checkLength(_ length: Int, of value: @autoclosure () -> Any, codingPath: @autoclosure () -> [any CodingKey] = []) throws(EncodingError) {
    guard length <= Int(UInt32.max) else { throw _lengthError(length, of: value(), codingPath: codingPath()) }
}

/// `_checkLength` for the encoder, whose calls throw untyped. A call of a function
/// that throws `EncodingError` (a type whose size the compiler does not know) costs
/// its caller a metadata lookup and a stack allocation on every call, thrown or not.
@inline(__always)
func _checkLengthUntyped(_ length: Int, of value: @autoclosure () -> Any, codingPath: @autoclosure () -> [any CodingKey]) throws {
    if length > Int(UInt32.max) { throw _lengthError(length, of: value(), codingPath: codingPath()) as any Error }
}

@inline(never)
private func _lengthError(_ length: Int, of value: Any, codingPath: [any CodingKey]) -> EncodingError {
    EncodingError.invalidValue(value, .init(
        codingPath: codingPath, debugDescription: "MessagePack cannot hold \(length) elements or bytes in one value (the most is 4,294,967,295)."))
}

/// The UTF-8 text of a str object, validated.
func _string(_ object: msgpack_object, codingPath: @autoclosure () -> [any CodingKey]) throws(DecodingError) -> String {
    let str = object.via.str
    let buffer = UnsafeRawBufferPointer(start: str.ptr, count: Int(str.size)).assumingMemoryBound(to: UInt8.self)
    // ASCII is valid UTF-8: checking for it is much cheaper than general validation,
    // and keys and most message text are ASCII.
    if buffer.allSatisfy({ $0 < 0x80 }) {
        return String(decoding: buffer, as: UTF8.self)
    }
    guard let string = String(validating: buffer, as: UTF8.self) else {
        throw DecodingError.dataCorrupted(.init(
            codingPath: codingPath(), debugDescription: "The string is not valid UTF-8 (at \(_render(codingPath())))."))
    }
    return string
}

func _bytes(_ pointer: UnsafePointer<CChar>?, _ count: UInt32) -> [UInt8] {
    [UInt8](UnsafeRawBufferPointer(start: pointer, count: Int(count)))
}
