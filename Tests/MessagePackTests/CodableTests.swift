import Foundation
import MessagePack
import Testing

/// Round trips a value and returns its bytes.
@discardableResult
func roundTrip<T: Codable & Equatable>(
    _ value: T, encoder: MessagePackEncoder = MessagePackEncoder(), decoder: MessagePackDecoder = MessagePackDecoder(),
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> [UInt8] {
    let bytes = try encoder.encode(value)
    let back = try decoder.decode(T.self, from: bytes)
    #expect(back == value, sourceLocation: sourceLocation)
    return bytes
}

@Suite("Codable features")
struct CodableTests {
    /// Fills a nested container after writing more into its parent: legal Codable.
    struct Interleaved: Codable, Equatable {
        var name: String; var x: Int; var y: Int; var tags: [String]
        enum CodingKeys: String, CodingKey { case name, position, tags }
        enum PositionKeys: String, CodingKey { case x, y }

        init(name: String, x: Int, y: Int, tags: [String]) { (self.name, self.x, self.y, self.tags) = (name, x, y, tags) }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            let p = try c.nestedContainer(keyedBy: PositionKeys.self, forKey: .position)
            x = try p.decode(Int.self, forKey: .x)
            y = try p.decode(Int.self, forKey: .y)
            var t = try c.nestedUnkeyedContainer(forKey: .tags)
            tags = []
            while !t.isAtEnd { tags.append(try t.decode(String.self)) }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            var p = c.nestedContainer(keyedBy: PositionKeys.self, forKey: .position)
            var t = c.nestedUnkeyedContainer(forKey: .tags)
            try c.encode(name, forKey: .name)       // the parent goes on first…
            try t.encode(tags[0])
            try p.encode(x, forKey: .x)             // …then the nested ones, in turns
            for tag in tags.dropFirst() { try t.encode(tag) }
            try p.encode(y, forKey: .y)
        }
    }

    @Test("nested containers may be filled in any order")
    func interleavedNested() throws {
        let value = Interleaved(name: "n", x: 1, y: 300, tags: ["a", "b", "c"])
        let bytes = try roundTrip(value)
        #expect(try MessagePackValue(bytes: bytes) == ["position": ["x": 1, "y": 300], "tags": ["a", "b", "c"], "name": "n"])
    }

    /// Two keyed containers on one encoder write into one map (as a class that calls
    /// `super.encode(to: encoder)` does).
    struct TwoContainers: Codable, Equatable {
        var a: Int; var b: String
        enum First: String, CodingKey { case a }
        enum Second: String, CodingKey { case b }
        init(a: Int, b: String) { (self.a, self.b) = (a, b) }
        init(from decoder: any Decoder) throws {
            a = try decoder.container(keyedBy: First.self).decode(Int.self, forKey: .a)
            b = try decoder.container(keyedBy: Second.self).decode(String.self, forKey: .b)
        }
        func encode(to encoder: any Encoder) throws {
            var first = encoder.container(keyedBy: First.self)
            try first.encode(a, forKey: .a)
            var second = encoder.container(keyedBy: Second.self)
            try second.encode(b, forKey: .b)
        }
    }

    @Test("several containers on one encoder share its map")
    func severalContainers() throws {
        let bytes = try roundTrip(TwoContainers(a: 1, b: "two"))
        #expect(try MessagePackValue(bytes: bytes) == ["a": 1, "b": "two"])
    }

    @Test("class inheritance through superEncoder and superDecoder")
    func inheritance() throws {
        let bytes = try roundTrip(Dog(name: "Rex", legs: 4, breed: "Corgi"))
        #expect(try MessagePackValue(bytes: bytes) == ["breed": "Corgi", "super": ["name": "Rex", "legs": 4]])
    }

    enum Command: Codable, Equatable {
        case stop
        case move(x: Int, y: Int)
        case say(String)
        case batch([Command])
    }

    @Test("enums with associated values, optionals and nil elements")
    func enumsAndOptionals() throws {
        try roundTrip(Command.batch([.stop, .move(x: -1, y: 2), .say("hi"), .batch([])]))
        try roundTrip([1, nil, 3] as [Int?])
        try roundTrip(["a": nil, "b": 2] as [String: Int?])
        try roundTrip(Drawing(title: nil, shapes: [.circle(radius: 1), .empty, .labeled("p", at: Inner(a: 1, b: "b", c: true))]))
        #expect(try MessagePackEncoder().encode(Optional<Int>.none) == [0xc0])
    }

    @Test("[Int: V] is a map with integer keys; dictionaries of any key type round-trip")
    func integerKeyedMaps() throws {
        let bytes = try roundTrip([3: "c", -1: "a", 200: "b"])
        #expect(try MessagePackValue(bytes: bytes) == .map([(.int(-1), "a"), (3, "c"), (200, "b")]))
        try roundTrip([UInt8(1): true, 2: false])
        try roundTrip([MessagePackValue.bool(true): "yes", .nil: "none"])
    }

    @Test("equal dictionaries give identical bytes whatever their insertion order")
    func deterministicDictionaries() throws {
        var forward: [String: Int] = [:]
        var backward: [String: Int] = [:]
        let keys = (0..<200).map { "key-\($0)-\(String(repeating: "é", count: $0 % 3))" }
        for (i, key) in keys.enumerated() { forward[key] = i }
        for (i, key) in keys.enumerated().reversed() { backward[key] = i }
        #expect(try MessagePackEncoder().encode(forward) == MessagePackEncoder().encode(backward))
        let sorted = try MessagePackValue(bytes: MessagePackEncoder().encode(forward))
        guard case .map(let pairs) = sorted else { Issue.record("not a map"); return }
        let written = pairs.compactMap { if case .string(let s) = $0.key { s } else { nil } }
        #expect(written == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        // Opting out still writes every pair.
        let encoder = MessagePackEncoder()
        encoder.sortsDictionaryKeys = false
        try roundTrip(forward, encoder: encoder)
    }

    @Test("structs as arrays and integer keys round-trip, and are smaller")
    func compactForms() throws {
        let order = Order(
            id: 7, item: "tea", price: 2.5, placed: Date(timeIntervalSince1970: 1_700_000_000.25), note: nil,
            tags: ["hot"], inner: Inner(a: 1, b: "b", c: false), counts: ["x": 1], blob: Data([1, 2, 3]))
        let asMap = try roundTrip(order)
        let arrays = MessagePackEncoder()
        arrays.structEncodingStrategy = .array
        let asArray = try roundTrip(order, encoder: arrays)
        #expect(asArray.count < asMap.count)
        #expect(asArray.first == 0x99)  // a fixarray of all 9 fields: the absent note is a nil
        let ints = MessagePackEncoder()
        ints.keyEncodingStrategy = .integer
        let bytes = try roundTrip(IntKeyed(id: 1, name: "n", score: 0.5), encoder: ints)
        #expect(try MessagePackValue(bytes: bytes) == .map([(1, 1), (2, "n"), (3, 0.5)]))
    }

    @Test("dates: timestamp to the nanosecond by default, or seconds/milliseconds since 1970")
    func dates() throws {
        let date = Date(timeIntervalSince1970: 1_700_000_000.5)
        #expect(try MessagePackValue(bytes: MessagePackEncoder().encode(date)) == .timestamp(.init(seconds: 1_700_000_000, nanoseconds: 500_000_000)))
        try roundTrip(date)
        try roundTrip(Date(timeIntervalSince1970: -1.25))
        let encoder = MessagePackEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        let decoder = MessagePackDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        #expect(try MessagePackValue(bytes: encoder.encode(date)) == .double(1_700_000_000_500))
        try roundTrip(date, encoder: encoder, decoder: decoder)
        #expect(throws: EncodingError.self) { try MessagePackEncoder().encode(Date(timeIntervalSinceReferenceDate: .infinity)) }
    }

    @Test("Data and [UInt8] are bin; UUID, URL and Decimal are strings; Set is an array")
    func foundationTypes() throws {
        #expect(try MessagePackEncoder().encode(Data([1, 2])) == [0xc4, 2, 1, 2])
        #expect(try MessagePackEncoder().encode([UInt8]([1, 2])) == [0xc4, 2, 1, 2])
        let uuid = UUID()
        #expect(try MessagePackValue(bytes: roundTrip(uuid)) == .string(uuid.uuidString))
        try roundTrip(URL(string: "https://example.com/a?b=c")!)
        #expect(try MessagePackValue(bytes: roundTrip(Decimal(string: "12.345")!)) == "12.345")
        try roundTrip(Set([1, 2, 3]))
        try roundTrip([Float(1.5), -0.0, .infinity])
    }

    @Test("userInfo reaches encode(to:) and init(from:)")
    func userInfo() throws {
        struct Scaled: Codable, Equatable {
            static let factor = CodingUserInfoKey(rawValue: "factor")!
            var value: Int
            init(value: Int) { self.value = value }
            init(from decoder: any Decoder) throws {
                value = try decoder.singleValueContainer().decode(Int.self) / (decoder.userInfo[Self.factor] as! Int)
            }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.singleValueContainer()
                try c.encode(value * (encoder.userInfo[Self.factor] as! Int))
            }
        }
        let encoder = MessagePackEncoder()
        encoder.userInfo[Scaled.factor] = 10
        let decoder = MessagePackDecoder()
        decoder.userInfo[Scaled.factor] = 10
        #expect(try roundTrip(Scaled(value: 4), encoder: encoder, decoder: decoder) == [40])
    }

    @Test("an error thrown by a value's encode(to:) reaches the caller with its path")
    func encodeErrors() throws {
        struct Refuses: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, .init(codingPath: encoder.codingPath, debugDescription: "no"))
            }
        }
        struct Holder: Encodable { var list: [Int: Refuses] }
        let error = #expect(throws: EncodingError.self) { try MessagePackEncoder().encode(Holder(list: [5: Refuses()])) }
        guard case .invalidValue(_, let context)? = error else { return }
        #expect(context.codingPath.map(\.stringValue) == ["list", "5"])
    }

    @Test("MessagePackValue, MessagePackTimestamp and MessagePackExtension as fields")
    func dynamicFields() throws {
        let stamps = Stamps(
            when: .init(seconds: -5, nanoseconds: 7), ext: .init(type: 42, data: [1, 2, 3]),
            date: Date(timeIntervalSince1970: 0), value: ["any": [1, "two", 3.0, nil, .binary([9])]])
        try roundTrip(stamps)
        // Through JSON they take their plain Codable form (JSON has no binary, nor
        // 3.0 apart from 3, so this value sticks to what JSON can hold).
        var plain = stamps
        plain.value = ["any": [1, "two", 3.5, nil, true, ["nested": -2]]]
        let json = try JSONEncoder().encode(plain)
        #expect(try JSONDecoder().decode(Stamps.self, from: json) == plain)
    }

    @Test("the stream decoder returns whole values from chunks of any size")
    func stream() throws {
        let orders = (0..<50).map { Inner(a: $0 * 1000, b: String(repeating: "x", count: $0), c: $0 % 2 == 0) }
        let bytes = try orders.flatMap { try MessagePackEncoder().encode($0) }
        for chunk in [1, 3, 64, bytes.count] {
            var stream = MessagePackStreamDecoder()
            var received: [Inner] = []
            for start in stride(from: 0, to: bytes.count, by: chunk) {
                stream.append(bytes[start..<min(start + chunk, bytes.count)])
                while let next = try stream.next(Inner.self) { received.append(next) }
            }
            #expect(received == orders)
            #expect(stream.bufferedByteCount == 0)
        }
        var bad = MessagePackStreamDecoder()
        bad.append([0xdd, 0xff, 0xff, 0xff, 0xff])
        #expect(throws: DecodingError.self) { try bad.nextValue() }
    }

    struct Wide: Codable, Equatable {
        var f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7, f8 = 8, f9 = 9
        var f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15, f16 = 16, f17 = "seventeen"
        var inner = Inner(a: 1, b: "b", c: true)
    }

    @Test("headers grow past the fix formats: 18 fields, 70,000 elements through an unkeyed container")
    func growingHeaders() throws {
        let wide = try roundTrip([Wide(), Wide(f1: -1)])
        #expect(Array(wide.prefix(2)) == [0x92, 0xde])  // map16 for the first struct's 18 fields
        #expect(try MessagePackValue(bytes: wide)[1]?["f17"] == "seventeen")
        let big = Set(0..<70_000)
        let bytes = try roundTrip(big)
        #expect(bytes.first == 0xdd)  // array32: Set encodes through an unkeyed container
    }

    /// An `encode(to:)` that catches an element's error and goes on.
    struct Forgiving: Encodable {
        struct Refuses: Encodable {
            func encode(to encoder: any Encoder) throws {
                var c = encoder.unkeyedContainer()
                try c.encode(1)
                throw EncodingError.invalidValue(0, .init(codingPath: encoder.codingPath, debugDescription: "no"))
            }
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode("before")
            try? c.encode(Refuses())
            try c.encode("after")
        }
    }

    @Test("an element that fails to encode leaves no bytes behind when the error is caught")
    func caughtError() throws {
        let bytes = try MessagePackEncoder().encode(Forgiving())
        #expect(try MessagePackValue(bytes: bytes) == ["before", "after"])
    }

    /// Reads its parent's fields through a container whose super decoder it does not keep.
    struct ViaSuper: Decodable, Equatable {
        var name: String
        var legs: Int
        enum Keys: String, CodingKey { case name, legs }
        enum Outer: String, CodingKey { case animal }
        init(from decoder: any Decoder) throws {
            let outer = try decoder.container(keyedBy: Outer.self)
            let container = try outer.superDecoder(forKey: .animal).container(keyedBy: Keys.self)
            // Other decoding in between, so a released decoder's memory would be reused.
            for _ in 0..<100 { _ = try MessagePackDecoder().decode([String].self, from: [0x92, 0xa1, 0x61, 0xa1, 0x62]) }
            name = try container.decode(String.self, forKey: .name)
            legs = try container.decode(Int.self, forKey: .legs)
        }
        init(name: String, legs: Int) { (self.name, self.legs) = (name, legs) }
    }

    @Test("a container from a super decoder that is not kept stays valid for the whole decode")
    func containerOutlivesSuperDecoder() throws {
        let bytes = try MessagePackValue.map([("animal", .map([("name", "Rex"), ("legs", 4)]))]).bytes()
        for _ in 0..<100 {
            #expect(try MessagePackDecoder().decode(ViaSuper.self, from: bytes) == ViaSuper(name: "Rex", legs: 4))
        }
    }

    @Test("a coder kept between calls follows each change of its options, and is shared safely between threads")
    func reusedCoders() async throws {
        let value = IntKeyed(id: 1, name: "n", score: 0.5)
        let encoder = MessagePackEncoder()
        let decoder = MessagePackDecoder()
        // Each call after a change sees it, though the spare coder was made before.
        for _ in 0..<3 {
            encoder.keyEncodingStrategy = .integer
            #expect(try MessagePackValue(bytes: encoder.encode(value)) == .map([(1, 1), (2, "n"), (3, 0.5)]))
            encoder.keyEncodingStrategy = .string
            #expect(try MessagePackValue(bytes: encoder.encode(value)) == .map([("id", 1), ("name", "n"), ("score", 0.5)]))
            decoder.limits.maxDepth = 1
            #expect(throws: DecodingError.self) { try decoder.decode([[Int]].self, from: encoder.encode([[1]])) }
            decoder.limits.maxDepth = 32
            #expect(try decoder.decode([[Int]].self, from: encoder.encode([[1]])) == [[1]])
        }
        // Many calls at once on one encoder and one decoder: each gets a coder of its own.
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<500 {
                        let item = IntKeyed(id: task * 1000 + index, name: String(repeating: "x", count: index % 40), score: Double(index))
                        guard try decoder.decode(IntKeyed.self, from: encoder.encode(item)) == item else { return false }
                    }
                    return true
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: 8))
    }
}
