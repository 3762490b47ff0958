#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CMsgPack

/// The decoder behind one `MessagePackDecoder.decode` call.
///
/// msgpack-c has already parsed the bytes into its object tree (the "index" that
/// swift-foundation's JSON decoder builds by scanning); this object walks it,
/// standing for the value being decoded (`current`) and moving down and back up,
/// so a nested value costs no decoder object of its own.
final class _MessagePackDecoder: Decoder, _ReusableCoder {
    var options: MessagePackDecoder.Options
    /// Which version of its `MessagePackDecoder`'s options `options` is.
    @exclusivity(unchecked) var optionsVersion = 0
    // Touched only by the thread running this decode (see _MessagePackEncoder).
    @exclusivity(unchecked) private(set) var current: msgpack_object
    @exclusivity(unchecked) private(set) var path: _CodingPathNode = .root
    /// Where the last key was found, so fields read in order are found at once.
    @exclusivity(unchecked) var hint: (map: UnsafeMutablePointer<msgpack_object_kv>?, index: Int) = (nil, 0)

    /// Where msgpack-c parses the input; made on first use (not for super decoders).
    lazy var zone = _ReusableZone()
    /// Who keeps the input bytes alive, when a large `Data` may refer to them (see `data`),
    /// and how many bytes they are.
    @exclusivity(unchecked) var bytesOwner: AnyObject?
    @exclusivity(unchecked) var bytesOwnerCount = 0
    /// The views made of the input in this call, by where they start: the same bytes
    /// decoded twice give one `Data`, so changing one copy never changes another.
    @exclusivity(unchecked) var views: [UnsafeRawPointer: Data] = [:]
    /// Decoders made for super decoders in this call, and for one of them, the
    /// decoder that keeps it (see `child(at:path:)`).
    @exclusivity(unchecked) var children: [_MessagePackDecoder] = []
    unowned(unsafe) var callOwner: _MessagePackDecoder?
    /// What each type met so far needs: its special form, or none (kept while this decoder is reused).
    @exclusivity(unchecked) private var types = _TypeCache<any _MessagePackDecodeSpecially.Type>()

    init(options: MessagePackDecoder.Options, root: msgpack_object, path: _CodingPathNode = .root) {
        self.options = options
        self.current = root
        self.path = path
    }

    /// A decoder for `MessagePackDecoder.decode`, which parses into its zone and then `reset`s it.
    convenience init(options: MessagePackDecoder.Options) {
        self.init(options: options, root: msgpack_object())
    }

    /// Readies a finished decoder for another call.
    func reset(root: msgpack_object) {
        current = root
        path = .root
        hint = (nil, 0)
    }

    var codingPath: [any CodingKey] { path.path }
    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try keyedContainer(current, path)
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try unkeyedContainer(current, path)
    }

    func keyedContainer<Key: CodingKey>(_ object: msgpack_object, _ path: _CodingPathNode) throws(DecodingError) -> KeyedDecodingContainer<Key> {
        switch object.type {
        case MSGPACK_OBJECT_MAP:
            return KeyedDecodingContainer(_KeyedDecodingContainer<Key>(decoder: self, map: object.via.map, path: path))
        case MSGPACK_OBJECT_ARRAY:
            // A struct written as an array of its fields.
            return KeyedDecodingContainer(_KeyedDecodingContainer<Key>(decoder: self, positional: object.via.array, path: path))
        default:
            throw mismatch([String: Int].self, object, path, expected: "a map")
        }
    }

    func unkeyedContainer(_ object: msgpack_object, _ path: _CodingPathNode) throws(DecodingError) -> _UnkeyedDecodingContainer {
        guard object.type == MSGPACK_OBJECT_ARRAY else { throw mismatch([Int].self, object, path, expected: "an array") }
        return _UnkeyedDecodingContainer(decoder: self, array: object.via.array, path: path)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        _SingleValueDecodingContainer(decoder: self, object: current, path: path)
    }

    // MARK: Values

    /// Decodes a `T` from one object of the tree.
    func decodeValue<T: Decodable>(_ type: T.Type, from object: msgpack_object, path: @autoclosure () -> _CodingPathNode) throws -> T {
        // Types MessagePack has a format for, checked by metatype (no dynamic cast).
        if T.self == Int.self { return _cast(try integer(Int.self, object, path()), T.self) }
        if T.self == String.self { return _cast(try string(object, path()), T.self) }
        if T.self == Double.self { return _cast(try double(object, path()), T.self) }
        if T.self == Bool.self { return _cast(try bool(object, path()), T.self) }
        if T.self == Date.self { return _cast(try date(object, path()), T.self) }
        if T.self == Data.self { return _cast(try data(object, path()), T.self) }
        if T.self == [UInt8].self, object.type == MSGPACK_OBJECT_BIN { return _cast(try binary(object, path()), T.self) }
        // Collections of the common scalars, in specialized code.
        if T.self == [Int].self { return _cast(try _array(object, path(), as: Int.self) { try self.integer(Int.self, $0, $1()) }, T.self) }
        if T.self == [String].self { return _cast(try _array(object, path(), as: String.self) { try self.string($0, $1()) }, T.self) }
        if T.self == [Double].self { return _cast(try _array(object, path(), as: Double.self) { try self.double($0, $1()) }, T.self) }
        if T.self == [String: Int].self { return _cast(try _stringMap(object, path()) { try self.integer(Int.self, $0, $1()) }, T.self) }
        if T.self == [String: String].self { return _cast(try _stringMap(object, path()) { try self.string($0, $1()) }, T.self) }
        if T.self == [String: Double].self { return _cast(try _stringMap(object, path()) { try self.double($0, $1()) }, T.self) }
        if T.self == [String: Bool].self { return _cast(try _stringMap(object, path()) { try self.bool($0, $1()) }, T.self) }
        // Other scalars, Foundation types, optionals, arrays and dictionaries: found by
        // one dynamic cast per type, then remembered.
        let kind = types.kind(of: T.self) { T.self as? any _MessagePackDecodeSpecially.Type }
        if case .special(let special) = kind {
            func decode<S: _MessagePackDecodeSpecially>(_: S.Type) throws -> T {
                assert(S.self == T.self)  // remembered for T's identity: T itself
                return _cast(try S.decodeSpecially(from: object, decoder: self, path: path()), T.self)
            }
            return try decode(special)
        }
        // Anything else decodes itself, with this decoder moved to the object.
        let saved = (current, self.path)
        current = object
        self.path = path()
        defer { (current, self.path) = saved }
        return try T(from: self)
    }

    // MARK: Scalars

    func integer<T: FixedWidthInteger>(_ type: T.Type, _ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> T {
        // Int, the common case, in concrete code: called from unspecialized code, the
        // generic conversion below goes through witness tables.
        if T.self == Int.self {
            if object.type == MSGPACK_OBJECT_NEGATIVE_INTEGER { return _cast(Int(object.via.i64), T.self) }
            if object.type == MSGPACK_OBJECT_POSITIVE_INTEGER, object.via.u64 <= UInt64(Int.max) { return _cast(Int(object.via.u64), T.self) }
        }
        let result: T?
        switch object.type {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: result = T(exactly: object.via.u64)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: result = T(exactly: object.via.i64)
        default: throw mismatch(T.self, object, path())
        }
        guard let result else {
            let number = object.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? "\(object.via.u64)" : "\(object.via.i64)"
            throw DecodingError.dataCorrupted(.init(
                codingPath: path().path, debugDescription: "Number \(number) does not fit in \(T.self) (at \(_render(path().path)))."))
        }
        return result
    }

    func double(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> Double {
        switch object.type {
        case MSGPACK_OBJECT_FLOAT64, MSGPACK_OBJECT_FLOAT32: return object.via.f64
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return Double(object.via.u64)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return Double(object.via.i64)
        default: throw mismatch(Double.self, object, path())
        }
    }

    func float(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> Float {
        let value = try double(object, path())
        guard value.isNaN || value.isInfinite || abs(value) <= Double(Float.greatestFiniteMagnitude) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: path().path, debugDescription: "Number \(value) does not fit in Float (at \(_render(path().path)))."))
        }
        return Float(value)
    }

    func bool(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> Bool {
        guard object.type == MSGPACK_OBJECT_BOOLEAN else { throw mismatch(Bool.self, object, path()) }
        return object.via.boolean
    }

    func string(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> String {
        guard object.type == MSGPACK_OBJECT_STR else { throw mismatch(String.self, object, path()) }
        return try _string(object, codingPath: path().path)
    }

    func binary(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> [UInt8] {
        guard object.type == MSGPACK_OBJECT_BIN else { throw mismatch(Data.self, object, path(), expected: "binary data") }
        return _bytes(object.via.bin.ptr, object.via.bin.size)
    }

    /// A `Data` from bin: a copy, or for a large one when the input has an owner, a
    /// view of the input (msgpack-c's bin points into it) that keeps the owner alive.
    func data(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> Data {
        guard object.type == MSGPACK_OBJECT_BIN else { throw mismatch(Data.self, object, path(), expected: "binary data") }
        let bin = object.via.bin
        guard let start = bin.ptr, bin.size > 0 else { return Data() }
        // Only a bin that is most of the input: a small view would keep all of it alive.
        if let owner = bytesOwner, bin.size >= 1 << 16, Int(bin.size) * 2 >= bytesOwnerCount {
            let key = UnsafeRawPointer(start)
            if let view = views[key], view.count == Int(bin.size) { return view }
            let view = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: start), count: Int(bin.size), deallocator: .custom { _, _ in
                withExtendedLifetime(owner) {}
            })
            views[key] = view
            return view
        }
        return Data(bytes: start, count: Int(bin.size))
    }

    func date(_ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode) throws(DecodingError) -> Date {
        switch options.dateDecodingStrategy {
        case .timestamp:
            guard let stamp = MessagePackTimestamp(object: object) else {
                throw mismatch(Date.self, object, path(), expected: "a timestamp")
            }
            return Date(stamp)
        case .secondsSince1970:
            return Date(timeIntervalSince1970: try double(object, path()))
        case .millisecondsSince1970:
            return Date(timeIntervalSince1970: try double(object, path()) / 1000)
        }
    }
}

extension _MessagePackDecoder {
    /// An array whose elements `element` reads; specialized per element type.
    /// The path is made only if an error needs it: a node is an allocation.
    @inline(__always)
    func _array<E>(
        _ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode, as: E.Type,
        element: (msgpack_object, @autoclosure () -> _CodingPathNode) throws -> E
    ) throws -> [E] {
        guard object.type == MSGPACK_OBJECT_ARRAY else { throw mismatch([E].self, object, path(), expected: "an array") }
        let array = object.via.array
        var result: [E] = []
        result.reserveCapacity(Int(array.size))  // bounded by the input: the scanner checked the count
        // (Not escaping: `element` only calls it, and only for an error.)
        try withoutActuallyEscaping(path) { path in
            for index in 0..<Int(array.size) {
                result.append(try element(array.ptr[index], path().appending(_MessagePackKey(index: index))))
            }
        }
        return result
    }

    /// A map with string keys whose values `value` reads; specialized per value type.
    /// A key that appears twice keeps its last value, as for any dictionary.
    @inline(__always)
    func _stringMap<V>(
        _ object: msgpack_object, _ path: @autoclosure () -> _CodingPathNode,
        value: (msgpack_object, @autoclosure () -> _CodingPathNode) throws -> V
    ) throws -> [String: V] {
        guard object.type == MSGPACK_OBJECT_MAP else { throw mismatch([String: V].self, object, path(), expected: "a map") }
        let map = object.via.map
        var result: [String: V] = [:]
        result.reserveCapacity(Int(map.size))
        try withoutActuallyEscaping(path) { path in
            for index in 0..<Int(map.size) {
                let key = try string(map.ptr[index].key, path())
                result[key] = try value(map.ptr[index].val, path().appending(_MessagePackKey(stringValue: key)))
            }
        }
        return result
    }
}

/// One thread at a time uses a decoder: it passes between threads only through
/// `MessagePackDecoder`'s spare slot, behind its mutex; a finished call's tree is
/// cleared from its zone, and `reset` replaces its pointers before the next use.
extension _MessagePackDecoder: @unchecked Sendable {}

extension Date {
    /// The date of a timestamp, split in the reference epoch to round once.
    /// Seconds near Int64.min would overflow in integers; there the difference is
    /// taken in Double (such a date is far beyond Double's whole seconds anyway).
    init(_ stamp: MessagePackTimestamp) {
        let (seconds, overflow) = stamp.seconds.subtractingReportingOverflow(978_307_200)
        self.init(timeIntervalSinceReferenceDate:
            (overflow ? Double(stamp.seconds) - 978_307_200 : Double(seconds)) + Double(stamp.nanoseconds) / 1e9)
    }
}

/// What a value in the tree is, as an error message says it.
func _describe(_ object: msgpack_object) -> String {
    switch object.type {
    case MSGPACK_OBJECT_NIL: return "nil"
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean"
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "the integer \(object.via.u64)"
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "the integer \(object.via.i64)"
    case MSGPACK_OBJECT_FLOAT32: return "a float 32"
    case MSGPACK_OBJECT_FLOAT64: return "a float 64"
    case MSGPACK_OBJECT_STR: return "a string"
    case MSGPACK_OBJECT_BIN: return "binary data"
    case MSGPACK_OBJECT_ARRAY: return "an array"
    case MSGPACK_OBJECT_MAP: return "a map"
    case MSGPACK_OBJECT_EXT: return object.via.ext.type == -1 ? "a timestamp" : "an extension of type \(object.via.ext.type)"
    default: return "an unknown value"
    }
}

/// "Expected to decode Double but found a string instead (at items[3].price)."
func mismatch(_ type: Any.Type, _ object: msgpack_object, _ path: _CodingPathNode, expected: String? = nil) -> DecodingError {
    let codingPath = path.path
    let what = expected.map { "\(type) (\($0))" } ?? "\(type)"
    let description = object.type == MSGPACK_OBJECT_NIL
        ? "Expected \(what) value but found nil instead (at \(_render(codingPath)))."
        : "Expected to decode \(what) but found \(_describe(object)) instead (at \(_render(codingPath)))."
    if object.type == MSGPACK_OBJECT_NIL {
        return DecodingError.valueNotFound(type, .init(codingPath: codingPath, debugDescription: description))
    }
    return DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: description))
}
