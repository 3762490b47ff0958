/// The keyed container of an entry: a map, or an array of values when structs
/// are encoded as arrays. Its box is reused from value to value
/// (`_KeyedContainers`), so which entry it writes is in `state`.
struct _KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: _KeyedContainerState

    /// The encoder, on the paths off the hot one (only while the state is live).
    private var encoder: _MessagePackEncoder { state.encoder.takeUnretainedValue() }
    var codingPath: [any CodingKey] { state.isLive ? encoder.path(of: state.index, state.serial) : [] }
    private var asArray: Bool { state.asArray }

    /// Runs `body` with the live entry's encoder, borrowed: a counted reference
    /// would be retained and released on every field. Throws if the container's
    /// call is over, or its value finished, or a misuse is pending.
    @inline(__always) private func withLiveEncoder<R>(_ body: (_MessagePackEncoder) throws -> R) throws -> R {
        guard state.isLive else { throw _MessagePackEncoder.staleContainer() }
        return try state.encoder._withUnsafeGuaranteedRef { encoder in
            try encoder.check(state.index, state.serial)
            return try body(encoder)
        }
    }

    /// Writes the key (in map form) and counts the pair; returns the buffer for the value.
    @inline(__always) private func begin(_ key: Key) throws -> _Packer {
        try withLiveEncoder { encoder in
            let out = state.out
            if !state.asArray { encoder.encodeKey(key, into: out) }
            encoder.entries[state.index].count += 1
            return out
        }
    }

    mutating func encodeNil(forKey key: Key) throws { try begin(key).packNil() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try begin(key).packBool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try begin(key).packString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try begin(key).packDouble(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try begin(key).packFloat(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try begin(key).packInt(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try begin(key).packInt(Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try begin(key).packInt(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try begin(key).packInt(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try begin(key).packInt(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try begin(key).packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try begin(key).packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try begin(key).packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try begin(key).packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try begin(key).packUInt(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        // The state read before the value's own encoding, which is opaque to the
        // compiler: a state used after it was retained and released around it.
        let (out, index, asArray) = (state.out, state.index, state.asArray)
        try withLiveEncoder { encoder in
            let mark = out.count
            if !asArray { encoder.encodeKey(key, into: out) }
            try encoder.encodeElement(value, into: index, mark: mark, path: encoder.entries[index].path.appending(key))
        }
    }

    // An absent optional is left out of a map, but is a nil in an array, where
    // positions carry the meaning.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else if asArray { try encodeNil(forKey: key) }
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { try absent(key) } }

    /// An absent optional: nothing in a map, a nil in an array.
    private mutating func absent(_ key: Key) throws {
        if asArray { try encodeNil(forKey: key) }
    }

    // A container whose call is over must not reach its encoder, which may be gone:
    // it hands out containers of a detached encoder, which throw on use.

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        guard state.isLive else { return _MessagePackEncoder.detached().staleKeyedContainer(keyType) }
        guard let child = nestedEntry(key, kind: asArray ? .array : .map) else { return encoder.staleKeyedContainer(keyType) }
        return encoder.keyedContainer(NestedKey.self, for: child)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard state.isLive else { return _MessagePackEncoder.detached().staleUnkeyedContainer() }
        guard let child = nestedEntry(key, kind: .array) else { return encoder.staleUnkeyedContainer() }
        return _UnkeyedContainer(encoder: encoder, index: child, serial: encoder.entries[child].serial)
    }

    mutating func superEncoder() -> any Encoder {
        _superEncoder(key: _MessagePackKey.super)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        _superEncoder(key: key)
    }

    private mutating func _superEncoder(key: some CodingKey) -> any Encoder {
        guard state.isLive else { return _MessagePackEncoder.detached().staleSuperEncoder() }
        guard let child = nestedEntry(key, kind: .slot) else { return encoder.staleSuperEncoder() }
        return _SuperEncoder(encoder: encoder, index: child, serial: encoder.entries[child].serial)
    }

    /// Writes the key now and opens an entry that is spliced in right after it; nil
    /// if this container's value is finished (the misuse is then thrown by the next
    /// write or when the value finishes, and the caller hands out a container whose
    /// every write throws).
    private mutating func nestedEntry(_ key: some CodingKey, kind: _MessagePackEncoder.Kind) -> Int? {
        let index = state.index
        guard encoder.checkLater(index, state.serial) else { return nil }
        let out = encoder.buffer(index)
        if !asArray { encoder.encodeKey(key, into: out) }
        encoder.entries[index].count += 1
        return encoder.push(
            parent: index, offset: out.count, kind: kind, path: encoder.entries[index].path.appending(key))
    }
}

/// The unkeyed container of an entry: an array.
struct _UnkeyedContainer: UnkeyedEncodingContainer {
    let encoder: _MessagePackEncoder
    let index: Int
    let serial: Int

    var codingPath: [any CodingKey] { encoder.path(of: index, serial) }
    var count: Int { encoder.holds(index, serial) ? encoder.entries[index].count : 0 }

    @inline(__always) private func begin() throws -> _Packer {
        try encoder.check(index, serial)
        encoder.entries[index].count += 1
        return encoder.buffer(index)
    }

    private func elementPath(_ position: Int) -> _CodingPathNode {
        encoder.entries[index].path.appending(_MessagePackKey(index: position))
    }

    mutating func encodeNil() throws { try begin().packNil() }
    mutating func encode(_ value: Bool) throws { try begin().packBool(value) }
    mutating func encode(_ value: String) throws { try begin().packString(value) }
    mutating func encode(_ value: Double) throws { try begin().packDouble(value) }
    mutating func encode(_ value: Float) throws { try begin().packFloat(value) }
    mutating func encode(_ value: Int) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try begin().packInt(value) }
    mutating func encode(_ value: UInt) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try begin().packUInt(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encoder.check(index, serial)
        let position = count  // the path is only built if an error needs it
        try encoder.encodeElement(value, into: index, mark: encoder.buffer(index).count, path: elementPath(position))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        guard let child = nestedEntry(kind: encoder.structsAsArrays ? .array : .map) else {
            return encoder.staleKeyedContainer(keyType)
        }
        return encoder.keyedContainer(NestedKey.self, for: child)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard let child = nestedEntry(kind: .array) else { return encoder.staleUnkeyedContainer() }
        return _UnkeyedContainer(encoder: encoder, index: child, serial: encoder.entries[child].serial)
    }

    mutating func superEncoder() -> any Encoder {
        guard let child = nestedEntry(kind: .slot) else { return encoder.staleSuperEncoder() }
        return _SuperEncoder(encoder: encoder, index: child, serial: encoder.entries[child].serial)
    }

    /// Opens an entry for the next element; nil if this container's value is
    /// finished (see `_KeyedContainer.nestedEntry`).
    private mutating func nestedEntry(kind: _MessagePackEncoder.Kind) -> Int? {
        guard encoder.checkLater(index, serial) else { return nil }
        let path = elementPath(count)
        encoder.entries[index].count += 1
        return encoder.push(parent: index, offset: encoder.buffer(index).count, kind: kind, path: path)
    }
}

/// The single-value container of an entry: exactly one value.
struct _SingleValueContainer: SingleValueEncodingContainer {
    let encoder: _MessagePackEncoder
    let index: Int
    let serial: Int

    var codingPath: [any CodingKey] { encoder.path(of: index, serial) }

    private func checkEmpty() throws {
        try encoder.check(index, serial)
        guard encoder.entries[index].count == 0 else {
            throw EncodingError.invalidValue((), .init(
                codingPath: codingPath, debugDescription: "A single value container was asked to encode a second value."))
        }
    }

    @inline(__always) private func begin() throws -> _Packer {
        try checkEmpty()
        encoder.entries[index].count = 1
        return encoder.buffer(index)
    }

    mutating func encodeNil() throws { try begin().packNil() }
    mutating func encode(_ value: Bool) throws { try begin().packBool(value) }
    mutating func encode(_ value: String) throws { try begin().packString(value) }
    mutating func encode(_ value: Double) throws { try begin().packDouble(value) }
    mutating func encode(_ value: Float) throws { try begin().packFloat(value) }
    mutating func encode(_ value: Int) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try begin().packInt(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try begin().packInt(value) }
    mutating func encode(_ value: UInt) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try begin().packUInt(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try begin().packUInt(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try checkEmpty()
        try encoder.encodeElement(value, into: index, mark: encoder.buffer(index).count, path: encoder.entries[index].path)
    }
}

/// The encoder a `superEncoder()` returns: it stands for one entry, spliced into
/// its parent where `superEncoder()` was called.
final class _SuperEncoder: Encoder {
    let encoder: _MessagePackEncoder
    let index: Int
    let serial: Int

    init(encoder: _MessagePackEncoder, index: Int, serial: Int) {
        self.encoder = encoder
        self.index = index
        self.serial = serial
    }

    var codingPath: [any CodingKey] { encoder.path(of: index, serial) }
    var userInfo: [CodingUserInfoKey: Any] { encoder.userInfo }

    private func live() -> Bool {
        encoder.checkLater(index, serial)
    }

    // A stale super encoder hands out containers whose every write throws.
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        live() ? encoder.container(keyedBy: type, at: index) : encoder.staleKeyedContainer(type)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        live() ? encoder.unkeyedContainer(at: index) : encoder.staleUnkeyedContainer()
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        live() ? encoder.singleValueContainer(at: index) : encoder.staleSingleValueContainer()
    }
}
