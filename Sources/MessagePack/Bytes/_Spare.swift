import Synchronization

/// One object kept from the last call for the next (a coder, a msgpack-c zone, a
/// packer's buffer), taken and given back with one atomic exchange each: calls in
/// a row reuse its memory, and calls at once each have their own (one that finds
/// the slot empty makes another, and only one is kept).
///
/// @unchecked Sendable: the slot holds a retained reference, handed from one call
/// to the next only through the atomic exchange (one user at a time).
final class _Spare<Object: AnyObject>: @unchecked Sendable {
    private let slot = Atomic<UnsafeMutableRawPointer?>(nil)

    init() {}

    deinit {
        if let kept = slot.load(ordering: .acquiring) { Unmanaged<Object>.fromOpaque(kept).release() }
    }

    /// The kept object, if there is one; the slot is then empty.
    func take() -> Object? {
        slot.exchange(nil, ordering: .acquiring).map { Unmanaged<Object>.fromOpaque($0).takeRetainedValue() }
    }

    /// Keeps `object` for the next call, unless another is kept already.
    func giveBack(_ object: consuming Object) {
        let retained = Unmanaged.passRetained(consume object).toOpaque()
        if !slot.compareExchange(expected: nil, desired: retained, ordering: .releasing).exchanged {
            Unmanaged<Object>.fromOpaque(retained).release()
        }
    }
}
