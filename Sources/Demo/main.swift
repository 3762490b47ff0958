// The main job, in one screen: a Codable struct to MessagePack bytes and back,
// printed as bytes and as JSON. (Queues between processes come next.)
import Foundation
import MessagePack

struct Order: Codable, Equatable {
    var id: Int
    var item: String
    var price: Double
    var placed: Date
    var note: String?
    var tags: [String]
    var counts: [String: Int]
}

let order = Order(
    id: 1, item: "tea", price: 3.5, placed: Date(timeIntervalSince1970: 1_700_000_000.25),
    note: nil, tags: ["hot", "green"], counts: ["cups": 2, "bags": 10])

let bytes = try MessagePackEncoder().encode(order)
print("Order encoded as \(bytes.count) bytes of MessagePack:")
print(bytes.map { String(format: "%02x", $0) }.joined(separator: " "))

let value = try MessagePackValue(bytes: bytes)
print("\nThe same bytes as tagged JSON (what `msgpack decode` prints):")
print(value.json(prettyPrinted: true))

let back = try MessagePackDecoder().decode(Order.self, from: bytes)
print("\nDecoded back: \(back == order ? "equal to the original" : "DIFFERENT from the original")")

let json = try JSONEncoder().encode(order)
print("For comparison, JSONEncoder writes \(json.count) bytes.")

do {
    var broken = bytes
    broken[broken.count - 3] = 0xc1  // a byte MessagePack never uses
    _ = try MessagePackDecoder().decode(Order.self, from: broken)
} catch {
    print("\nDecoding corrupted bytes throws, never crashes:\n  \(error)")
}
