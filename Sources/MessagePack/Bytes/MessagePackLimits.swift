/// Bounds a ``MessagePackDecoder`` enforces before any value is built.
///
/// Every length in MessagePack bytes is checked against these and against the
/// bytes that remain, so hostile input cannot make the decoder allocate more
/// than a small multiple of its own size, recurse without bound, or read past
/// its end.
public struct MessagePackLimits: Sendable, Hashable {
    /// The most containers (arrays and maps) open at once. msgpack-c's unpacker
    /// holds at most 32, so larger values act as 32.
    public var maxDepth: Int = 32
    /// The most elements in one array, or pairs in one map.
    public var maxContainerLength: Int = 1 << 24
    /// The most bytes in one string.
    public var maxStringLength: Int = 1 << 28
    /// The most bytes in one binary or extension value.
    public var maxBinaryLength: Int = 1 << 30
    /// The most bytes of input to one `decode` call (or one value of a stream).
    public var maxInputLength: Int = 1 << 31

    /// The default limits: 32 levels, 2^24 elements or pairs a container, 2^28 bytes a
    /// string, 2^30 bytes a binary or extension value, 2^31 bytes of input.
    public init() {}

    /// The depth msgpack-c's unpacker can hold (`MSGPACK_EMBED_STACK_SIZE`).
    static let unpackerStackSize = 32
}
