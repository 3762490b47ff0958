import Foundation
import MessagePack
import Testing

/// What the fuzzer (Fuzz/) found, kept as tests: each input once trapped the
/// process or took time quadratic in its length, and must now be a thrown
/// `DecodingError` with the field's path, or a value. The raw inputs are also in
/// Fuzz/Regressions/, which every fuzz run replays first.
@Suite("Fuzzer findings stay fixed")
struct FuzzFindingTests {
    struct Stamped: Codable { var when: Date }
    struct Priced: Codable { var price: Decimal }

    func description(of error: (any Error)?) -> String {
        guard case .dataCorrupted(let context)? = error as? DecodingError else { return String(describing: error) }
        return context.debugDescription
    }

    @Test("a timestamp of Int64.min seconds decodes as a Date without overflow, and does not re-encode")
    func timestampAtInt64Min() throws {
        // {"when": timestamp96(nanoseconds 0, seconds Int64.min)}
        let bytes: [UInt8] = [0x81, 0xa4, 0x77, 0x68, 0x65, 0x6e, 0xc7, 0x0c, 0xff,
                              0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]
        let stamped = try MessagePackDecoder().decode(Stamped.self, from: bytes)
        #expect(abs(stamped.when.timeIntervalSince1970 + 9.223_372_036_854_775_808e18) < 1e6)
        // Far outside what a timestamp written from a Double can say: an error, not a trap.
        #expect(throws: EncodingError.self) { try MessagePackEncoder().encode(stamped) }
        // The largest seconds too.
        var top = bytes
        top.replaceSubrange(13..., with: [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        #expect(try MessagePackDecoder().decode(Stamped.self, from: top).when.timeIntervalSince1970 > 9e18)
    }

    @Test("a float that Decimal cannot hold is an error with the path, not a trap or a NaN",
          arguments: [Double.infinity, -Double.infinity, Double.nan, 1e300, -1e200, 1e-300])
    func decimalFromFloat(_ value: Double) throws {
        let bytes = try MessagePackValue.map([("price", .double(value))]).bytes()
        let error = #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Priced.self, from: bytes) }
        #expect(description(of: error).contains("does not fit in Decimal (at price)"), "\(description(of: error))")
        // The float 32 forms too, where a Float cannot hold the value either.
        guard !Float(value).isFinite else { return }
        let float = try MessagePackValue.map([("price", .float(Float(value)))]).bytes()
        #expect(throws: DecodingError.self) { try MessagePackDecoder().decode(Priced.self, from: float) }
    }

    @Test("a float Decimal can hold still decodes")
    func decimalInRange() throws {
        let bytes = try MessagePackValue.map([("price", .double(19.5))]).bytes()
        #expect(try MessagePackDecoder().decode(Priced.self, from: bytes).price == Decimal(string: "19.5"))
    }

    @Test("a stream decoder fed a large array in small pieces takes linear time, not quadratic")
    func streamInSmallPieces() throws {
        // 2^21 elements of two bytes (an array holding 1), in 2 KiB pieces: 2,048 scans.
        // Once half the bytes are in, the count is backed and each scan walks the
        // elements so far: scanning from the start each time walked about 3 billion
        // (a minute in a debug build); resuming, 4 million.
        let count = 1 << 21
        let bytes: [UInt8] = [0xdd] + withUnsafeBytes(of: UInt32(count).bigEndian, Array.init)
            + Array([[UInt8]](repeating: [0x91, 0x01], count: count).joined())
        var stream = MessagePackStreamDecoder()
        let clock = ContinuousClock()
        var values: [[UInt8]] = []
        let elapsed = try clock.measure {
            for start in stride(from: 0, to: bytes.count, by: 2048) {
                stream.append(bytes[start..<min(start + 2048, bytes.count)])
                while let value = try stream.nextBytes() { values.append(value) }
            }
        }
        #expect(values == [bytes])
        #expect(elapsed < .seconds(10), "took \(elapsed)")
    }

    @Test("a stream's resumed scan gives what one scan of all the bytes gives, for every split point")
    func streamResumesExactly() throws {
        // Nested containers of every kind, so a split lands inside headers, strings and maps.
        let value = MessagePackValue.array([
            .map([(.string("a"), .array([.int(-1), .uint(300), .string(String(repeating: "x", count: 40))])),
                  (.uint(7), .binary([1, 2, 3])), (.string("t"), .timestamp(.init(seconds: 1, nanoseconds: 2)))]),
            .array([]), .map([]), .double(1.5), .array([.array([.array([.nil])])]),
        ])
        let one = try value.bytes()
        let bytes = one + one
        for split in 1..<bytes.count {
            var stream = MessagePackStreamDecoder()
            var values: [MessagePackValue] = []
            stream.append(bytes[..<split])
            while let next = try stream.nextValue() { values.append(next) }
            stream.append(bytes[split...])
            while let next = try stream.nextValue() { values.append(next) }
            #expect(values == [value, value], "split at \(split)")
            #expect(stream.bufferedByteCount == 0)
        }
    }

    @Test("after an error mid-value, a stream decoder throws again instead of resuming from counts it changed")
    func streamErrorThenAgain() throws {
        // Found in review: the counts of open containers were kept from the failed scan.
        var stream = MessagePackStreamDecoder()
        stream.append([0x93, 0x01])                 // an array of 3: one element so far
        #expect(try stream.nextBytes() == nil)
        stream.append([0x02, 0xc1])                 // a second element, then a byte never used
        #expect(throws: DecodingError.self) { try stream.nextBytes() }
        // Once handed out 93 01 02, an array of 3 holding 2.
        #expect(throws: DecodingError.self) { try stream.nextBytes() }
        #expect(stream.bufferedByteCount == 4)
    }

    @Test("limits below zero are refused values, not a trap")
    func negativeDepth() throws {
        var limits = MessagePackLimits()
        limits.maxDepth = -5
        #expect(throws: DecodingError.self) { try MessagePackValue(bytes: [0x91, 0x01], limits: limits) }
        var stream = MessagePackStreamDecoder(limits: limits)
        stream.append([0x91])
        #expect(throws: DecodingError.self) { try stream.nextBytes() }
        #expect(try MessagePackValue(bytes: [0x01], limits: limits) == 1)
    }

    @Test("a stream refuses a value over maxInputLength whether its bytes come at once or in pieces")
    func streamInputLimitAtOnce() throws {
        // Found by the fuzzer: in pieces the value was refused, all at once it was returned.
        var limits = MessagePackLimits()
        limits.maxInputLength = 8
        let value = try MessagePackValue.string("twelve bytes").bytes()  // 13 bytes
        for piece in [1, 4, value.count] {
            var stream = MessagePackStreamDecoder(limits: limits)
            var refused = false
            for start in stride(from: 0, to: value.count, by: piece) {
                stream.append(value[start..<min(start + piece, value.count)])
                do {
                    #expect(try stream.nextBytes() == nil)
                } catch is DecodingError {
                    refused = true
                    break
                }
            }
            #expect(refused, "pieces of \(piece)")
            #expect(throws: DecodingError.self) { try stream.nextBytes() }  // and stays refused
        }
        // Within the limit, values still come through.
        var stream = MessagePackStreamDecoder(limits: limits)
        stream.append([0x01, 0xa3, 0x61, 0x62, 0x63])
        #expect(try stream.nextValue() == 1)
        #expect(try stream.nextValue() == "abc")
    }

    @Test("a value of many maps with large keys converts without describing every key")
    func mapKeysDescribedOnlyForErrors() throws {
        // 8,000 maps, each with an array of 200 integers as its key. Each value's coding
        // path once described its key as text eagerly, whether or not an error came:
        // about 10 s here in a debug build, against 1 s now.
        let key = MessagePackValue.array((0..<200).map { .int(Int64($0)) })
        let value = MessagePackValue.array(Array(repeating: .map([(key, .bool(true))]), count: 8_000))
        let bytes = try value.bytes()
        let start = ContinuousClock.now
        #expect(try MessagePackValue(bytes: bytes) == value)
        // Generous for a debug build on a busy machine; the eager paths took far longer.
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
