import CSystemShims
import Dispatch
import MessagePack
import SystemPackage

/// The async forms: the same operations, suspending instead of blocking a thread.
///
/// Each tries its operation at once; only when that would wait does it raise the
/// ring's count of pollers (so that the other side signals the queue's readiness
/// eventfd) and suspend, in `_Reactor`, until that eventfd has an event, then try
/// again. A try never waits for an item to begin or for a slot: it takes the read
/// lock only if it is free, and the slots lock (held by others for a few stores)
/// as the blocking forms do. Cancellation is seen between tries, so a cancelled
/// `get` has taken nothing and a cancelled `put` has put nothing.
extension Queue {
    /// Puts an item, suspending while the queue is full, up to `timeout` (nil: as
    /// long as it takes).
    /// - Throws: `QueueError` `.full` when no slot freed in time, `.closed`
    ///   (also when this process closes the queue meanwhile); the encoder's
    ///   `EncodingError`; `CancellationError` when the task is cancelled first. In
    ///   every case nothing was put.
    public func put(_ item: Element, timeout: Duration? = nil) async throws {
        guard !isClosed else { throw QueueError.closed }
        let deadline = _Deadline.after(timeout)
        // At once if a slot is free (always, with no maxsize): no copy of the bytes.
        let waiting = try encoder.withEncoded(item) { bytes -> (bytes: [UInt8], entry: Int32?)? in
            let entry = try writerEntry()
            guard try ring.reserve(for: entry, until: .now) else { return ([UInt8](bytes), entry) }
            enqueue(bytes, for: entry)
            return nil
        }
        guard let waiting else { return }
        ring.beginPolling(forSlots: true)
        defer { ring.endPolling(forSlots: true) }
        let reserved = try await reactor().retry(
            ring.readiness, events: SWIFTMP_EPOLLIN, until: deadline, onStall: ring.repairAfterDeadHolders
        ) { () throws -> Bool? in
            guard !isClosed else { throw QueueError.closed }
            return try ring.reserve(for: waiting.entry, until: .now) ? true : nil
        }
        guard reserved != nil else { throw QueueError.full }
        // No suspension between taking the slot and filling it.
        waiting.bytes.withUnsafeBytes { enqueue($0, for: waiting.entry) }
    }

    /// Takes an item, suspending until one comes, up to `timeout` (nil: as long as
    /// it takes).
    /// - Throws: `QueueError` `.empty` when none came in time, `.closed` (also when
    ///   this process closes the queue meanwhile), `.frameTooLong`; the decoder's
    ///   `DecodingError` (the item is taken); `CancellationError` when the task is
    ///   cancelled first: then no item was taken, and the next `get`, here or in
    ///   another process, gets it.
    ///
    /// An item larger than the queue's buffer streams through it in pieces: once its
    /// first piece is taken, the rest is read in this call as its writer writes it
    /// (as the blocking `get` does), so that no other reader can see half an item.
    /// That wait holds the calling thread and does not end on cancellation; it ends
    /// with the item, or within 100 ms of its writer's death. Size the queue's
    /// `bufferSize` above the largest item to keep every wait off the thread.
    public func get(timeout: Duration? = nil) async throws -> Element {
        if let item = try tryGet() { return item }
        // Spinning first, for as long as the blocking get does (2,000 pauses: about
        // 60 µs here): a reply is often that close, and a wake-up through the reactor
        // costs two thread switches, which made a round trip 10x slower. A longer
        // wait holds no thread.
        for _ in 0..<Self.spinsBeforeSuspending {
            swiftmp_cpu_relax()
            if ring.hasData, let item = try tryGet() { return item }
        }
        ring.beginPolling(forSlots: false)
        defer { ring.endPolling(forSlots: false) }
        let item = try await reactor().retry(
            ring.readiness, events: SWIFTMP_EPOLLIN, until: .after(timeout), onStall: ring.reclaimDeadWriters
        ) { try tryGet() }
        guard let item else { throw QueueError.empty }
        return item
    }

    private static var spinsBeforeSuspending: Int { 2000 }

    /// An item if one is there and no other reader of this queue holds it now.
    private func tryGet() throws -> Element? {
        guard !isClosed else { throw QueueError.closed }
        do {
            return try decode(ring.take(until: .now, limit: maxFrameLength))
        } catch QueueError.empty {
            return nil
        }
    }

    /// Waits until this process's put items are all in the ring, without a thread
    /// (Dispatch calls back when the writer thread is done). Cancellation ends the
    /// wait; the items are still written.
    func flushed() async {
        let waiter = _ResumeOnce()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiter.set(continuation)
                drained.notify(queue: .global()) { waiter.resume() }
            }
        } onCancel: {
            waiter.resume()
        }
    }

    func reactor() throws(QueueError) -> _Reactor {
        do throws(Errno) { return try _Reactor.shared() } catch { throw .system(error, "starting the async waiting thread") }
    }
}

extension JoinableQueue {
    /// Suspends until every item put has been marked done, up to `timeout` (nil:
    /// as long as it takes).
    /// - Returns: Whether all were done in time.
    /// - Throws: `CancellationError` when the task is cancelled first.
    @discardableResult
    public func join(timeout: Duration? = nil) async throws -> Bool {
        if ring.unfinished == 0 { return true }
        ring.beginPolling(forSlots: true)
        defer { ring.endPolling(forSlots: true) }
        let done = try await reactor().retry(
            ring.readiness, events: SWIFTMP_EPOLLIN, until: .after(timeout), onStall: ring.repairAfterDeadHolders
        ) { ring.unfinished == 0 ? true : nil }
        return done ?? false
    }
}

/// `for try await item in queue` takes items as they come, suspending between
/// them. Iteration ends when this process closes the queue (`close()`, from any
/// task or thread): items put before are still taken by `get` elsewhere, not by
/// this loop. Other processes are not told: to end consumers everywhere, put an
/// end marker, one per consumer, as with Python's `None` (an `enum` element
/// with a `.done` case, or an optional `Element`). Cancelling the task ends the
/// loop with `CancellationError`, having taken nothing.
extension Queue: AsyncSequence {
    /// Takes the queue's items one at a time, with the async `get`.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: Queue<Element>

        /// The next item, suspending until one comes; nil once this process closed the queue.
        public mutating func next() async throws -> Element? {
            do {
                return try await queue.get()
            } catch QueueError.closed {
                return nil
            }
        }
    }

    /// An iterator that takes the queue's items as they come.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: self)
    }
}
