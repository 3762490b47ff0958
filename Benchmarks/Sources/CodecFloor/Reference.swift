import Foundation

/// The value every case encodes and decodes: a mix of the field types a real
/// message holds (scalars, a string, an optional, a nested struct, an array, a
/// small dictionary, a date and some bytes).
public struct Inner: Codable, Equatable, Sendable {
    public var x: Int
    public var y: Double
    public var label: String
}

public struct Reference: Codable, Equatable, Sendable {
    public var id: Int
    public var price: Double
    public var name: String
    public var active: Bool
    public var samples: [Int]  // 16
    public var note: String?
    public var nested: Inner  // 3 fields
    public var counts: [String: Int]  // 4
    public var created: Date
    public var blob: Data  // 64 bytes

    public init(
        id: Int, price: Double, name: String, active: Bool, samples: [Int], note: String?,
        nested: Inner, counts: [String: Int], created: Date, blob: Data
    ) {
        self.id = id
        self.price = price
        self.name = name
        self.active = active
        self.samples = samples
        self.note = note
        self.nested = nested
        self.counts = counts
        self.created = created
        self.blob = blob
    }

    /// The reference value, with `id` varied for the array case.
    public static func make(id: Int = 123_456) -> Reference {
        Reference(
            id: id,
            price: 19.99,
            name: "reference-item",
            active: true,
            samples: [0, 1, 127, 128, 255, 256, 1000, 65535, 65536, -1, -100, 7, 42, 99999, 3, -40000],
            note: "a short note",
            nested: Inner(x: 7, y: 2.5, label: "inner"),
            counts: ["apples": 3, "pears": 12, "plums": 500, "figs": 70000],
            // 2023-11-14T22:13:20.25Z: a fractional second (exact in binary, so JSON's
            // Double and MessagePack's timestamp both round-trip it).
            created: Date(timeIntervalSince1970: 1_700_000_000.25),
            blob: Data((0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        )
    }

    /// A cheap digest of a decoded value, so that decoding cannot be optimized away.
    public var checksum: Int {
        id &+ samples.count &+ name.utf8.count &+ blob.count &+ counts.count &+ nested.x
    }
}
