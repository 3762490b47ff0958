/// `MessagePackValue` is `Codable` so that a struct may hold "any value" as a field.
/// With MessagePack's own coders it is the value itself, bytes for bytes (the coders
/// write and read it directly). With other coders, such as JSON, it takes the
/// nearest plain form: binary as an array of bytes, timestamps and extensions as
/// their keyed forms, maps with non-string keys as arrays of `[key, value]` pairs.
extension MessagePackValue: Codable {
    /// Writes the value: itself with `MessagePackEncoder`, its nearest plain form with
    /// other encoders.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .nil:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value): try value.encode(to: encoder)
        case .int(let value): try value.encode(to: encoder)
        case .uint(let value): try value.encode(to: encoder)
        case .float(let value): try value.encode(to: encoder)
        case .double(let value): try value.encode(to: encoder)
        case .string(let value): try value.encode(to: encoder)
        case .binary(let value): try value.encode(to: encoder)
        case .array(let elements): try elements.encode(to: encoder)
        case .timestamp(let stamp): try stamp.encode(to: encoder)
        case .extension(let ext): try ext.encode(to: encoder)
        case .map(let pairs):
            if pairs.allSatisfy({ if case .string = $0.key { true } else { false } }) {
                var container = encoder.container(keyedBy: _MessagePackKey.self)
                for pair in pairs {
                    guard case .string(let key) = pair.key else { continue }
                    try container.encode(pair.value, forKey: _MessagePackKey(stringValue: key))
                }
            } else {
                var container = encoder.unkeyedContainer()
                for pair in pairs { try container.encode([pair.key, pair.value]) }
            }
        }
    }

    /// Reads a value: whatever the bytes hold with `MessagePackDecoder`; with other
    /// decoders, the first of nil, bool, integer, floating point, string, array and
    /// map (string keys) that the input reads as.
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer() {
            if container.decodeNil() { self = .nil; return }
            if let value = try? container.decode(Bool.self) { self = .bool(value); return }
            if let value = try? container.decode(UInt64.self) { self = .uint(value); return }
            if let value = try? container.decode(Int64.self) { self = .int(value); return }
            if let value = try? container.decode(Double.self) { self = .double(value); return }
            if let value = try? container.decode(String.self) { self = .string(value); return }
        }
        if var container = try? decoder.unkeyedContainer() {
            var elements: [MessagePackValue] = []
            while !container.isAtEnd { elements.append(try container.decode(MessagePackValue.self)) }
            self = .array(elements)
            return
        }
        let container = try decoder.container(keyedBy: _MessagePackKey.self)
        self = .map(try container.allKeys.map { (.string($0.stringValue), try container.decode(MessagePackValue.self, forKey: $0)) })
    }
}
