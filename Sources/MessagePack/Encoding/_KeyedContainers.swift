/// Which entry a keyed container writes, and whether the call that handed it out
/// is still running. One object per container box, pointed at a new entry each
/// time `_KeyedContainers` hands the box out again.
final class _KeyedContainerState {
    /// Not counted: the encoder keeps the boxes that keep these states, and a
    /// counted reference back would keep the encoder for ever. A container that
    /// outlives its call reads `isLive` (false) and never the encoder.
    let encoder: Unmanaged<_MessagePackEncoder>
    /// Counted, for a state the encoder does not keep (its slots are full): such a
    /// state stays live, and its container, if kept, is stopped by its serial. An
    /// encoder so held is not reused by another call (`MessagePackEncoder.withEncoded`).
    private let keepsEncoder: _MessagePackEncoder?
    @exclusivity(unchecked) var index: Int
    @exclusivity(unchecked) var serial: Int
    /// The buffer the entry writes in (fixed for its life), held to spare a lookup per field.
    @exclusivity(unchecked) var out: _Packer
    /// Whether structs are arrays in that call (read on every field).
    @exclusivity(unchecked) var asArray: Bool
    /// True from when the container is handed out until its `encode` call returns.
    @exclusivity(unchecked) var isLive: Bool

    init(encoder: _MessagePackEncoder, index: Int, serial: Int, out: _Packer, isLive: Bool, keepsEncoder: Bool = false) {
        self.encoder = Unmanaged.passUnretained(encoder)
        self.keepsEncoder = keepsEncoder ? encoder : nil
        (self.index, self.serial, self.out, self.isLive) = (index, serial, out, isLive)
        asArray = encoder.structsAsArrays
    }
}

/// The keyed containers an encoder handed out, kept to be handed out again.
///
/// `KeyedEncodingContainer.init` puts its container in a new box (a class
/// instance), and finds the box's and the container's generic metadata in the
/// runtime's hash tables: about 1,000 instructions, a fifth of a small struct's
/// whole encoding. A struct's `encode(to:)` drops its container when it returns,
/// so the box is usually free again for the next value of that type. A box is
/// reused only when nothing else holds it (`isKnownUniquelyReferenced`), so a
/// container kept past its value keeps its own state and still throws on use.
/// Measured with callgrind on a 5-field struct: 5,567 instructions an encode
/// without this cache, 5,029 with it (the container's own metadata is still
/// looked up once per struct).
///
/// The box is kept as the one reference a `KeyedEncodingContainer` is made of
/// (its `_box`); `layoutIsOneReference` checks that before anything is kept.
struct _KeyedContainers {
    private struct Slot {
        let key: ObjectIdentifier
        let state: _KeyedContainerState
    }

    private var slots = _EntryStack<Slot>(capacity: 4)
    /// Each slot's box, in memory addressed directly: its reference count must be
    /// read in place (through an Array's accessors the check saw a copy, never unique).
    private var boxes = _EntryStack<AnyObject>(capacity: 4)
    /// Boxes kept at most: as many as a program's nested struct types, with room for recursion.
    private static var capacity: Int { 64 }

    /// A container for entry `index`: a kept box that nothing else holds, or a new
    /// one. `isLive` is false outside a call (an `Encoder` kept by an `encode(to:)`
    /// and used after it): that container throws on every use.
    mutating func container<Key: CodingKey>(
        keyedBy _: Key.Type, encoder: _MessagePackEncoder, index: Int, serial: Int, out: _Packer, isLive: Bool
    ) -> KeyedEncodingContainer<Key> {
        let key = ObjectIdentifier(Key.self)
        for slot in 0..<slots.count where slots[slot].key == key && boxes.isUnique(slot) {
            let state = slots[slot].state
            (state.index, state.serial, state.out, state.isLive) = (index, serial, out, isLive)
            state.asArray = encoder.structsAsArrays
            return unsafeBitCast(boxes[slot], to: KeyedEncodingContainer<Key>.self)
        }
        let kept = slots.count < Self.capacity && Self.layoutIsOneReference(Key.self)
        let state = _KeyedContainerState(
            encoder: encoder, index: index, serial: serial, out: out, isLive: isLive, keepsEncoder: !kept)
        let container = KeyedEncodingContainer(_KeyedContainer<Key>(state: state))
        if kept {
            slots.append(Slot(key: key, state: state))
            boxes.append(unsafeBitCast(container, to: AnyObject.self))
        }
        return container
    }

    /// The call is over: no container it handed out from a slot may reach the
    /// encoder any more.
    mutating func endCall() {
        // Written only where it changes: a kept box's state may be read by its holder.
        for slot in 0..<slots.count where slots[slot].state.isLive { slots[slot].state.isLive = false }
    }

    /// Frees the kept boxes; the owner calls it once, from its `deinit`.
    mutating func destroy() {
        slots.destroy()
        boxes.destroy()
    }

    /// Whether a `KeyedEncodingContainer` is one class reference, as the standard
    /// library declares it; if a future one is not, nothing is kept.
    private static func layoutIsOneReference<Key: CodingKey>(_: Key.Type) -> Bool {
        MemoryLayout<KeyedEncodingContainer<Key>>.size == MemoryLayout<AnyObject>.size
            && MemoryLayout<KeyedEncodingContainer<Key>>.alignment == MemoryLayout<AnyObject>.alignment
    }
}
