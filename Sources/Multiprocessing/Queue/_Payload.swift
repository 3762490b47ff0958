import Glibc

/// The payload of one frame a reader took: bytes it owns, decoded in place and
/// freed after. It grows only as bytes arrive, so a frame whose header lies about
/// its length costs no more memory than the bytes really sent.
struct _Payload: ~Copyable {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var count = 0
    private var capacity = 0

    init() {}

    deinit { free(base) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if count + bytes.count > capacity {
            let wanted = max(count + bytes.count, min(capacity * 2, count + bytes.count + (1 << 24)), 64)
            guard let grown = realloc(base, wanted) else { fatalErrorOutOfMemory() }
            base = grown
            capacity = wanted
        }
        (base! + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }
}

/// A large payload, shared by the values decoded from it: a large `Data` in the
/// item refers to these bytes instead of copying them, and keeps them alive.
final class _SharedPayload: @unchecked Sendable {
    // @unchecked: the bytes are never changed after the decoder has seen them.
    let payload: _Payload

    init(_ payload: consuming _Payload) {
        self.payload = payload
    }
}

/// Out of memory for bytes that did arrive: as Swift's own allocations do, stop.
private func fatalErrorOutOfMemory() -> Never {
    _writeStandardError("swift-multiprocessing: out of memory for a queue item")
    abort()
}
