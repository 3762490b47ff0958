import Foundation
import MessagePack

// The Swift types the vectors in Fixtures/messagepack name in their "type" field.
// Their layouts are what the generator (Scripts/generate-messagepack-fixtures.py)
// writes with Python's msgpack for the same values.

struct Inner: Codable, Equatable { var a: Int; var b: String; var c: Bool }

struct Primitives: Codable, Equatable {
    var i8: Int8; var i16: Int16; var i32: Int32; var i64: Int64
    var u8: UInt8; var u16: UInt16; var u32: UInt32; var u64: UInt64
    var f: Float; var d: Double; var s: String; var b: Bool
}

struct Order: Codable, Equatable {
    var id: Int; var item: String; var price: Double; var placed: Date; var note: String?
    var tags: [String]; var inner: Inner; var counts: [String: Int]; var blob: Data
}

struct Basket: Codable, Equatable { var orders: [Order]; var byID: [Int: String]; var matrix: [[Int]]; var maybe: [Int?] }

enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rect(Double, Double)
    case empty
    case labeled(String, at: Inner)
}

struct Drawing: Codable, Equatable { var title: String?; var shapes: [Shape] }

struct Stamps: Codable, Equatable { var when: MessagePackTimestamp; var ext: MessagePackExtension; var date: Date; var value: MessagePackValue }

class Animal: Codable {
    var name: String
    var legs: Int
    init(name: String, legs: Int) { self.name = name; self.legs = legs }
}

/// Class inheritance through `superEncoder()`/`superDecoder()`: the superclass's
/// fields sit in a nested map under "super".
final class Dog: Animal, Equatable {
    var breed: String
    enum CodingKeys: String, CodingKey { case breed }

    init(name: String, legs: Int, breed: String) {
        self.breed = breed
        super.init(name: name, legs: legs)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(breed, forKey: .breed)
        try super.encode(to: container.superEncoder())
    }

    static func == (lhs: Dog, rhs: Dog) -> Bool {
        lhs.name == rhs.name && lhs.legs == rhs.legs && lhs.breed == rhs.breed
    }
}

struct IntKeyed: Codable, Equatable {
    enum CodingKeys: Int, CodingKey { case id = 1, name = 2, score = 3 }
    var id: Int; var name: String; var score: Double
}

/// One fixture's checks for its Swift type: decode the bytes as `T`, compare with
/// the same value decoded by Foundation's JSONDecoder from the fixture's "json",
/// and encode it back to exactly the bytes.
struct TypedCheck: Sendable {
    let run: @Sendable (_ bytes: [UInt8], _ json: String?, _ options: FixtureOptions) throws -> [String]

    /// `same` compares decoded values (floats: NaN equals NaN).
    init<T: Codable>(_ type: T.Type, same: @escaping @Sendable (T, T) -> Bool) {
        run = { bytes, json, options in
            var problems: [String] = []
            let decoded = try options.decoder().decode(T.self, from: bytes)
            let encoded = try options.encoder().encode(decoded)
            if encoded != bytes {
                problems.append("re-encoded bytes differ: \(hex(encoded))")
            }
            if let json {
                let reference = JSONDecoder()
                reference.dateDecodingStrategy = .secondsSince1970
                reference.nonConformingFloatDecodingStrategy = .convertFromString(
                    positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                let expected = try reference.decode(T.self, from: Data(json.utf8))
                if !same(decoded, expected) {
                    problems.append("decoded \(decoded), JSONDecoder gives \(expected)")
                }
            }
            return problems
        }
    }

    init<T: Codable & Equatable>(_ type: T.Type) {
        self.init(type, same: ==)
    }

    static let registry: [String: TypedCheck] = [
        "Int?": TypedCheck(Int?.self),
        "Bool": TypedCheck(Bool.self),
        "Int": TypedCheck(Int.self),
        "Int8": TypedCheck(Int8.self), "Int16": TypedCheck(Int16.self),
        "Int32": TypedCheck(Int32.self), "Int64": TypedCheck(Int64.self),
        "UInt8": TypedCheck(UInt8.self), "UInt16": TypedCheck(UInt16.self),
        "UInt32": TypedCheck(UInt32.self), "UInt64": TypedCheck(UInt64.self),
        "Float": TypedCheck(Float.self, same: { $0 == $1 || $0.isNaN && $1.isNaN }),
        "Double": TypedCheck(Double.self, same: { $0 == $1 || $0.isNaN && $1.isNaN }),
        "String": TypedCheck(String.self),
        "Data": TypedCheck(Data.self),
        "[UInt8]": TypedCheck([UInt8].self),
        "[Int]": TypedCheck([Int].self),
        "[String]": TypedCheck([String].self),
        "[String: Int]": TypedCheck([String: Int].self),
        "[Int: String]": TypedCheck([Int: String].self),
        "Date": TypedCheck(Date.self),
        "MessagePackValue": TypedCheck(MessagePackValue.self),
        "MessagePackTimestamp": TypedCheck(MessagePackTimestamp.self),
        "MessagePackExtension": TypedCheck(MessagePackExtension.self),
        "Inner": TypedCheck(Inner.self),
        "Primitives": TypedCheck(Primitives.self),
        "Order": TypedCheck(Order.self),
        "Basket": TypedCheck(Basket.self),
        "Drawing": TypedCheck(Drawing.self),
        "Stamps": TypedCheck(Stamps.self),
        "Dog": TypedCheck(Dog.self),
        "IntKeyed": TypedCheck(IntKeyed.self),
    ]
}

/// The "options" of a fixture: which encoder and decoder settings made its bytes.
struct FixtureOptions: Sendable {
    var structEncoding: MessagePackEncoder.StructEncodingStrategy = .map
    var keyEncoding: MessagePackEncoder.KeyEncodingStrategy = .string
    var dateEncoding = "timestamp"

    init(_ value: MessagePackValue?) throws {
        guard let value else { return }
        if value["structEncoding"] == "array" { structEncoding = .array }
        if value["keyEncoding"] == "integer" { keyEncoding = .integer }
        if case .string(let date)? = value["dateEncoding"] { dateEncoding = date }
    }

    func encoder() -> MessagePackEncoder {
        let encoder = MessagePackEncoder()
        encoder.structEncodingStrategy = structEncoding
        encoder.keyEncodingStrategy = keyEncoding
        switch dateEncoding {
        case "secondsSince1970": encoder.dateEncodingStrategy = .secondsSince1970
        case "millisecondsSince1970": encoder.dateEncodingStrategy = .millisecondsSince1970
        default: break
        }
        return encoder
    }

    func decoder() -> MessagePackDecoder {
        let decoder = MessagePackDecoder()
        switch dateEncoding {
        case "secondsSince1970": decoder.dateDecodingStrategy = .secondsSince1970
        case "millisecondsSince1970": decoder.dateDecodingStrategy = .millisecondsSince1970
        default: break
        }
        return decoder
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

func hexDecoded(_ text: String) -> [UInt8] {
    var result: [UInt8] = []
    var high: UInt8?
    for char in text.utf8 {
        let nibble: UInt8
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = char - UInt8(ascii: "a") + 10
        default: continue
        }
        if let h = high { result.append(h << 4 | nibble); high = nil } else { high = nibble }
    }
    return result
}
