/// A MessagePack value of any type, as it stands in the bytes.
///
/// Use it where the shape of a message is not known in advance, to inspect
/// bytes, or as a field of a `Codable` type that holds "anything". Maps keep
/// their order and may have keys of any type, as MessagePack allows.
///
/// ```swift
/// let value: MessagePackValue = ["id": 7, "tags": ["a", "b"], "raw": .binary([0xff])]
/// let bytes = try value.bytes()
/// let back = try MessagePackValue(bytes: bytes)   // == value
/// ```
public enum MessagePackValue: Sendable {
    /// Nil: Python's `None`, and what an absent `Optional` encodes as.
    case `nil`
    /// A boolean.
    case bool(Bool)
    /// A signed integer. Values decoded from the bytes are `.int` when negative, `.uint` otherwise.
    case int(Int64)
    /// A non-negative integer.
    case uint(UInt64)
    /// A float 32.
    case float(Float)
    /// A float 64.
    case double(Double)
    /// A string (MessagePack's str), valid UTF-8.
    case string(String)
    /// Bytes (MessagePack's bin): what `Data` and `[UInt8]` encode as.
    case binary([UInt8])
    /// An array of values.
    case array([MessagePackValue])
    /// A map, its pairs in order.
    case map([(key: MessagePackValue, value: MessagePackValue)])
    /// The timestamp extension (type -1).
    case timestamp(MessagePackTimestamp)
    /// Any other extension type.
    case `extension`(MessagePackExtension)
}

extension MessagePackValue: Equatable {
    /// Values are equal when they would mean the same to a reader: `.int(5)` equals
    /// `.uint(5)` (MessagePack has one integer space), floats compare by value and NaN
    /// equals NaN of the same width, maps compare pair by pair in order.
    public static func == (lhs: MessagePackValue, rhs: MessagePackValue) -> Bool {
        switch (lhs, rhs) {
        case (.nil, .nil): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.uint(a), .uint(b)): return a == b
        case let (.int(a), .uint(b)), let (.uint(b), .int(a)): return a >= 0 && UInt64(a) == b
        case let (.float(a), .float(b)): return a == b || (a.isNaN && b.isNaN)
        case let (.double(a), .double(b)): return a == b || (a.isNaN && b.isNaN)
        case let (.string(a), .string(b)): return a == b
        case let (.binary(a), .binary(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.map(a), .map(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.timestamp(a), .timestamp(b)): return a == b
        case let (.extension(a), .extension(b)): return a == b
        default: return false
        }
    }
}

extension MessagePackValue: Hashable {
    /// Hashes the value so that equal values, as `==` sees them (`.int(5)` and
    /// `.uint(5)`, NaN and NaN), hash alike.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .nil: hasher.combine(0)
        case .bool(let b): hasher.combine(1); hasher.combine(b)
        // .int and .uint of the same number are equal, so they hash alike.
        case .int(let i) where i >= 0: hasher.combine(2); hasher.combine(UInt64(i))
        case .int(let i): hasher.combine(2); hasher.combine(i)
        case .uint(let u): hasher.combine(2); hasher.combine(u)
        case .float(let f): hasher.combine(3); if f.isNaN { hasher.combine(0) } else { hasher.combine(f) }
        case .double(let d): hasher.combine(4); if d.isNaN { hasher.combine(0) } else { hasher.combine(d) }
        case .string(let s): hasher.combine(5); hasher.combine(s)
        case .binary(let b): hasher.combine(6); hasher.combine(b)
        case .array(let a): hasher.combine(7); hasher.combine(a)
        case .map(let m):
            hasher.combine(8); hasher.combine(m.count)
            for pair in m { hasher.combine(pair.key); hasher.combine(pair.value) }
        case .timestamp(let t): hasher.combine(9); hasher.combine(t)
        case .extension(let e): hasher.combine(10); hasher.combine(e)
        }
    }
}

extension MessagePackValue: ExpressibleByNilLiteral {
    /// `nil` is ``nil``.
    public init(nilLiteral: ()) { self = .nil }
}
extension MessagePackValue: ExpressibleByBooleanLiteral {
    /// `true` and `false` are ``bool(_:)``.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
extension MessagePackValue: ExpressibleByIntegerLiteral {
    /// Non-negative literals are `.uint`, negative ones `.int`, as the bytes would say.
    public init(integerLiteral value: Int64) { self = value >= 0 ? .uint(UInt64(value)) : .int(value) }
}
extension MessagePackValue: ExpressibleByFloatLiteral {
    /// A floating-point literal is ``double(_:)``, a float 64.
    public init(floatLiteral value: Double) { self = .double(value) }
}
extension MessagePackValue: ExpressibleByStringLiteral {
    /// A string literal is ``string(_:)``.
    public init(stringLiteral value: String) { self = .string(value) }
}
extension MessagePackValue: ExpressibleByArrayLiteral {
    /// An array literal is ``array(_:)``.
    public init(arrayLiteral elements: MessagePackValue...) { self = .array(elements) }
}
extension MessagePackValue: ExpressibleByDictionaryLiteral {
    /// Pairs keep the order in which they are written.
    public init(dictionaryLiteral elements: (MessagePackValue, MessagePackValue)...) {
        self = .map(elements.map { (key: $0.0, value: $0.1) })
    }
}

extension MessagePackValue {
    /// The value of a string-keyed map entry, or `nil` when this is not a map or has no such key.
    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }

    /// The element at `index` of an array, or `nil` when this is not an array or is too short.
    public subscript(index: Int) -> MessagePackValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}
