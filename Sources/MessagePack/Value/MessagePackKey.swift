/// A coding key the coders make themselves: an array index, a map key of any
/// type, or `super`.
struct _MessagePackKey: CodingKey, Sendable {
    private enum Storage: Sendable {
        case string(String)
        case int(Int)
        case index(Int)
    }

    private let storage: Storage

    /// Made when asked for: an array element's key is built for every element, its
    /// text only when an error shows it.
    var stringValue: String {
        switch storage {
        case .string(let string): string
        case .int(let int): String(int)
        case .index(let index): "Index \(index)"
        }
    }

    var intValue: Int? {
        switch storage {
        case .string: nil
        case .int(let int), .index(let int): int
        }
    }

    init(stringValue: String) {
        storage = .string(stringValue)
    }

    init(intValue: Int) {
        storage = .int(intValue)
    }

    /// The key of an array element (shown as `[3]` in a path).
    init(index: Int) {
        storage = .index(index)
    }

    /// A map key as it reads in a coding path.
    init(describing key: MessagePackValue) {
        switch key {
        case .string(let string): self.init(stringValue: string)
        case .int(let value) where Int(exactly: value) != nil: self.init(intValue: Int(value))
        case .uint(let value) where Int(exactly: value) != nil: self.init(intValue: Int(value))
        default: self.init(stringValue: "\(key)")
        }
    }

    static let `super` = _MessagePackKey(stringValue: "super")
}

/// A coding path as a linked list, so descending costs one small allocation and
/// the `[CodingKey]` array is only built when an error needs it.
/// (The shape swift-foundation's JSON coders use.)
indirect enum _CodingPathNode: Sendable {
    case root
    case node(any CodingKey, _CodingPathNode)

    var path: [any CodingKey] {
        switch self {
        case .root: return []
        case .node(let key, let parent): return parent.path + [key]
        }
    }

    func appending(_ key: any CodingKey) -> _CodingPathNode { .node(key, self) }
}

/// Renders a coding path as a reader writes it: `items[3].price`.
func _render(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue, key.stringValue == "Index \(index)" {
            text += "[\(index)]"
        } else {
            text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return text.isEmpty ? "the top level" : text
}
