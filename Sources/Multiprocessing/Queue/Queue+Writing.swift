import Dispatch
import MessagePack
import Synchronization

/// How `put` reaches the ring, by one route: encode in the caller, take a slot,
/// then put the bytes in the ring at once when nothing of this process waits and
/// the ring has room; otherwise they wait, in order, for this process's writer
/// thread, which waits for room (and streams an item larger than the ring).
extension Queue {
    /// Puts an item, waiting up to `timeout` for a free slot (nil: as long as it takes).
    /// - Throws: `QueueError` `.full` when no slot freed in time, `.closed`; the
    ///   encoder's `EncodingError` (nothing is put then).
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        guard !isClosed else { throw QueueError.closed }
        let deadline = _Deadline.after(timeout)
        try encoder.withEncoded(item) { bytes in
            let entry = try writerEntry()
            guard try ring.reserve(for: entry, until: deadline) else { throw QueueError.full }
            enqueue(bytes, for: entry)
        }
    }

    /// Puts an item if a slot is free now (Python's `put_nowait`).
    /// - Throws: `QueueError.full` when the queue is full.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: .zero)
    }

    /// This process's entry in the ring's table of putting processes, claimed once.
    func writerEntry() throws(QueueError) -> Int32? {
        try local.withLock { (state) throws(QueueError) -> Int32? in
            if !state.entryClaimed {
                state.entry = try ring.claimEntry()
                state.entryClaimed = true
            }
            return state.entry
        }
    }

    /// The item's bytes, with its slot taken: into the ring now if this process has
    /// nothing waiting and the ring has room; else behind the others, for the writer thread.
    func enqueue(_ bytes: UnsafeRawBufferPointer, for entry: Int32?) {
        drained.enter()
        let written = local.withLock { state -> Bool in
            if state.isIdle, (try? ring.publish(bytes, for: entry, waiting: false)) == true { return true }
            state.pending.append([UInt8](bytes))
            if !state.writing {
                state.writing = true
                writerQueue.async { self.drain() }  // holds the queue until its items are written
            }
            return false
        }
        if written { drained.leave() }
    }

    /// The writer thread: puts this process's waiting items in the ring, in order.
    func drain() {
        while true {
            let next = local.withLock { state -> (bytes: [UInt8], entry: Int32?)? in
                guard let first = state.pending.first else {
                    state.writing = false
                    return nil
                }
                return (first, state.entry)
            }
            guard let next else { return }
            do {
                _ = try next.bytes.withUnsafeBytes { bytes throws(QueueError) in
                    try ring.publish(bytes, for: next.entry, waiting: true)
                }
            } catch {
                // Only a lock or a wait that failed in the system: the item never
                // entered the ring. Said, and its slot given back.
                _writeStandardError("swift-multiprocessing: a queue item could not be written (\(error)); it is dropped.")
                try? ring.forget(for: next.entry)
            }
            local.withLock { _ = $0.pending.popFirst() }  // written: its bytes go now
            drained.leave()
        }
    }
}
