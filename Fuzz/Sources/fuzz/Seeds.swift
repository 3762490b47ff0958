import Foundation
import MessagePack

/// Seed inputs from the project's fixtures: every MessagePack vector for every
/// route that reads MessagePack (each typed case and date strategy too), the
/// tagged JSON of each vector's value, and the recorded Python frames.
func writeSeeds(to corpus: URL, fixtures: URL) throws -> Int {
    let files = FileManager.default
    try files.createDirectory(at: corpus, withIntermediateDirectories: true)
    var count = 0
    func write(_ route: Route, _ bytes: [UInt8]) throws {
        let input = [route.selector] + bytes
        try Data(input).write(to: corpus.appendingPathComponent("seed-\(route)-\(count)"))
        count += 1
    }

    let vectors = fixtures.appendingPathComponent("messagepack")
    for name in try files.contentsOfDirectory(atPath: vectors.path).sorted() where name.hasSuffix(".json") {
        let text = try Data(contentsOf: vectors.appendingPathComponent(name))
        guard let fixture = try JSONSerialization.jsonObject(with: text) as? [String: Any],
              let hexText = fixture["msgpack"] as? String, let bytes = bytes(hex: hexText) else { continue }
        for pick in 0..<UInt8(typedCases.count) {
            try write(.typed, [pick | UInt8(count % 4) << 4] + bytes)
        }
        try write(.value, bytes)
        try write(.stream, [UInt8(count % 7), 0] + bytes + bytes)
        try write(.connection, [UInt8(count % 2), 0] + frame(bytes) + frame(bytes))
        try write(.queue, [UInt8](repeating: 0, count: 8) + bytes)
        if let value = try? MessagePackValue(bytes: bytes) {
            try write(.json, Array(value.json().utf8))
        }
    }
    // The pool's frames, as the pool and a worker make them (see the README's protocol table).
    let output = try MessagePackValue.int(42).bytes()
    for frame: MessagePackValue in [
        .map([("id", .uint(1)), ("task", "add-one"), ("input", .binary(output))]),
        .map([("id", .uint(2)), ("task", "add-one"), ("batch", .binary(try MessagePackValue.array([42, 43]).bytes()))]),
        .map([("id", .uint(2)), ("outputs", .binary(try MessagePackValue.array([43, 44]).bytes()))]),
        .map([("id", .uint(1)), ("output", .binary(output))]),
        .map([("id", .uint(3)), ("error", .map([("type", "ValueError"), ("description", "no")]))]),
        .map([("id", .uint(2)), ("results", .array([.map([("output", .binary(output))]), .map([("error", .map([("type", "unknownTask"), ("description", "?")]))])]))]),
    ] {
        try write(.pool, try frame.bytes())
    }
    let frames = fixtures.appendingPathComponent("frames")
    for name in try files.contentsOfDirectory(atPath: frames.path).sorted() where name.hasSuffix(".bin") {
        try write(.connection, [0, 0] + Array(try Data(contentsOf: frames.appendingPathComponent(name))))
    }
    // A frame longer than the reader's first 64 KiB, sent as a header and 16 repeats of its body.
    if let value = try? MessagePackValue.binary([UInt8](repeating: 7, count: 100_000)).bytes() {
        let body = Array(value.prefix(6250))  // 100,005 bytes in all: 16 x 6,250 covers it
        try write(.connection, [0, 15] + frame(value).prefix(4) + body)
    }
    return count
}

/// Python's connection framing: a 4-byte big-endian length, then the payload.
func frame(_ payload: [UInt8]) -> [UInt8] {
    withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
}

func bytes(hex: String) -> [UInt8]? {
    var result: [UInt8] = []
    var iterator = hex.utf8.makeIterator()
    while let high = iterator.next() {
        guard let low = iterator.next(), let byte = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
        result.append(byte)
    }
    return result
}
