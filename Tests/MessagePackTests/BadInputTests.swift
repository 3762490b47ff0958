import Foundation
import MessagePack
import Testing

/// Hostile or broken bytes: each case is a thrown `DecodingError`, never a trap,
/// an over-read or an allocation sized by a length the input cannot back.
@Suite("Bad input is a thrown error")
struct BadInputTests {
    struct Item: Codable, Equatable { var name: String; var price: Double; var qty: UInt8 }
    struct Cart: Codable, Equatable { var items: [Item] }

    func description(of error: (any Error)?) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context),
             .keyNotFound(_, let context), .dataCorrupted(let context):
            return context.debugDescription
        @unknown default:
            return String(describing: error)
        }
    }

    @Test("10,000 random byte strings decode or throw, and what decodes re-encodes to itself")
    func randomBytes() throws {
        var generator = SplitMix64(seed: 0x5eed)
        var decoded = 0
        for _ in 0..<10_000 {
            let length = Int(generator.next() % 48)
            let input = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if let value = try? MessagePackValue(bytes: input) {
                decoded += 1
                #expect(try MessagePackValue(bytes: value.bytes()) == value)
            }
            _ = try? MessagePackDecoder().decode(Cart.self, from: input)
            _ = try? MessagePackDecoder().decode([String: [Int?]].self, from: input)
        }
        // Some short strings are valid MessagePack (a lone fixint is): both paths were taken.
        #expect(decoded > 0 && decoded < 10_000)
    }

    @Test("a length that claims more than the input holds is refused before allocating",
          arguments: [
            ([0xdd, 0xff, 0xff, 0xff, 0xff], "array of 4294967295 elements"),      // array32
            ([0xdf, 0xff, 0xff, 0xff, 0xff], "map of 4294967295 elements"),        // map32
            ([0xdc, 0xff, 0xff, 0x01], "array of 65535 elements"),                 // array16
            ([0xdb, 0x00, 0x10, 0x00, 0x00, 0x61], "more bytes"),                  // str32 of 1 MiB
            ([0xc6, 0x00, 0x10, 0x00, 0x00], "more bytes"),                        // bin32 of 1 MiB
            ([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], "over the limit"),              // str32 of 4 GiB
            ([0xc6, 0x7f, 0xff, 0xff, 0xff], "over the limit"),                    // bin32 of 2 GiB
            ([0xc9, 0x00, 0x10, 0x00, 0x00, 0x05], "more bytes"),                  // ext32
          ] as [([UInt8], String)])
    func lyingLength(_ input: [UInt8], _ expected: String) throws {
        let error = #expect(throws: DecodingError.self) { try MessagePackValue(bytes: input) }
        #expect(description(of: error).contains(expected), "\(description(of: error))")
        #expect(throws: DecodingError.self) { try MessagePackDecoder().decode([Int].self, from: input) }
    }

    @Test("100,000 nested arrays hit the depth limit")
    func deepNesting() throws {
        let input = [UInt8](repeating: 0x91, count: 100_000) + [0x00]
        let error = #expect(throws: DecodingError.self) { try MessagePackValue(bytes: input) }
        #expect(description(of: error).contains("nested deeper than 32"))
        #expect(throws: DecodingError.self) { try MessagePackDecoder().decode([[[[Int]]]].self, from: input) }
        // 32 levels are fine; the limit can be lowered.
        let thirtyTwo = [UInt8](repeating: 0x91, count: 31) + [0x90]
        #expect(throws: Never.self) { try MessagePackValue(bytes: thirtyTwo) }
        var limits = MessagePackLimits()
        limits.maxDepth = 4
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0x91, 0x91, 0x91, 0x91, 0x90], limits: limits) }
    }

    @Test("lengths over the configured limits are refused")
    func limits() throws {
        var limits = MessagePackLimits()
        limits.maxStringLength = 3
        limits.maxContainerLength = 2
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0xa4] + Array("abcd".utf8), limits: limits) }
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0x93, 1, 2, 3], limits: limits) }
        #expect(try MessagePackValue(bytes: [0x92, 1, 2], limits: limits) == [1, 2])
        let decoder = MessagePackDecoder()
        decoder.limits = limits
        #expect(throws: DecodingError.self) { try decoder.decode([Int].self, from: [0x93, 1, 2, 3]) }
    }

    @Test("bytes after the value are an error")
    func trailingBytes() throws {
        let error = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Int.self, from: [0x01, 0x02, 0x03]) }
        #expect(description(of: error).contains("2 bytes follow the value"))
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: []) }
    }

    @Test("invalid UTF-8 in a string is an error, with its path")
    func invalidUTF8() throws {
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0xa2, 0xff, 0xfe]) }
        // {"items": [{"name": <bad>, "price": 1.0, "qty": 1}]}
        var bytes = try MessagePackEncoder().encode(Cart(items: [Item(name: "zz", price: 1, qty: 1)]))
        let at = bytes.firstIndex(of: UInt8(ascii: "z"))!
        bytes[at] = 0xc3; bytes[at + 1] = 0x28  // a truncated two-byte sequence
        let error = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Cart.self, from: bytes) }
        #expect(description(of: error).contains("not valid UTF-8"))
        if case .dataCorrupted(let context)? = error {
            #expect(context.codingPath.map(\.stringValue) == ["items", "Index 0", "name"])
        }
    }

    @Test("a value of the wrong type names the full coding path, what was expected and what was found")
    func wrongType() throws {
        var items = (0..<5).map { MessagePackValue.map([("name", .string("i\($0)")), ("price", 1.5), ("qty", 2)]) }
        items[3] = .map([("name", "i3"), ("price", "cheap"), ("qty", 2)])
        let bytes = try MessagePackValue.map([("items", .array(items))]).bytes()
        let error = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Cart.self, from: bytes) }
        guard case .typeMismatch(let type, let context)? = error else {
            Issue.record("expected a type mismatch, got \(String(describing: error))")
            return
        }
        #expect(ObjectIdentifier(type) == ObjectIdentifier(Double.self))
        #expect(context.codingPath.map(\.stringValue) == ["items", "Index 3", "price"])
        #expect(context.debugDescription == "Expected to decode Double but found a string instead (at items[3].price).")
    }

    @Test("a missing key and a nil for a non-optional field are errors with their paths")
    func missingAndNil() throws {
        let missing = try MessagePackValue.map([("items", [["name": "x", "qty": 1]])]).bytes()
        let error = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Cart.self, from: missing) }
        guard case .keyNotFound(let key, _)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(key.stringValue == "price")
        let null = try MessagePackValue.map([("items", [["name": nil, "price": 1.0, "qty": 1]])]).bytes()
        let nilError = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Cart.self, from: null) }
        guard case .valueNotFound(_, let context)? = nilError else { Issue.record("\(String(describing: nilError))"); return }
        #expect(_render(context.codingPath) == "items[0].name")
    }

    @Test("an integer that does not fit the field's type is an error, not a truncation",
          arguments: [
            (MessagePackValue.uint(300), "UInt8"), (.int(-1), "UInt8"), (.uint(UInt64.max), "Int64"),
            (.int(-129), "Int8"), (.uint(65536), "UInt16"), (.int(Int64.min), "Int32"),
          ] as [(MessagePackValue, String)])
    func overflow(_ value: MessagePackValue, _ type: String) throws {
        let bytes = try value.bytes()
        let decoder = MessagePackDecoder()
        let error: DecodingError? = switch type {
        case "UInt8": #expect(throws: DecodingError.self) { try decoder.decode(UInt8.self, from: bytes) }
        case "Int8": #expect(throws: DecodingError.self) { try decoder.decode(Int8.self, from: bytes) }
        case "UInt16": #expect(throws: DecodingError.self) { try decoder.decode(UInt16.self, from: bytes) }
        case "Int32": #expect(throws: DecodingError.self) { try decoder.decode(Int32.self, from: bytes) }
        default: #expect(throws: DecodingError.self) { try decoder.decode(Int64.self, from: bytes) }
        }
        #expect(description(of: error).contains("does not fit in \(type)"), "\(description(of: error))")
        // In a field, the path says where.
        let field = try MessagePackValue.map([("items", [["name": "x", "price": 1.0, "qty": value]])]).bytes()
        if type == "UInt8" {
            let error = #expect(throws: DecodingError.self) { try decoder.decode(Cart.self, from: field) }
            #expect(description(of: error).contains("items[0].qty"))
        }
    }

    @Test("reserved byte 0xc1 is an error")
    func reservedByte() {
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0xc1]) }
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0x92, 0x01, 0xc1]) }
    }
}

/// A small deterministic generator, so a failure can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}

/// Renders a coding path the way the decoder's messages do.
func _render(_ path: [any CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue, key.stringValue == "Index \(index)" { text += "[\(index)]" }
        else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
    }
    return text
}
