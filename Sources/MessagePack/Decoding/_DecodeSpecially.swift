#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CMsgPack

/// Types the decoder reads itself rather than through their `init(from:)`:
/// the counterparts of `_MessagePackEncodeSpecially`.
protocol _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> Self
}

extension _MessagePackDecodeSpecially where Self: FixedWidthInteger {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> Self {
        try decoder.integer(Self.self, object, path)
    }
}

extension Int8: _MessagePackDecodeSpecially {}
extension Int16: _MessagePackDecodeSpecially {}
extension Int32: _MessagePackDecodeSpecially {}
extension Int64: _MessagePackDecodeSpecially {}
extension UInt: _MessagePackDecodeSpecially {}
extension UInt8: _MessagePackDecodeSpecially {}
extension UInt16: _MessagePackDecodeSpecially {}
extension UInt32: _MessagePackDecodeSpecially {}
extension UInt64: _MessagePackDecodeSpecially {}

extension Float: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> Float {
        try decoder.float(object, path)
    }
}

extension URL: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> URL {
        let string = try decoder.string(object, path)
        guard let url = URL(string: string) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: path.path, debugDescription: "Invalid URL string \"\(string)\" (at \(_render(path.path)))."))
        }
        return url
    }
}

extension UUID: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> UUID {
        let string = try decoder.string(object, path)
        guard let uuid = UUID(uuidString: string) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: path.path, debugDescription: "Invalid UUID string \"\(string)\" (at \(_render(path.path)))."))
        }
        return uuid
    }
}

extension Decimal: _MessagePackDecodeSpecially {
    /// From a string (as written), or from a number another writer chose.
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> Decimal {
        switch object.type {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return Decimal(object.via.u64)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return Decimal(object.via.i64)
        case MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT64:
            // Foundation traps on an infinity, and gives NaN for what it cannot hold
            // (beyond about 1e±128): both are errors here, never a trap or a NaN.
            let double = object.via.f64
            let decimal = double.isFinite ? Decimal(double) : .nan
            guard !decimal.isNaN else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: path.path, debugDescription: "Number \(double) does not fit in Decimal (at \(_render(path.path)))."))
            }
            return decimal
        default:
            let string = try decoder.string(object, path)
            guard let decimal = Decimal(string: string) else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: path.path, debugDescription: "Invalid decimal string \"\(string)\" (at \(_render(path.path)))."))
            }
            return decimal
        }
    }
}

extension MessagePackValue: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> MessagePackValue {
        try MessagePackValue(object: object, codingPath: path.path)
    }
}

extension MessagePackTimestamp: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> MessagePackTimestamp {
        guard let stamp = MessagePackTimestamp(object: object) else {
            throw mismatch(MessagePackTimestamp.self, object, path, expected: "a timestamp")
        }
        return stamp
    }
}

extension MessagePackExtension: _MessagePackDecodeSpecially {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> MessagePackExtension {
        guard object.type == MSGPACK_OBJECT_EXT else {
            throw mismatch(MessagePackExtension.self, object, path, expected: "an extension")
        }
        return MessagePackExtension(type: object.via.ext.type, data: _bytes(object.via.ext.ptr, object.via.ext.size))
    }
}

extension Optional: _MessagePackDecodeSpecially where Wrapped: Decodable {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> Wrapped? {
        object.type == MSGPACK_OBJECT_NIL ? nil : try decoder.decodeValue(Wrapped.self, from: object, path: path)
    }
}

extension Array: _MessagePackDecodeSpecially where Element: Decodable {
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> [Element] {
        // Arrays of the common scalars in a tight, specialized loop.
        if Element.self == Int.self {
            return _cast(try decoder._array(object, path, as: Int.self) { try decoder.integer(Int.self, $0, $1()) }, [Element].self)
        }
        guard object.type == MSGPACK_OBJECT_ARRAY else { throw mismatch(self, object, path, expected: "an array") }
        let array = object.via.array
        var result: [Element] = []
        result.reserveCapacity(Int(array.size))
        for index in 0..<Int(array.size) {
            result.append(try decoder.decodeValue(Element.self, from: array.ptr[index], path: path.appending(_MessagePackKey(index: index))))
        }
        return result
    }
}

extension Dictionary: _MessagePackDecodeSpecially where Key: Decodable, Value: Decodable {
    /// From a map whose keys are the keys' own MessagePack values. A key that
    /// appears twice keeps its last value.
    static func decodeSpecially(from object: msgpack_object, decoder: _MessagePackDecoder, path: _CodingPathNode) throws -> [Key: Value] {
        guard object.type == MSGPACK_OBJECT_MAP else { throw mismatch(self, object, path, expected: "a map") }
        let map = object.via.map
        var result: [Key: Value] = [:]
        result.reserveCapacity(Int(map.size))
        for index in 0..<Int(map.size) {
            let pair = map.ptr[index]
            let key = try decoder.decodeValue(Key.self, from: pair.key, path: path)
            // The path (an autoclosure) is only built if an error needs it.
            result[key] = try decoder.decodeValue(Value.self, from: pair.val, path: path.appending(
                _MessagePackKey(describing: (try? MessagePackValue(object: pair.key, codingPath: [])) ?? .nil)))
        }
        return result
    }
}
