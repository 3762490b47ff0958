#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes `Encodable` values as MessagePack, through msgpack-c.
///
/// ```swift
/// struct Order: Codable { var id: Int; var item: String; var placed: Date }
/// let bytes = try MessagePackEncoder().encode(Order(id: 1, item: "tea", placed: .now))
/// let order = try MessagePackDecoder().decode(Order.self, from: bytes)
/// ```
///
/// Integers take the smallest format that holds them, `Float` is a float 32 and
/// `Double` a float 64, so the bytes match what Python's `msgpack` and msgpack-c
/// write for the same value. Dictionary keys are sorted by default, so equal
/// values give identical bytes in every process. The options are read once at
/// the start of each `encode` call; one encoder may be shared between threads.
public final class MessagePackEncoder: Sendable {
    /// How the keys of a struct (a keyed container) are written.
    public enum KeyEncodingStrategy: Sendable, Hashable {
        /// The key's `stringValue` (the default, like JSON).
        case string
        /// The key's `intValue`: compact, as msgpack-c++ and protobuf users know it.
        /// A key with no `intValue` (such as `super`, or an enum case's
        /// associated-value label) is still written as its string.
        case integer
    }

    /// How a struct (a keyed container) is laid out.
    public enum StructEncodingStrategy: Sendable, Hashable {
        /// A map from keys to values (the default).
        case map
        /// An array of the values in the order they are encoded, without keys: the
        /// compact form of msgpack-c++'s `MSGPACK_DEFINE`. An absent optional is
        /// written as nil so that positions stay fixed.
        case array
    }

    /// How a `Date` is written.
    public enum DateEncodingStrategy: Sendable, Hashable {
        /// The timestamp extension, type -1 (the default), to the nanosecond.
        case timestamp
        /// A float 64 of seconds since 1970-01-01.
        case secondsSince1970
        /// A float 64 of milliseconds since 1970-01-01.
        case millisecondsSince1970
    }

    struct Options: Sendable {
        var keyEncodingStrategy: KeyEncodingStrategy = .string
        var structEncodingStrategy: StructEncodingStrategy = .map
        var dateEncodingStrategy: DateEncodingStrategy = .timestamp
        var sortsDictionaryKeys = true
        var userInfo: [CodingUserInfoKey: any Sendable] = [:]
    }

    /// The options, and an encoder kept from the last call with its buffers.
    private let storage = _CoderOptions<_MessagePackEncoder>(Options())

    /// An encoder with the default options: string keys, structs as maps, dates as
    /// timestamps, dictionary keys sorted, no `userInfo`.
    public init() {}

    /// Keys as strings (default) or integers.
    public var keyEncodingStrategy: KeyEncodingStrategy {
        get { storage.read { $0.keyEncodingStrategy } }
        set { storage.change { $0.keyEncodingStrategy = newValue } }
    }

    /// Structs as maps (default) or arrays.
    public var structEncodingStrategy: StructEncodingStrategy {
        get { storage.read { $0.structEncodingStrategy } }
        set { storage.change { $0.structEncodingStrategy = newValue } }
    }

    /// Dates as timestamps (default) or numbers.
    public var dateEncodingStrategy: DateEncodingStrategy {
        get { storage.read { $0.dateEncodingStrategy } }
        set { storage.change { $0.dateEncodingStrategy = newValue } }
    }

    /// Whether dictionary keys are written in sorted order (the default): strings by
    /// their UTF-8 bytes, integers by value. Swift iterates a dictionary in an order
    /// that differs from process to process; sorting makes equal values give equal
    /// bytes. Turn it off to save the sort when the bytes need not be compared.
    public var sortsDictionaryKeys: Bool {
        get { storage.read { $0.sortsDictionaryKeys } }
        set { storage.change { $0.sortsDictionaryKeys = newValue } }
    }

    /// Values for `Encodable` implementations to read from `encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] {
        get { storage.read { $0.userInfo } }
        set { storage.change { $0.userInfo = newValue } }
    }

    /// Encodes a value as MessagePack.
    /// - Parameter value: The value to encode.
    /// - Returns: The MessagePack bytes of exactly one value.
    /// - Throws: `EncodingError.invalidValue` when the value cannot be represented
    ///   (a string over 4 GiB, an integer key missing, a container misused), with the
    ///   coding path of the value.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try withEncoded(value) { [UInt8]($0) }
    }

    /// Encodes a value and hands `body` its bytes, which are valid only during the
    /// call: the caller copies them where it needs them (behind a frame header, say)
    /// without an array in between.
    package func withEncoded<T: Encodable, R>(_ value: T, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let encoder = storage.take()
        let result = try encoder.encodeTopLevel(value) { try body($0.bytes) }
        // Kept with its buffers for the next call, unless they grew large, or
        // something the call handed out still holds it (an `Encoder` or container
        // kept by an `encode(to:)`): the next call, maybe on another thread, must
        // not share it with them. (Moved, not copied: a copy is a retain.)
        var kept = consume encoder
        if isKnownUniquelyReferenced(&kept) && kept.retainedCapacity <= Self.retainedCapacityLimit {
            storage.giveBack(consume kept)
        }
        return result
    }

    /// The most buffer memory an encoder keeps between calls: enough that encoding
    /// value after value of a few MiB reuses warm memory instead of fresh pages.
    static var retainedCapacityLimit: Int { 8 << 20 }
}
