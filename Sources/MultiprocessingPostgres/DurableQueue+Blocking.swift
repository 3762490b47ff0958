import Multiprocessing

/// The blocking forms, for code that is not async: each runs its async form and blocks the
/// calling thread until it ends. In an async function Swift picks the async forms, which
/// hold no thread. `count` has only its async form.
extension DurableQueue {
    /// Blocking `put(_:timeout:)`.
    public func put(_ value: Element, timeout: Duration? = nil) throws {
        try _waitBlocking { try await self.put(value, timeout: timeout) }
    }

    /// Blocking `put(contentsOf:timeout:)`.
    public func put(contentsOf values: some Sequence<Element>, timeout: Duration? = nil) throws {
        let values = Array(values)
        try _waitBlocking { try await self.put(contentsOf: values, timeout: timeout) }
    }

    /// Blocking `putNowait(_:)`.
    public func putNowait(_ value: Element) throws {
        try _waitBlocking { try await self.putNowait(value) }
    }

    /// Blocking `get(timeout:)`.
    public func get(timeout: Duration? = nil) throws -> Delivery {
        try _waitBlocking { try await self.get(timeout: timeout) }
    }

    /// Blocking `get(upTo:timeout:)`.
    public func get(upTo maxCount: Int, timeout: Duration? = nil) throws -> [Delivery] {
        try _waitBlocking { try await self.get(upTo: maxCount, timeout: timeout) }
    }

    /// Blocking `getNowait()`.
    public func getNowait() throws -> Delivery {
        try _waitBlocking { try await self.getNowait() }
    }

    /// Blocking `taskDone(_:)`.
    public func taskDone(_ delivery: Delivery) throws {
        try _waitBlocking { try await self.taskDone(delivery) }
    }

    /// Blocking `taskDone(_:)` of several deliveries.
    public func taskDone(_ deliveries: some Sequence<Delivery>) throws {
        let deliveries = Array(deliveries)
        try _waitBlocking { try await self.taskDone(deliveries) }
    }

    /// Blocking `join(timeout:)`.
    public func join(timeout: Duration? = nil) throws {
        try _waitBlocking { try await self.join(timeout: timeout) }
    }

    /// Blocking `close()`.
    public func close() {
        try? _waitBlocking { await self.close() }
    }
}
