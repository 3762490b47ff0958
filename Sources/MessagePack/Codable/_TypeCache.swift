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

    /// What `type` needs: remembered, or found by `special` (the dynamic cast) and then remembered.
    @inline(__always)
    mutating func kind(of type: Any.Type, finding special: () -> Special?) -> Kind {
        let id = ObjectIdentifier(type)
        for index in types.indices where types[index] == id { return kinds[index] }
        let kind: Kind = special().map { .special($0) } ?? .plain
        if types.count < capacity {
            types.append(id)
            kinds.append(kind)
        }
        return kind
    }
}
