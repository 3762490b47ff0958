import Foundation
import CodecFloor
import MessagePack

/// Times MessagePackEncoder/Decoder against Foundation's JSON coders and against
/// msgpack-c driven by hand (the floor), on one `Reference` and on 10,000 of them.
///
///     swift run -c release --package-path Benchmarks codec-bench
@main
struct CodecBench {
    static let arrayCount = 10_000

    static func main() throws {
        #if DEBUG
        print("WARNING: a debug build; the numbers mean nothing. Use -c release.\n")
        #endif

        let one = Reference.make()
        let many = (0..<arrayCount).map { Reference.make(id: 123_456 + $0) }

        let mpEncoder = MessagePackEncoder()
        let mpDecoder = MessagePackDecoder()
        let jsonEncoder = JSONEncoder()
        let jsonDecoder = JSONDecoder()

        // The bytes every decode case reads.
        let mpOne = try mpEncoder.encode(one)
        let mpMany = try mpEncoder.encode(many)
        let jsonOne = try jsonEncoder.encode(one)
        let jsonMany = try jsonEncoder.encode(many)
        let item = Item.make()
        let mpItem = try mpEncoder.encode(item)
        let jsonItem = try jsonEncoder.encode(item)

        try check(one: one, many: many, mpOne: mpOne, mpMany: mpMany, jsonOne: jsonOne, jsonMany: jsonMany,
                  mpDecoder: mpDecoder, jsonDecoder: jsonDecoder)
        try checkItem(item, mpItem: mpItem, mpDecoder: mpDecoder)

        // `codec-bench profile encode|decode|encode-item|decode-item|floor-encode|floor-decode|floor-encode-item|floor-decode-item|null-encode-item|null-decode-item [calls]`: only that
        // operation on one value, in a loop, for a profiler (perf, valgrind --tool=callgrind).
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.first == "profile" {
            let what = arguments.dropFirst().first ?? "encode"
            // queue-bench's small item, for profiling the codec's share of a queue's work.
            let calls = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 100_000
            let body: () throws -> Int
            switch what {
            case "encode": body = { try mpEncoder.encode(one).count }
            case "decode": body = { try mpDecoder.decode(Reference.self, from: mpOne).checksum }
            case "encode-item": body = { try mpEncoder.encode(item).count }
            case "decode-item": body = { try mpDecoder.decode(Item.self, from: mpItem).id }
            case "floor-encode": body = { try Floor.encode(one).count }
            case "floor-decode": body = { try Floor.decode(mpOne).checksum }
            case "floor-encode-item": body = { try Floor.encode(item).count }
            case "floor-decode-item": body = { try Floor.decodeItem(mpItem).id }
            case "null-encode-item": body = { try item.encode(to: NullEncoder()); return 1 }
            case "null-decode-item": body = { try Item(from: NullDecoder()).id &+ 1 }
            default:
                FileHandle.standardError.write(Data("usage: codec-bench [profile encode|decode|encode-item|decode-item|floor-encode|floor-decode|floor-encode-item|floor-decode-item|null-encode-item|null-decode-item [calls]]\n".utf8))
                exit(2)
            }
            var harness = Harness()
            let elapsed = try harness.runBatch(body, calls: calls)
            print(String(format: "profile %@: %ld calls, %.0f ns/call (checksum %ld)",
                         what as NSString, calls, Double(elapsed) / Double(calls), harness.sink))
            return
        }

        print("Machine: \(processors()) cores (nproc), \(machine()) (uname -m); load average \(loadAverage()) at start")
        print(String(
            format: "Bytes per value: MessagePack %ld, JSON %ld (%.0f%%); in the 10,000 array: MessagePack %.1f, JSON %.1f per element",
            mpOne.count, jsonOne.count, 100 * Double(mpOne.count) / Double(jsonOne.count),
            Double(mpMany.count) / Double(arrayCount), Double(jsonMany.count) / Double(arrayCount)))
        print("Method: warm-up, then the median of 15 batches of ~50 ms each, the three columns' batches interleaved.")
        print("")

        var harness = Harness()
        let n = arrayCount
        let rows: [(name: String, ops: [Operation])] = [
            ("encode one", [
                Operation("MessagePack") { try mpEncoder.encode(one).count },
                Operation("JSON") { try jsonEncoder.encode(one).count },
                Operation("floor") { try Floor.encode(one).count },
            ]),
            ("decode one", [
                Operation("MessagePack") { try mpDecoder.decode(Reference.self, from: mpOne).checksum },
                Operation("JSON") { try jsonDecoder.decode(Reference.self, from: jsonOne).checksum },
                Operation("floor") { try Floor.decode(mpOne).checksum },
            ]),
            ("encode Item", [
                Operation("MessagePack") { try mpEncoder.encode(item).count },
                Operation("JSON") { try jsonEncoder.encode(item).count },
                Operation("floor") { try Floor.encode(item).count },
            ]),
            ("decode Item", [
                Operation("MessagePack") { try mpDecoder.decode(Item.self, from: mpItem).id },
                Operation("JSON") { try jsonDecoder.decode(Item.self, from: jsonItem).id },
                Operation("floor") { try Floor.decodeItem(mpItem).id },
            ]),
            ("encode 10,000 (per element)", [
                Operation("MessagePack", valuesPerCall: n) { try mpEncoder.encode(many).count },
                Operation("JSON", valuesPerCall: n) { try jsonEncoder.encode(many).count },
                Operation("floor", valuesPerCall: n) { try Floor.encode(many).count },
            ]),
            ("decode 10,000 (per element)", [
                Operation("MessagePack", valuesPerCall: n) { digest(try mpDecoder.decode([Reference].self, from: mpMany)) },
                Operation("JSON", valuesPerCall: n) { digest(try jsonDecoder.decode([Reference].self, from: jsonMany)) },
                Operation("floor", valuesPerCall: n) { digest(try Floor.decodeArray(mpMany)) },
            ]),
        ]

        var results: [(name: String, mp: Double, json: Double, floor: Double)] = []
        for row in rows {
            var ops = row.ops
            try harness.measure(&ops)
            results.append((row.name, ops[0].median, ops[1].median, ops[2].median))
        }

        print("| case | MessagePack ns/op | JSON ns/op | msgpack-c floor ns/op | vs JSON | vs floor |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results {
            print("| \(r.name) | \(ns(r.mp)) | \(ns(r.json)) | \(ns(r.floor)) | \(versusJSON(r.mp / r.json)) | \(versusFloor(r.mp / r.floor)) |")
        }
        print("")

        // What Codable costs by itself on the small item: the same synthesized
        // encode(to:) and init(from:) driven by coders that do nothing.
        var nullOps = [
            Operation("null encode") { try item.encode(to: NullEncoder()); return 1 },
            Operation("null decode") { try Item(from: NullDecoder()).id &+ 1 },
        ]
        try harness.measure(&nullOps)
        let itemRows = results.filter { $0.name.contains("Item") }
        print(String(format: "Codable's own calls on Item, with coders that do nothing: encode %@ ns, decode %@ ns "
            + "(%.0f%% and %.0f%% of the floor's whole encode and decode).",
            ns(nullOps[0].median) as NSString, ns(nullOps[1].median) as NSString,
            100 * nullOps[0].median / itemRows[0].floor, 100 * nullOps[1].median / itemRows[1].floor))
        print("")

        // Targets: encode at most 1/8 of JSONEncoder's time, decode at most 1/5 of
        // JSONDecoder's (for the reference struct), every case within 4x of the
        // hand-written floor, and one value (the reference struct and the small
        // item) within 2x of it.
        var missed: [String] = []
        var targets = 0
        print("Targets:")
        for r in results where !r.name.contains("Item") {
            let isEncode = r.name.hasPrefix("encode")
            let limit = isEncode ? 1.0 / 8 : 1.0 / 5
            let jsonRatio = r.mp / r.json
            targets += 1
            print("  " + pad(r.name) + String(format: " %5.3fx the time of %@ (target <= 1/%ld = %.3fx): %@",
                jsonRatio, (isEncode ? "JSONEncoder" : "JSONDecoder") as NSString,
                isEncode ? 8 : 5, limit, (jsonRatio <= limit ? "met" : "MISSED") as NSString))
            if jsonRatio > limit { missed.append("\(r.name) vs JSON") }
        }
        for r in results {
            let floorRatio = r.mp / r.floor
            let limit: Double = r.name.contains("10,000") ? 4 : 2
            targets += 1
            print("  " + pad(r.name) + String(format: " %5.2fx the time of the msgpack-c floor (target <= %.0fx): %@",
                floorRatio, limit, (floorRatio <= limit ? "met" : "MISSED") as NSString))
            if floorRatio > limit { missed.append("\(r.name) vs floor") }
        }
        if missed.isEmpty {
            print("All \(targets) targets met.")
        } else {
            print("MISSED \(missed.count) of \(targets) targets: \(missed.joined(separator: ", ")).")
        }
        print("")
        print("Load average \(loadAverage()) at end. Checksum (ignore): \(harness.sink)")
    }

    // MARK: Start-up check

    /// The small item's floor writes the encoder's bytes and reads them back.
    static func checkItem(_ item: Item, mpItem: [UInt8], mpDecoder: MessagePackDecoder) throws {
        let hand = try Floor.encode(item)
        if hand != mpItem {
            FileHandle.standardError.write(Data("CHECK FAILED: hand-packed Item \(hex(hand)) differs from the encoder's \(hex(mpItem))\n".utf8))
            exit(1)
        }
        if try Floor.decodeItem(mpItem) != item || mpDecoder.decode(Item.self, from: mpItem) != item {
            FileHandle.standardError.write(Data("CHECK FAILED: Item does not round-trip\n".utf8))
            exit(1)
        }
    }

    /// The floor must do the same work: the same bytes out, the same values back.
    static func check(
        one: Reference, many: [Reference], mpOne: [UInt8], mpMany: [UInt8], jsonOne: Data, jsonMany: Data,
        mpDecoder: MessagePackDecoder, jsonDecoder: JSONDecoder
    ) throws {
        func fail(_ message: String) -> Never {
            FileHandle.standardError.write(Data("CHECK FAILED: \(message)\n".utf8))
            exit(1)
        }
        let handOne = try Floor.encode(one)
        if handOne != mpOne {
            let at = zip(handOne, mpOne).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(handOne.count, mpOne.count)
            fail("""
                hand-packed bytes differ from MessagePackEncoder's at offset \(at) \
                (\(handOne.count) vs \(mpOne.count) bytes)
                  hand:    \(hex(handOne))
                  encoder: \(hex(mpOne))
                """)
        }
        let handMany = try Floor.encode(many)
        if handMany != mpMany {
            let at = zip(handMany, mpMany).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(handMany.count, mpMany.count)
            let window = max(0, at - 16)..<min(at + 16, handMany.count, mpMany.count)
            fail("""
                hand-packed 10,000 array differs from MessagePackEncoder's bytes at offset \(at) \
                (\(handMany.count) vs \(mpMany.count) bytes)
                  hand:    …\(hex(Array(handMany[window])))…
                  encoder: …\(hex(Array(mpMany[window])))…
                """)
        }
        let handDecoded = try Floor.decode(mpOne)
        if handDecoded != one { fail("hand-unpacking the encoder's bytes gave \(handDecoded), not \(one)") }
        if try Floor.decodeArray(mpMany) != many { fail("hand-unpacking the encoder's 10,000 array gave other values") }
        if try mpDecoder.decode(Reference.self, from: mpOne) != one { fail("MessagePackDecoder did not round-trip the value") }
        if try mpDecoder.decode([Reference].self, from: mpMany) != many { fail("MessagePackDecoder did not round-trip the array") }
        if try jsonDecoder.decode(Reference.self, from: jsonOne) != one { fail("JSONDecoder did not round-trip the value") }
        if try jsonDecoder.decode([Reference].self, from: jsonMany) != many { fail("JSONDecoder did not round-trip the array") }
        print("Check passed: hand-packed msgpack-c bytes equal MessagePackEncoder's byte for byte (\(mpOne.count) bytes; "
              + "\(mpMany.count) for the 10,000 array), and hand-unpacking them gives back every field; "
              + "MessagePack and JSON both round-trip.")
    }

    // MARK: Formatting

    static func digest(_ values: [Reference]) -> Int {
        values.count &+ (values.last?.checksum ?? 0)
    }

    /// "12,345" (whole nanoseconds), or "85.3" below 100.
    static func ns(_ value: Double) -> String {
        if value < 100 { return String(format: "%.1f", value) }
        let digits = String(Int(value.rounded()))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return out
    }

    /// MessagePack time / JSON time: "0.09x (1/11)".
    static func versusJSON(_ ratio: Double) -> String {
        guard ratio < 1 else { return String(format: "%.2fx", ratio) }
        return String(format: 1 / ratio < 9.95 ? "%.2fx (1/%.1f)" : "%.2fx (1/%.0f)", ratio, 1 / ratio)
    }

    /// MessagePack time / floor time: "2.7x".
    static func versusFloor(_ ratio: Double) -> String {
        String(format: "%.1fx", ratio)
    }

    static func pad(_ text: String, to width: Int = 28) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Machine

    static func processors() -> Int { sysconf(Int32(_SC_NPROCESSORS_ONLN)) }

    static func machine() -> String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.machine) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }

    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
