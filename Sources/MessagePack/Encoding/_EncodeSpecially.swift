#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Types the encoder writes itself rather than through their `encode(to:)`:
/// scalars MessagePack has a format for, Foundation types with a natural
/// MessagePack form, and the collections whose layout MessagePack fixes
/// (an array's count up front, a map with keys of any type, sorted).
protocol _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws
}

extension Int8: _MessagePackEncodeSpecially {}
extension Int16: _MessagePackEncodeSpecially {}
extension Int32: _MessagePackEncodeSpecially {}
extension Int64: _MessagePackEncodeSpecially {}
extension UInt: _MessagePackEncodeSpecially {}
extension UInt8: _MessagePackEncodeSpecially {}
extension UInt16: _MessagePackEncodeSpecially {}
extension UInt32: _MessagePackEncodeSpecially {}
extension UInt64: _MessagePackEncodeSpecially {}

extension _MessagePackEncodeSpecially where Self: FixedWidthInteger {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) {
        if Self.isSigned { encoder.buffer(parent).packInt(Int64(self)) } else { encoder.buffer(parent).packUInt(UInt64(self)) }
    }
}

extension Float: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) {
        encoder.buffer(parent).packFloat(self)
    }
}

extension URL: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) {
        encoder.buffer(parent).packString(absoluteString)
    }
}

extension UUID: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) {
        encoder.buffer(parent).packString(uuidString)
    }
}

extension Decimal: _MessagePackEncodeSpecially {
    /// As a string: exact, where a float would round.
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) {
        encoder.buffer(parent).packString(description)
    }
}

extension MessagePackValue: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        try pack(into: encoder.buffer(parent))
    }
}

extension MessagePackTimestamp: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        try validate(codingPath: path().path)
        encoder.buffer(parent).packTimestamp(seconds: seconds, nanoseconds: nanoseconds)
    }
}

extension MessagePackExtension: _MessagePackEncodeSpecially {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        try _checkLengthUntyped(data.count, of: self, codingPath: path().path)
        data.withUnsafeBytes { encoder.buffer(parent).packExtension(type: type, data: $0) }
    }
}

extension Optional: _MessagePackEncodeSpecially where Wrapped: Encodable {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        if let wrapped = self {
            try encoder.encodeValue(wrapped, into: parent, path: path())
        } else {
            encoder.buffer(parent).packNil()
        }
    }
}

extension Array: _MessagePackEncodeSpecially where Element: Encodable {
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        try _checkLengthUntyped(count, of: self, codingPath: path().path)
        let out = encoder.buffer(parent)
        out.packArrayHeader(count)
        // Arrays of the common scalars in a tight, specialized loop.
        if Element.self == Int.self {
            for element in _cast(self, [Int].self) { out.packInt(Int64(element)) }
        } else if Element.self == String.self {
            for element in _cast(self, [String].self) { out.packString(element) }
        } else if Element.self == Double.self {
            for element in _cast(self, [Double].self) { out.packDouble(element) }
        } else {
            for index in indices {
                try encoder.encodeValue(self[index], into: parent, path: path().appending(_MessagePackKey(index: index)))
            }
        }
    }
}

extension Dictionary: _MessagePackEncodeSpecially where Key: Encodable, Value: Encodable {
    /// A map whose keys are the keys' own MessagePack values (`[Int: V]` has integer
    /// keys), sorted unless the options say otherwise.
    // Each way of writing the pairs is a function of its own: locals of generic
    // tuple types (a pair, an entry) cost a runtime metadata lookup on every call of
    // the function that declares them, even where that branch does not run.
    func encodeSpecially(into encoder: _MessagePackEncoder, parent: Int, path: @autoclosure () -> _CodingPathNode) throws {
        try _checkLengthUntyped(count, of: self, codingPath: path().path)
        encoder.buffer(parent).packMapHeader(count)
        guard encoder.options.sortsDictionaryKeys, count > 1 else {
            return try encodeUnsorted(encoder, parent, path())
        }
        let out = encoder.buffer(parent)
        // String-keyed maps of the common scalars in specialized code (no generic dispatch).
        if Key.self == String.self && Value.self == Int.self {
            _encodeSorted(_cast(self, [String: Int].self), into: out) { out.packInt(Int64($0)) }
        } else if Key.self == String.self && Value.self == String.self {
            _encodeSorted(_cast(self, [String: String].self), into: out) { out.packString($0) }
        } else if Key.self == String.self && Value.self == Double.self {
            _encodeSorted(_cast(self, [String: Double].self), into: out) { out.packDouble($0) }
        } else if Key.self == String.self && Value.self == Bool.self {
            _encodeSorted(_cast(self, [String: Bool].self), into: out) { out.packBool($0) }
        } else if Key.self == String.self {
            try encodeSortedByString(encoder, parent, path())
        } else if Key.self == Int.self {
            try encodeSortedByInt(encoder, parent, path())
        } else {
            try encodeSortedByValue(encoder, parent, path())
        }
    }

    @inline(never)
    private func encodeUnsorted(_ encoder: _MessagePackEncoder, _ parent: Int, _ path: @autoclosure () -> _CodingPathNode) throws {
        for (key, value) in self { try encodePair(key, value, encoder, parent, path()) }
    }

    /// Sorts concrete strings (a specialized sort), then visits values by position: no key is hashed again.
    @inline(never)
    private func encodeSortedByString(_ encoder: _MessagePackEncoder, _ parent: Int, _ path: @autoclosure () -> _CodingPathNode) throws {
        let out = encoder.buffer(parent)
        let names = _cast(Array(keys), [String].self)
        let values = Array(self.values)  // in the same order as `keys`
        let order = names.indices.sorted { _utf8Precedes(names[$0], names[$1]) }
        for index in order {
            out.packString(names[index])
            try encoder.encodeValue(values[index], into: parent, path: path().appending(_MessagePackKey(stringValue: names[index])))
        }
    }

    @inline(never)
    private func encodeSortedByInt(_ encoder: _MessagePackEncoder, _ parent: Int, _ path: @autoclosure () -> _CodingPathNode) throws {
        for (key, value) in sorted(by: { _cast($0.key, Int.self) < _cast($1.key, Int.self) }) {
            try encodePair(key, value, encoder, parent, path())
        }
    }

    /// Any other key type: each key is encoded once, ordered by its MessagePack value
    /// (integers by value), and its bytes written as they are.
    @inline(never)
    private func encodeSortedByValue(_ encoder: _MessagePackEncoder, _ parent: Int, _ path: @autoclosure () -> _CodingPathNode) throws {
        var entries: [(bytes: [UInt8], order: MessagePackValue, value: Value)] = []
        for (key, value) in self {
            let bytes = try _MessagePackEncoder(options: encoder.options).encodeTopLevel(key)
            entries.append((bytes, try MessagePackValue(bytes: bytes), value))
        }
        entries.sort { $0.order.sortsBefore($1.order) }
        for entry in entries {
            entry.bytes.withUnsafeBytes { encoder.buffer(parent).append($0) }
            try encoder.encodeValue(entry.value, into: parent, path: path().appending(_MessagePackKey(describing: entry.order)))
        }
    }

    private func encodePair(
        _ key: Key, _ value: Value, _ encoder: _MessagePackEncoder, _ parent: Int, _ path: @autoclosure () -> _CodingPathNode
    ) throws {
        try encoder.encodeValue(key, into: parent, path: path())
        try encoder.encodeValue(value, into: parent, path: path().appending(_MessagePackKey(stringValue: "\(key)")))
    }
}

/// Whether `a` sorts before `b` by their UTF-8 bytes (code point order).
func _utf8Precedes(_ a: String, _ b: String) -> Bool {
    // Borrowed in place where the UTF-8 is contiguous (no copies, no retains).
    let order = a.utf8.withContiguousStorageIfAvailable { x in
        b.utf8.withContiguousStorageIfAvailable { y in _precedes(x, y) }
    }
    if let order, let order { return order }
    var a = a, b = b
    return a.withUTF8 { x in b.withUTF8 { y in _precedes(x, y) } }
}

@inline(__always)
private func _precedes(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
    let common = min(x.count, y.count)
    let order = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
    return order != 0 ? order < 0 : x.count < y.count
}

/// A string-keyed map's pairs, keys sorted by their UTF-8 bytes; specialized per value type.
@inline(__always)
private func _encodeSorted<V>(_ map: [String: V], into out: _Packer, value pack: (V) -> Void) {
    guard map.count <= 16 else {
        for (key, value) in map.sorted(by: { _utf8Precedes($0.key, $1.key) }) {
            out.packString(key)
            pack(value)
        }
        return
    }
    // The few keys of a struct-like map: their positions in the dictionary, on the
    // stack, put in order by an insertion sort. No array, and none of the standard
    // sort's machinery, which costs more than the comparisons here.
    withUnsafeTemporaryAllocation(of: Dictionary<String, V>.Index.self, capacity: map.count) { order in
        var count = 0
        var position = map.startIndex
        while position != map.endIndex {
            let key = map[position].key
            var slot = count
            while slot > 0 && _utf8Precedes(key, map[order[slot - 1]].key) {
                order.initializeElement(at: slot, to: order.moveElement(from: slot - 1))
                slot -= 1
            }
            order.initializeElement(at: slot, to: position)
            count += 1
            map.formIndex(after: &position)
        }
        for index in 0..<count {
            let (key, value) = map[order[index]]
            out.packString(key)
            pack(value)
        }
        _ = order.prefix(count).deinitialize()
    }
}

extension MessagePackValue {
    /// A total order for sorting map keys: by kind, then by value (strings by UTF-8 bytes).
    func sortsBefore(_ other: MessagePackValue) -> Bool {
        func rank(_ value: MessagePackValue) -> Int {
            switch value {
            case .nil: 0
            case .bool: 1
            case .int, .uint: 2
            case .float, .double: 3
            case .string: 4
            case .binary: 5
            case .array: 6
            case .map: 7
            case .timestamp: 8
            case .extension: 9
            }
        }
        switch (self, other) {
        case let (.bool(a), .bool(b)): return !a && b
        case let (.int(a), .int(b)): return a < b
        case let (.uint(a), .uint(b)): return a < b
        case let (.int(a), .uint(b)): return a < 0 || UInt64(a) < b
        case let (.uint(a), .int(b)): return b >= 0 && a < UInt64(b)
        case let (.float(a), .float(b)): return a < b
        case let (.double(a), .double(b)): return a < b
        case let (.string(a), .string(b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
        case let (.binary(a), .binary(b)): return a.lexicographicallyPrecedes(b)
        default:
            let (left, right) = (rank(self), rank(other))
            if left != right { return left < right }
            // Same kind without a natural order (arrays, maps, extensions): by their bytes.
            return ((try? self.bytes()) ?? []).lexicographicallyPrecedes((try? other.bytes()) ?? [])
        }
    }
}
