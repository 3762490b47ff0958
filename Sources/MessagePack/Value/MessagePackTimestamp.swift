/// The MessagePack timestamp extension (type -1): seconds since 1970 and nanoseconds.
///
/// Encoded with the smallest of the three timestamp formats that holds it (4, 8 or
/// 12 bytes of data), as the MessagePack specification and msgpack-c choose.
/// As a field of a `Codable` type it round-trips as the extension itself; other
/// coders (JSON) see `{"seconds": …, "nanoseconds": …}`.
public struct MessagePackTimestamp: Hashable, Sendable, Codable {
    /// Whole seconds since 1970-01-01 00:00:00 UTC; negative before it.
    public var seconds: Int64
    /// 0 ..< 1_000_000_000.
    public var nanoseconds: UInt32

    /// A timestamp `seconds` and `nanoseconds` after 1970-01-01 00:00:00 UTC.
    public init(seconds: Int64, nanoseconds: UInt32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}

/// A MessagePack extension value: an application-defined type code and its bytes.
///
/// Type -1 is the timestamp, decoded as ``MessagePackValue/timestamp(_:)`` instead.
/// As a field of a `Codable` type it round-trips as the extension itself; other
/// coders (JSON) see `{"type": …, "data": …}`.
public struct MessagePackExtension: Hashable, Sendable, Codable {
    /// The type code: 0 through 127 are the application's; MessagePack reserves the
    /// negative ones (-1 is the timestamp).
    public var type: Int8
    /// The value's bytes, in whatever layout the type code stands for.
    public var data: [UInt8]

    /// An extension value of type code `type` holding `data`.
    public init(type: Int8, data: [UInt8]) {
        self.type = type
        self.data = data
    }
}
