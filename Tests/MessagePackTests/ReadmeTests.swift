import Foundation
import MessagePack
import Testing

/// The README's Swift examples, as written there, so that they keep compiling and working.
@Suite("README examples")
struct ReadmeTests {
    struct Order: Codable, Equatable {
        var id: Int
        var item: String
        var placed: Date
        var note: String?
    }

    @Test("Use, Options and the stream decoder")
    func examples() throws {
        // Use
        let bytes = try MessagePackEncoder().encode(Order(id: 1, item: "tea", placed: .now, note: nil))
        let order = try MessagePackDecoder().decode(Order.self, from: bytes)
        let value = try MessagePackValue(bytes: bytes)     // any value, for a look inside
        print(value["item"] ?? "none", value.json())        // "tea", tagged JSON
        #expect(order.item == "tea" && value["item"] == "tea")

        // Options
        let encoder = MessagePackEncoder()
        encoder.keyEncodingStrategy = .integer          // keys as CodingKey.intValue (default .string)
        encoder.structEncodingStrategy = .array         // structs as arrays of fields (default .map)
        encoder.dateEncodingStrategy = .secondsSince1970 // or .millisecondsSince1970 (default .timestamp)
        encoder.sortsDictionaryKeys = false             // skip the sort (default true)
        encoder.userInfo[CodingUserInfoKey(rawValue: "tenant")!] = "acme"

        let decoder = MessagePackDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        decoder.limits.maxDepth = 16                    // nesting (default and most: 32, msgpack-c's)
        decoder.limits.maxContainerLength = 1_000       // elements per array / pairs per map (2^24)
        decoder.limits.maxStringLength = 1 << 20        // bytes per string (2^28)
        decoder.limits.maxBinaryLength = 1 << 20        // bytes per bin / ext (2^30)
        decoder.limits.maxInputLength = 1 << 24         // bytes per decode (2^31)
        let compact = try encoder.encode(order)
        #expect(try decoder.decode(Order.self, from: compact).id == 1)

        // Stream
        var stream = MessagePackStreamDecoder()
        stream.append(bytes.prefix(10))                 // a value's first bytes: nothing yet
        #expect(try stream.next(Order.self) == nil)
        stream.append(bytes.dropFirst(10))
        var items: [String] = []
        while let order = try stream.next(Order.self) { items.append(order.item) }
        #expect(items == ["tea"])
    }
}
