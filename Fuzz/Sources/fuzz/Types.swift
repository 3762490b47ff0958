import Foundation
import MessagePack

// The types hostile bytes are decoded into: between them, every Codable feature
// (keyed, unkeyed and single-value containers, nested containers, super
// decoders, integer keys, optionals, enums with associated values, class
// inheritance) and every type the coder maps specially.

struct Scalars: Codable, Equatable {
    var i: Int; var i8: Int8; var i16: Int16; var i32: Int32; var i64: Int64
    var u: UInt; var u8: UInt8; var u16: UInt16; var u32: UInt32; var u64: UInt64
    var f: Float; var d: Double; var s: String; var b: Bool
}

struct FoundationTypes: Codable, Equatable {
    var date: Date
    var decimal: Decimal
    var uuid: UUID
    var url: URL
    var data: Data
    var bytes: [UInt8]
    var stamp: MessagePackTimestamp
    var ext: MessagePackExtension
    var any: MessagePackValue
}

struct Dates: Codable, Equatable {
    var dates: [Date]
    var maybe: Date?
}

struct Collections: Codable, Equatable {
    var ints: [Int]
    var strings: [String]
    var doubles: [Double]
    var byInt: [Int: String]
    var byString: [String: Int]
    var stringMap: [String: String]
    var flags: [String: Bool]
    var nested: [[Int8]]
    var optionals: [Int?]
    var set: Set<String>
    var intSet: Set<Int>
    var decimals: [String: Decimal]
}

enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Float, Float)
    case empty
    case labeled(String, at: Collections?)
    case when(Date, Decimal)
}

struct IntKeyed: Codable, Equatable {
    enum CodingKeys: Int, CodingKey { case id = 1, name = 2, score = 3, shapes = 4 }
    var id: UInt16; var name: String?; var score: Double; var shapes: [Shape]
}

/// Hand-written containers: nested keyed and unkeyed containers, decodeNil,
/// decodeIfPresent, allKeys and contains, and a single-value container.
struct Manual: Codable, Equatable {
    var values: [Int32]
    var named: [String: UInt8]
    var present: Bool
    var raw: Int16

    enum CodingKeys: String, CodingKey { case list, inner, present, raw }
    enum InnerKeys: String, CodingKey { case a, b, c }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .list)
        var values: [Int32] = []
        while !list.isAtEnd {
            if try list.decodeNil() { continue }
            values.append(try list.decode(Int32.self))
        }
        self.values = values
        // A container from a super decoder that is dropped at once: it must stay valid.
        let viaSuper = try container.superDecoder(forKey: .inner).container(keyedBy: InnerKeys.self)
        let inner = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        var named: [String: UInt8] = [:]
        for key in inner.allKeys {
            named[key.stringValue] = try inner.decodeIfPresent(UInt8.self, forKey: key)
        }
        self.named = named
        for key in inner.allKeys where try viaSuper.decodeIfPresent(UInt8.self, forKey: key) != named[key.stringValue] {
            finding("a super decoder's container reads \(key.stringValue) differently")
        }
        present = container.contains(.present) ? try container.decode(Bool.self, forKey: .present) : false
        raw = try container.decode(Single.self, forKey: .raw).value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var list = container.nestedUnkeyedContainer(forKey: .list)
        for value in values { try list.encode(value) }
        var inner = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
        for (key, value) in named.sorted(by: { $0.key < $1.key }) {
            if let key = InnerKeys(stringValue: key) { try inner.encode(value, forKey: key) }
        }
        try container.encode(present, forKey: .present)
        try container.encode(Single(value: raw), forKey: .raw)
    }

    struct Single: Codable, Equatable {
        var value: Int16
        init(value: Int16) { self.value = value }
        init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int16.self) }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(value)
        }
    }
}

class Animal: Codable {
    var name: String
    var legs: Int?
    init(name: String, legs: Int?) { self.name = name; self.legs = legs }
}

/// Class inheritance: the superclass's fields come through `superDecoder()`.
final class Dog: Animal, Equatable {
    var breed: String
    var friends: [Dog]
    enum CodingKeys: String, CodingKey { case breed, friends }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        friends = try container.decodeIfPresent([Dog].self, forKey: .friends) ?? []
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(breed, forKey: .breed)
        try container.encode(friends, forKey: .friends)
        try super.encode(to: container.superEncoder())
    }

    static func == (lhs: Dog, rhs: Dog) -> Bool {
        lhs.name == rhs.name && lhs.legs == rhs.legs && lhs.breed == rhs.breed && lhs.friends == rhs.friends
    }
}

/// A recursive type, so nesting reaches the depth limit.
indirect enum Tree: Codable, Equatable {
    case leaf(Int)
    case node([Tree])
}

/// The queue benchmark's small item.
struct Item: Codable, Equatable {
    var id: Int
    var name: String
    var score: Double
    var tags: [String]
    var ok: Bool
}

extension Collections {
    /// Sets written sorted: a set's order is not its value, and the round trip compares bytes.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ints, forKey: .ints)
        try container.encode(strings, forKey: .strings)
        try container.encode(doubles, forKey: .doubles)
        try container.encode(byInt, forKey: .byInt)
        try container.encode(byString, forKey: .byString)
        try container.encode(stringMap, forKey: .stringMap)
        try container.encode(flags, forKey: .flags)
        try container.encode(nested, forKey: .nested)
        try container.encode(optionals, forKey: .optionals)
        try container.encode(set.sorted(), forKey: .set)
        try container.encode(intSet.sorted(), forKey: .intSet)
        try container.encode(decimals, forKey: .decimals)
    }
}
