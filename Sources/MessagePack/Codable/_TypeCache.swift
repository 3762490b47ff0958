/// What the encoder or decoder learned about a type: whether it has a special form
/// (and its metatype, to call it without a dynamic cast), or encodes itself.
///
/// A handful of types recur in one program's messages, so the cache is a short
/// list searched by identity: cheaper than hashing, and far cheaper than the
/// dynamic cast it saves. Past `capacity` types it stops learning (the answer
/// is then found by the cast each time, as without a cache).
struct _TypeCache<Special> {
    enum Kind {
        case plain
        case special(Special)
    }

    private var types: [ObjectIdentifier] = []
    private var kinds: [Kind] = []
    private let capacity = 32

    init() {
        types.reserveCapacity(capacity)
        kinds.reserveCapacity(capacity)
    }

    func kind(of type: ObjectIdentifier) -> Kind? {
        for index in types.indices where types[index] == type { return kinds[index] }
        return nil
    }

    mutating func learn(_ type: ObjectIdentifier, _ kind: Kind) {
        guard types.count < capacity else { return }
        types.append(type)
        kinds.append(kind)
    }
}
