import MessagePack

/// How `get` takes items: the ring copies one whole item out under the read lock
/// and commits it as taken (see `_Ring.take`); decoding happens after, outside it.
extension Queue {
    /// Takes an item, waiting up to `timeout` for one (nil: as long as it takes).
    /// - Throws: `QueueError` `.empty` when none came in time, `.closed`,
    ///   `.frameTooLong` for an item over `maxFrameLength` (taken and refused,
    ///   unread); the decoder's `DecodingError` (the item is taken all the same: on a
    ///   `JoinableQueue`, mark it done).
    public func get(timeout: Duration? = nil) throws -> Element {
        guard !isClosed else { throw QueueError.closed }
        return try decode(ring.take(until: .after(timeout), limit: maxFrameLength))
    }

    /// The item in a payload taken from the ring.
    func decode(_ payload: consuming _Payload) throws -> Element {
        guard payload.count >= 1 << 16 else { return try decoder.decode(Element.self, from: payload.bytes) }
        // A large Data in the item refers to these bytes instead of copying them.
        let shared = _SharedPayload(payload)
        return try decoder.decode(Element.self, from: shared.payload.bytes, owner: shared)
    }

    /// Takes an item if one is waiting now (Python's `get_nowait`).
    /// - Throws: `QueueError.empty` when the queue is empty.
    public func getNowait() throws -> Element {
        try get(timeout: .zero)
    }
}
