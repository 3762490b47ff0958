#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

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
    /// what it learned of the types it met (one call at a time takes it). One lock
    /// for both: a `decode` takes it twice.
    private struct Shared: ~Copyable {
        var options = Options()
        /// Counts changes of `options`: a spare decoder whose copy is older gets a new one.
        var version = 0
        var spare: _MessagePackDecoder?
    }

    private let storage = Mutex(Shared())

    /// A decoder with the default options: dates from timestamps, the default
    /// ``MessagePackLimits``, no `userInfo`.
    public init() {}

    /// Dates from timestamps (default) or numbers.
    public var dateDecodingStrategy: DateDecodingStrategy {
        get { storage.withLock { $0.options.dateDecodingStrategy } }
        set { storage.withLock { $0.options.dateDecodingStrategy = newValue; $0.version += 1 } }
    }

    /// Bounds on nesting and lengths, checked before anything is allocated.
    public var limits: MessagePackLimits {
        get { storage.withLock { $0.options.limits } }
        set { storage.withLock { $0.options.limits = newValue; $0.version += 1 } }
    }

    /// Values for `Decodable` implementations to read from `decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] {
        get { storage.withLock { $0.options.userInfo } }
        set { storage.withLock { $0.options.userInfo = newValue; $0.version += 1 } }
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
        let (decoder, limits) = storage.withLock { shared in
            let decoder = shared.spare.take() ?? _MessagePackDecoder(options: shared.options)
            if decoder.optionsVersion != shared.version {
                decoder.options = shared.options
                decoder.optionsVersion = shared.version
            }
            return (decoder, decoder.options.limits)
        }
        defer {
            decoder.zone.clear()
            decoder.bytesOwner = nil
            if !decoder.views.isEmpty { decoder.views.removeAll() }
            if !decoder.children.isEmpty { decoder.children.removeAll() }
            storage.withLock { $0.spare = decoder }
        }
        let root = try decoder.zone.parse(buffer, limits: limits)
        decoder.reset(root: root)
        decoder.bytesOwner = owner
        decoder.bytesOwnerCount = buffer.count
        let value = try decoder.decodeValue(T.self, from: root, path: .root)
        return value
    }
}
