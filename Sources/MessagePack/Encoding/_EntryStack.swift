/// A stack in memory it manages itself: the encoder's entries, and the keyed
/// container boxes it keeps (whose reference counts are read in place).
///
/// Every field a container writes bumps its entry's count. In a Swift array that
/// is a uniqueness check and a possible copy on every field; here it is a store.
/// Containers hold an index, never an address, so growing (which moves the
/// entries) is safe.
struct _EntryStack<Element> {
    private var base: UnsafeMutablePointer<Element>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    /// Frees the memory; the owner calls it once, from its `deinit`.
    mutating func destroy() {
        base.deinitialize(count: count)
        base.deallocate()
        count = 0
    }

    subscript(index: Int) -> Element {
        unsafeAddress {
            precondition(index >= 0 && index < count, "entry index out of range")
            return UnsafePointer(base + index)
        }
        nonmutating unsafeMutableAddress {
            precondition(index >= 0 && index < count, "entry index out of range")
            return base + index
        }
    }

    /// Whether the element at `index`, a class reference, has no other holder.
    func isUnique(_ index: Int) -> Bool where Element: AnyObject {
        precondition(index >= 0 && index < count, "entry index out of range")
        return isKnownUniquelyReferenced(&(base + index).pointee)
    }

    mutating func append(_ element: Element) {
        if count == capacity {
            let grown = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: base, count: count)
            base.deallocate()
            base = grown
            capacity *= 2
        }
        (base + count).initialize(to: element)
        count += 1
    }

    mutating func removeLast() -> Element {
        precondition(count > 0)
        count -= 1
        return (base + count).move()
    }

    /// Empties the stack, keeping its memory.
    mutating func removeAll() {
        base.deinitialize(count: count)
        count = 0
    }
}
