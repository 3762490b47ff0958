import CSystemShims

/// A value in memory shared with other processes, changed only with atomic
/// instructions (as swift-atomics' `UnsafeAtomic(at:)`, for memory this process
/// does not own: a queue's memfd segment). Sequentially consistent throughout:
/// the queue's wake-ups pair a store on one side with a load on the other.
struct _SharedAtomic<Value: _SharedAtomicValue> {
    let address: UnsafeMutablePointer<Value>

    init(at address: UnsafeMutablePointer<Value>) { self.address = address }

    @inline(__always) func load() -> Value { Value.atomicLoad(address) }
    @inline(__always) func store(_ value: Value) { Value.atomicStore(address, value) }
}

extension _SharedAtomic where Value == Int64 {
    /// Adds `delta`; returns the new value.
    @inline(__always) @discardableResult
    func add(_ delta: Int64) -> Int64 { swiftmp_add64(address, delta) }

    /// Replaces `expected` with `desired`; false (nothing changed) if the value was not `expected`.
    @inline(__always)
    func compareExchange(expected: Int64, desired: Int64) -> Bool { swiftmp_cas64(address, expected, desired) }
}

extension _SharedAtomic where Value == UInt32 {
    @inline(__always) @discardableResult
    func add(_ delta: UInt32) -> UInt32 { swiftmp_add32(address, delta) }
}

extension _SharedAtomic where Value == UInt64 {
    /// A load that orders later reads after it (for the other side's index).
    @inline(__always) func loadAcquiring() -> UInt64 { swiftmp_load_u64_acquire(address) }

    /// The low 32 bits of the value, as a futex word (little-endian: its first four bytes).
    var lowWord: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(address).assumingMemoryBound(to: UInt32.self)
    }
}

/// The integer types `_SharedAtomic` holds.
protocol _SharedAtomicValue {
    static func atomicLoad(_ address: UnsafeMutablePointer<Self>) -> Self
    static func atomicStore(_ address: UnsafeMutablePointer<Self>, _ value: Self)
}

extension Int64: _SharedAtomicValue {
    @inline(__always) static func atomicLoad(_ address: UnsafeMutablePointer<Int64>) -> Int64 { swiftmp_load64(address) }
    @inline(__always) static func atomicStore(_ address: UnsafeMutablePointer<Int64>, _ value: Int64) { swiftmp_store64(address, value) }
}

extension UInt64: _SharedAtomicValue {
    @inline(__always) static func atomicLoad(_ address: UnsafeMutablePointer<UInt64>) -> UInt64 { swiftmp_load_u64(address) }
    @inline(__always) static func atomicStore(_ address: UnsafeMutablePointer<UInt64>, _ value: UInt64) { swiftmp_store_u64(address, value) }
}

extension UInt32: _SharedAtomicValue {
    @inline(__always) static func atomicLoad(_ address: UnsafeMutablePointer<UInt32>) -> UInt32 { swiftmp_load32(address) }
    @inline(__always) static func atomicStore(_ address: UnsafeMutablePointer<UInt32>, _ value: UInt32) { swiftmp_store32(address, value) }
}

extension Int32: _SharedAtomicValue {
    @inline(__always) static func atomicLoad(_ address: UnsafeMutablePointer<Int32>) -> Int32 { swiftmp_load32s(address) }
    @inline(__always) static func atomicStore(_ address: UnsafeMutablePointer<Int32>, _ value: Int32) { swiftmp_store32s(address, value) }
}
