/// queue-bench's small item (57 bytes as MessagePack): where the codec's fixed
/// cost per call shows, since queues mostly carry small items.
public struct Item: Codable, Equatable, Sendable {
    public var id: Int
    public var name: String
    public var score: Double
    public var tags: [String]
    public var ok: Bool

    public init(id: Int, name: String, score: Double, tags: [String], ok: Bool) {
        self.id = id
        self.name = name
        self.score = score
        self.tags = tags
        self.ok = ok
    }

    /// The item every case encodes and decodes (as queue-bench's producers make item 123,456).
    public static func make() -> Item {
        Item(id: 123_456, name: "item-123456", score: 61_728, tags: ["a", "b", "c"], ok: true)
    }
}
