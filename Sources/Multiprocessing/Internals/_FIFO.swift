/// A first-in, first-out list whose front is taken in O(1): a head index into an
/// array, compacted as it drains. A taken element's slot is cleared at once, so
/// its memory (an item's bytes) goes when it is taken, not at the next compaction.
/// (A queue's items waiting for its writer thread; a pool's jobs waiting for a worker.)
struct _FIFO<Element> {
    private var slots: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == slots.count }
    var count: Int { slots.count - head }
    /// The next element, left in place.
    var first: Element? { isEmpty ? nil : slots[head] }

    mutating func append(_ element: Element) {
        slots.append(element)
    }

    /// Puts an element back at the front (a job that must run next).
    mutating func prepend(_ element: Element) {
        if head > 0 {
            head -= 1
            slots[head] = element
        } else {
            slots.insert(element, at: 0)
        }
    }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = slots[head]
        slots[head] = nil
        head += 1
        if head == slots.count {
            slots.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096 && head * 2 >= slots.count {
            slots.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Takes out the first element that matches, wherever it is.
    mutating func remove(where matches: (Element) -> Bool) -> Element? {
        guard let index = slots[head...].firstIndex(where: { $0.map(matches) ?? false }) else { return nil }
        return slots.remove(at: index)
    }
}
