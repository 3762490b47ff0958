#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes `Decodable` values from MessagePack, through msgpack-c.
///
/// ```swift
/// let order = try MessagePackDecoder().decode(Order.self, from: bytes)
/// ```
///
/// Bytes from anywhere are safe to decode: lengths and nesting are checked
/// against ``limits`` before anything is allocated, the decoder never reads past
/// the input, and any failure is a thrown `DecodingError` with the coding path of
/// the value (`items[3].price`) and what was expected and found. An integer that
/// does not fit the field's type is an error, not a truncation; an integer
/// decodes into a `Double` or `Float` field; bytes after the value are an error.
///
/// A struct may be read from a map (keys as strings, or as integers matching the
/// keys' `intValue`) or from an array of its fields in order, whichever the bytes
/// hold, so the encoder's key and struct options need no counterpart here.
public final class MessagePackDecoder: Sendable {
    /// How a `Date` is read.
    public enum DateDecodingStrategy: Sendable, Hashable {
        /// The timestamp extension, type -1, in any of its three sizes (the default).
        case timestamp
        /// A number of seconds since 1970-01-01.
        case secondsSince1970
        /// A number of milliseconds since 1970-01-01.
        case millisecondsSince1970
    }

    struct Options: Sendable {
        var dateDecodingStrategy: DateDecodingStrategy = .timestamp
        var limits = MessagePackLimits()
        var userInfo: [CodingUserInfoKey: any Sendable] = [:]
    }

    /// The options, and a decoder kept from the last call with its msgpack-c zone and
    /// what it learned of the types it met.
    private let storage = _CoderOptions<_MessagePackDecoder>(Options())

    /// A decoder with the default options: dates from timestamps, the default
    /// ``MessagePackLimits``, no `userInfo`.
    public init() {}

    /// Dates from timestamps (default) or numbers.
    public var dateDecodingStrategy: DateDecodingStrategy {
        get { storage.read { $0.dateDecodingStrategy } }
        set { storage.change { $0.dateDecodingStrategy = newValue } }
    }

    /// Bounds on nesting and lengths, checked before anything is allocated.
    public var limits: MessagePackLimits {
        get { storage.read { $0.limits } }
        set { storage.change { $0.limits = newValue } }
    }

    /// Values for `Decodable` implementations to read from `decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] {
        get { storage.read { $0.userInfo } }
        set { storage.change { $0.userInfo = newValue } }
    }

    /// Decodes a value from MessagePack bytes that hold exactly that one value.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - bytes: The MessagePack bytes.
    /// - Throws: `DecodingError`: `.dataCorrupted` for truncated or invalid bytes, a
    ///   limit exceeded, bytes after the value or a number that does not fit;
    ///   `.typeMismatch`, `.keyNotFound` and `.valueNotFound` with the coding path.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a value from MessagePack bytes that hold exactly that one value.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - data: The MessagePack bytes.
    /// - Throws: `DecodingError`, as ``decode(_:from:)-(_,[UInt8])``.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try data.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a value from MessagePack bytes in memory you own; they are not
    /// used after the call returns.
    public func decode<T: Decodable>(_ type: T.Type, from buffer: UnsafeRawBufferPointer) throws -> T {
        try decode(type, from: buffer, owner: nil)
    }

    /// Decodes from bytes that `owner` keeps alive and unchanged for as long as it
    /// lives: a large `Data` in the value then refers to them (and keeps `owner`)
    /// instead of being copied.
    package func decode<T: Decodable>(_ type: T.Type, from buffer: UnsafeRawBufferPointer, owner: AnyObject?) throws -> T {
        let decoder = storage.take()
        let limits = decoder.options.limits
        defer {
            decoder.zone.clear()
            decoder.bytesOwner = nil
            if !decoder.views.isEmpty { decoder.views.removeAll() }
            if !decoder.children.isEmpty { decoder.children.removeAll() }
            storage.giveBack(decoder)
        }
        let root = try decoder.zone.parse(buffer, limits: limits)
        decoder.reset(root: root)
        decoder.bytesOwner = owner
        decoder.bytesOwnerCount = buffer.count
        let value = try decoder.decodeValue(T.self, from: root, path: .root)
        return value
    }
}
