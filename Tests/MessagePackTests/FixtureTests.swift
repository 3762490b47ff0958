import Foundation
import MessagePack
import Testing

@Suite("Fixtures written by Python's msgpack")
struct FixtureTests {
    @Test("every file in Fixtures/messagepack is a readable vector")
    func allLoad() {
        #expect(Fixture.loaded.problems.isEmpty, "\(Fixture.loaded.problems)")
        #expect(Fixture.all.count >= 150, "found \(Fixture.all.count) vectors in \(Fixture.directory.path)")
    }

    @Test("the bytes parse to the vector's value, and the value packs to exactly the bytes", arguments: Fixture.all)
    func dynamicValue(_ fixture: Fixture) throws {
        #expect(try MessagePackValue(bytes: fixture.bytes) == fixture.value)
        #expect(try hex(fixture.value.bytes()) == hex(fixture.bytes))
    }

    @Test("decoding as the vector's Swift type agrees with JSONDecoder; encoding gives the same bytes", arguments: Fixture.all)
    func typedValue(_ fixture: Fixture) throws {
        guard let check = TypedCheck.registry[fixture.type] else {
            Issue.record("no Swift type registered for \(fixture.type)")
            return
        }
        let problems = try check.run(fixture.bytes, fixture.json, fixture.options)
        #expect(problems.isEmpty, "\(problems)")
    }

    /// Every prefix of a vector is a truncated value. Vectors up to 16 KiB are cut at
    /// every byte; longer ones (the 64 Ki boundaries) at every byte of their first and
    /// last 1 KiB and at 512 places between, since each cut rescans the whole value.
    @Test("cut short at any byte, a vector is a thrown error", arguments: Fixture.all)
    func truncated(_ fixture: Fixture) throws {
        let bytes = fixture.bytes
        let cuts = bytes.count <= 16384
            ? Array(0..<bytes.count)
            : Array(0..<1024) + Array(stride(from: 1024, to: bytes.count - 1024, by: (bytes.count - 2048) / 512 + 1))
                + Array(bytes.count - 1024..<bytes.count)
        let decoder = fixture.options.decoder()
        bytes.withUnsafeBytes { raw in
            for cut in cuts {
                // The prefix is a view of the vector: cutting copies nothing.
                let prefix = UnsafeRawBufferPointer(rebasing: raw[..<cut])
                #expect(throws: DecodingError.self, "cut at \(cut) of \(bytes.count)") {
                    try decoder.decode(MessagePackValue.self, from: prefix)
                }
            }
        }
        // And as the vector's own Swift type, at a sample of cuts.
        for cut in cuts where cut % 13 == 0 || bytes.count < 64 {
            #expect(throws: DecodingError.self, "cut at \(cut) of \(bytes.count)") {
                try TypedCheck.registry[fixture.type]?.run(Array(bytes[..<cut]), nil, fixture.options)
            }
        }
    }

    @Test("a vector followed by one more byte is an error", arguments: Fixture.all.prefix(40))
    func trailing(_ fixture: Fixture) throws {
        let error = #expect(throws: DecodingError.self) { try MessagePackValue(bytes: fixture.bytes + [0xc0]) }
        #expect(String(describing: error).contains("1 byte follows the value"))
    }
}
