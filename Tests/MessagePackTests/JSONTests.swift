import Foundation
import MessagePack
import Testing

@Suite("Tagged JSON: MessagePackValue(json:) and json(prettyPrinted:)")
struct JSONTests {
    /// Fixtures/messagepack, found from this source file's place in the package.
    static let fixtureDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/messagepack")

    /// The names of every vector file, sorted.
    static let fixtureNames: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtureDirectory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted()
    }()

    /// A fixture file read with the reader under test: JSONSerialization would lose key order.
    static func fixture(_ name: String) throws -> MessagePackValue {
        let url = fixtureDirectory.appendingPathComponent(name)
        let data = try #require(FileManager.default.contents(atPath: url.path), "cannot read \(url.path)")
        return try MessagePackValue(json: [UInt8](data))
    }

    /// The bytes of lowercase or uppercase hex text (test input is trusted).
    static func bytes(fromHex hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    /// The error thrown when parsing `text`, or `nil` when it parses.
    static func parseError(_ text: String) -> MessagePackJSONError? {
        do {
            _ = try MessagePackValue(json: text)
            return nil
        } catch let error as MessagePackJSONError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    // MARK: Fixtures

    @Test("the fixture folder has its vectors")
    func fixturesFound() {
        #expect(Self.fixtureNames.count >= 150, "found \(Self.fixtureNames.count) files in \(Self.fixtureDirectory.path)")
    }

    @Test("every fixture's value is its bytes, and printing then re-parsing keeps it", arguments: fixtureNames)
    func fixtureRoundTrip(_ name: String) throws {
        let file = try Self.fixture(name)
        guard case .string(let hex)? = file["msgpack"], let value = file["value"] else {
            Issue.record("\(name) has no \"msgpack\" string or \"value\"")
            return
        }
        #expect(try MessagePackValue(bytes: Self.bytes(fromHex: hex)) == value)

        for pretty in [false, true] {
            let text = value.json(prettyPrinted: pretty)
            let reparsed = try MessagePackValue(json: text)
            #expect(reparsed == value, "pretty: \(pretty)")
            // == cannot tell 0.0 from -0.0; equal text can.
            #expect(reparsed.json(prettyPrinted: pretty) == text, "pretty: \(pretty)")
        }
    }

    @Test("the fixture files keep their keys in the order written")
    func fixtureKeyOrder() throws {
        guard case .map(let pairs) = try Self.fixture("struct-stamps.json") else {
            Issue.record("struct-stamps.json is not an object")
            return
        }
        #expect(pairs.map(\.key) == ["description", "type", "msgpack", "value"])
        guard case .map(let fields)? = try Self.fixture("struct-stamps.json")["value"] else {
            Issue.record("struct-stamps.json has no value object")
            return
        }
        #expect(fields.map(\.key) == ["when", "ext", "date", "value"])
    }

    // MARK: Reading

    @Test("integers are .uint or .int by sign, over the whole range; '.' or 'e' makes a double")
    func numbers() throws {
        func parsed(_ text: String) throws -> String { "\(try MessagePackValue(json: text))" }
        // String(describing:) names the case, which == would hide (.int(5) == .uint(5)).
        #expect(try parsed("0") == "uint(0)")
        #expect(try parsed("18446744073709551615") == "uint(18446744073709551615)")
        #expect(try parsed("-1") == "int(-1)")
        #expect(try parsed("-9223372036854775808") == "int(-9223372036854775808)")
        #expect(try parsed("1.0") == "double(1.0)")
        #expect(try parsed("1e2") == "double(100.0)")
        #expect(try parsed("-2.5E-3") == "double(-0.0025)")
        #expect(try parsed("true") == "bool(true)")
        #expect(try parsed(#"{"$float32": 1}"#) == "float(1.0)")
        #expect(try parsed(#"{"$float64": 1}"#) == "double(1.0)")
    }

    @Test("tagged objects become binary, extension, timestamp, float and any-key maps")
    func taggedObjects() throws {
        let text = """
            [{"$bin": "00FFa0"}, {"$ext": {"data": "0102", "type": -128}},
             {"$timestamp": {"seconds": -1, "nanoseconds": 999999999}},
             {"$float32": 3.4028234663852886e+38}, {"$float32": "-inf"}, {"$float64": "nan"},
             {"$map": [[1, "one"], ["$bin", null], [[], {}]]}, {"$map": []}]
            """
        let expected: MessagePackValue = [
            .binary([0x00, 0xFF, 0xA0]), .extension(MessagePackExtension(type: -128, data: [1, 2])),
            .timestamp(MessagePackTimestamp(seconds: -1, nanoseconds: 999_999_999)),
            .float(.greatestFiniteMagnitude), .float(-.infinity), .double(.nan),
            [1: "one", "$bin": nil, []: [:]], [:],
        ]
        #expect(try MessagePackValue(json: text) == expected)
    }

    @Test("strings: every escape, surrogate pairs, UTF-8 kept as is")
    func strings() throws {
        #expect(try MessagePackValue(json: #""\"\\\/\b\f\n\r\t\u0041\u00e9\uD83D\uDE00""#) == "\"\\/\u{8}\u{C}\n\r\tAé😀")
        #expect(try MessagePackValue(json: "\"日本語 👨‍👩‍👧\"") == "日本語 👨‍👩‍👧")
        #expect(try MessagePackValue(json: #""\u0000""#) == "\u{0}")
    }

    @Test("objects keep their keys in order, duplicates included; whitespace and a BOM are skipped")
    func objects() throws {
        #expect(try MessagePackValue(json: #" { "b" : 1 , "a" : [ ] , "b" : null } "#) == ["b": 1, "a": [], "b": nil])
        #expect(try MessagePackValue(json: [0xEF, 0xBB, 0xBF] + Array("\t\r\n[]".utf8)) == [])
    }

    @Test("512 levels of nesting are allowed; 513 are not")
    func depthLimit() throws {
        let deepest = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try MessagePackValue(json: deepest) }
        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        #expect(Self.parseError(tooDeep)?.description == "Invalid JSON at offset 512: nesting deeper than 512 arrays and objects")
    }

    @Test("hostile nesting (100,000 times the argument) is an error, not a stack overflow",
          arguments: ["[", #"{"a":"#, #"{"$map":[["#, #"{"$ext":"#])
    func hostileNesting(_ opening: String) {
        let text = String(repeating: opening, count: 100_000)
        #expect(Self.parseError(text)?.message == "nesting deeper than 512 arrays and objects")
    }

    @Test("invalid text is an error with a message and the offset of the problem", arguments: [
        (#"{"a": 1 "b": 2}"#, "Invalid JSON at offset 8: expected ',' or '}'"),
        ("[1, 2", "Invalid JSON at offset 5: unexpected end of input, expected ',' or ']'"),
        ("[1,]", "Invalid JSON at offset 3: unexpected ']', expected a value"),
        (#"{"a":1,}"#, "Invalid JSON at offset 7: expected a string key"),
        ("{1: 2}", "Invalid JSON at offset 1: expected a string key"),
        (#"{"a" 1}"#, "Invalid JSON at offset 5: expected ':'"),
        ("", "Invalid JSON at offset 0: unexpected end of input, expected a value"),
        ("1 2", "Invalid JSON at offset 2: unexpected '2' after the value"),
        ("tru", "Invalid JSON at offset 0: invalid literal, expected true"),
        ("[nil]", "Invalid JSON at offset 1: invalid literal, expected null"),
        ("fals", "Invalid JSON at offset 0: invalid literal, expected false"),
        ("[1]\u{C3}", "Invalid JSON at offset 3: unexpected byte 0xc3 after the value"),
        ("'a'", "Invalid JSON at offset 0: unexpected ''', expected a value"),
        ("01", "Invalid JSON at offset 1: a number cannot have a leading zero"),
        ("1.", "Invalid JSON at offset 2: unexpected end of input, expected a digit"),
        ("-", "Invalid JSON at offset 1: unexpected end of input, expected a digit"),
        ("1e+x", "Invalid JSON at offset 3: expected a digit"),
        ("+1", "Invalid JSON at offset 0: unexpected '+', expected a value"),
        ("NaN", "Invalid JSON at offset 0: unexpected 'N', expected a value"),
        (#""abc"#, "Invalid JSON at offset 0: unterminated string"),
        ("\"a\nb\"", "Invalid JSON at offset 2: control character byte 0x0a in a string must be escaped"),
        (#""\x""#, "Invalid JSON at offset 1: invalid escape \\x"),
        (#""\u12G4""#, "Invalid JSON at offset 5: \\u must be followed by 4 hex digits"),
    ])
    func invalidSyntax(_ text: String, _ expected: String) {
        #expect(Self.parseError(text)?.description == expected)
    }

    @Test("a lone surrogate is an error", arguments: [
        (#""\uD800""#, "Invalid JSON at offset 1: lone high surrogate \\uD800"),
        (#""ab\uDBFFx""#, "Invalid JSON at offset 3: lone high surrogate \\uDBFF"),
        (#""\uD800\u0041""#, "Invalid JSON at offset 1: lone high surrogate \\uD800"),
        (#""\uDC00""#, "Invalid JSON at offset 1: lone low surrogate \\uDC00"),
        (#""\uDE00\uD83D""#, "Invalid JSON at offset 1: lone low surrogate \\uDE00"),
    ])
    func loneSurrogate(_ text: String, _ expected: String) {
        #expect(Self.parseError(text)?.description == expected)
    }

    @Test("an integer beyond Int64.min…UInt64.max is an error, not a silent double", arguments: [
        "18446744073709551616", "-9223372036854775809", "99999999999999999999999", "[1, -18446744073709551615]",
    ])
    func integerOverflow(_ text: String) throws {
        let error = try #require(Self.parseError(text))
        #expect(error.message.hasPrefix("integer "), "\(error)")
        #expect(error.message.contains("is outside -9223372036854775808…18446744073709551615"), "\(error)")
    }

    @Test("a float beyond its range is an error, not infinity", arguments: ["1e400", "-1e309", #"{"$float32": 1e39}"#, #"{"$float64": 2e308}"#])
    func floatOverflow(_ text: String) throws {
        let error = try #require(Self.parseError(text))
        #expect(error.message.contains("beyond the range of float"), "\(error)")
    }

    @Test("invalid UTF-8 in a string is an error at the string")
    func invalidUTF8() throws {
        let error = try #require(throws: MessagePackJSONError.self) {
            try MessagePackValue(json: Array(#"["ok", "a"#.utf8) + [0xC3, 0x28] + Array(#""]"#.utf8))
        }
        #expect(error.description == "Invalid JSON at offset 7: the string is not valid UTF-8")
    }

    @Test("'$' keys must be well-formed tags", arguments: [
        (#"{"$foo": 1}"#, 1, "unknown tag \"$foo\""),
        (#"{"a": 1, "$bin": "00"}"#, 9, "key \"$bin\" starts with '$'"),
        (#"{"$bin": "00", "a": 1}"#, 13, "a tagged object ({\"$bin\": …}) must have exactly one key"),
        (#"{"$bin": "0"}"#, 9, "\"$bin\" must be a string of hex digit pairs"),
        (#"{"$bin": "zz"}"#, 9, "\"$bin\" must be a string of hex digit pairs"),
        (#"{"$bin": 12}"#, 9, "\"$bin\" must be a string of hex digit pairs"),
        (#"{"$ext": {"type": 128, "data": ""}}"#, 9, "\"$ext\" must be"),
        (#"{"$ext": {"type": 1}}"#, 9, "\"$ext\" must be"),
        (#"{"$ext": {"type": 1, "data": "", "x": 0}}"#, 9, "\"$ext\" must be"),
        (#"{"$timestamp": {"seconds": 1, "nanoseconds": 1000000000}}"#, 15, "\"$timestamp\" must be"),
        (#"{"$timestamp": {"seconds": 1.0, "nanoseconds": 0}}"#, 15, "\"$timestamp\" must be"),
        (#"{"$float32": "NaN"}"#, 13, "\"$float32\" must be a number, \"nan\", \"inf\" or \"-inf\""),
        (#"{"$float64": true}"#, 13, "\"$float64\" must be a number, \"nan\", \"inf\" or \"-inf\""),
        (#"{"$map": {"a": 1}}"#, 9, "\"$map\" must be an array of [key, value] pairs"),
        (#"{"$map": [[1, 2, 3]]}"#, 9, "\"$map\" must be an array of [key, value] pairs"),
    ])
    func badTags(_ text: String, _ offset: Int, _ message: String) throws {
        let error = try #require(Self.parseError(text))
        #expect(error.offset == offset, "\(error)")
        #expect(error.message.hasPrefix(message), "\(error)")
    }

    // MARK: Writing

    @Test("scalars print as the fixtures write them", arguments: [
        (MessagePackValue.nil, "null"), (true, "true"), (.int(-5), "-5"), (.int(7), "7"), (.uint(.max), "18446744073709551615"),
        (.int(.min), "-9223372036854775808"), (.double(1), "1.0"), (.double(0.1), "0.1"), (.double(-0.0), "-0.0"),
        (.double(1e300), "1e+300"), (.double(.leastNonzeroMagnitude), "5e-324"), (.double(.greatestFiniteMagnitude), "1.7976931348623157e+308"),
        (.double(.nan), #"{"$float64":"nan"}"#), (.double(.infinity), #"{"$float64":"inf"}"#),
        (.double(-.infinity), #"{"$float64":"-inf"}"#), (.float(1.5), #"{"$float32":1.5}"#),
        (.float(.greatestFiniteMagnitude), #"{"$float32":3.4028235e+38}"#), (.float(.leastNonzeroMagnitude), #"{"$float32":1e-45}"#),
        (.float(.nan), #"{"$float32":"nan"}"#), (.binary([0, 0xAB, 0xFF]), #"{"$bin":"00abff"}"#), (.binary([]), #"{"$bin":""}"#),
        (.extension(MessagePackExtension(type: -1, data: [1])), #"{"$ext":{"type":-1,"data":"01"}}"#),
        (.timestamp(MessagePackTimestamp(seconds: -3, nanoseconds: 5)), #"{"$timestamp":{"seconds":-3,"nanoseconds":5}}"#),
    ])
    func scalars(_ value: MessagePackValue, _ expected: String) throws {
        #expect(value.json() == expected)
        let reparsed = try MessagePackValue(json: expected)
        #expect(reparsed == value)
        #expect(reparsed.json() == expected)
    }

    @Test("strings escape quotes, backslashes and control characters, nothing else")
    func escapes() {
        let value: MessagePackValue = "q\"b\\s/\n\r\t\u{8}\u{C}\u{0}\u{1F}\u{7F}é\u{2028}😀"
        #expect(value.json() == #""q\"b\\s/\n\r\t\b\f\u0000\u001f\#u{7F}é\#u{2028}😀""#)
    }

    @Test("a map is an object only when every key is a string without a leading '$'")
    func maps() {
        #expect(MessagePackValue.map([]).json() == "{}")
        #expect(MessagePackValue.array([]).json() == "[]")
        #expect((["b": 1, "a": [true]] as MessagePackValue).json() == #"{"b":1,"a":[true]}"#)
        #expect((["a": 1, "$bin": "x"] as MessagePackValue).json() == #"{"$map":[["a",1],["$bin","x"]]}"#)
        #expect(([1: "one", nil: [:]] as MessagePackValue).json() == #"{"$map":[[1,"one"],[null,{}]]}"#)
        #expect((["a": ["$": 1]] as MessagePackValue).json() == #"{"a":{"$map":[["$",1]]}}"#)
    }

    @Test("pretty printing indents by 2 spaces")
    func pretty() {
        let value: MessagePackValue = ["name": "tea", "tags": ["a", []], "raw": .binary([1]), "empty": [:], "keys": [1: 2.5]]
        #expect(value.json(prettyPrinted: true) == """
            {
              "name": "tea",
              "tags": [
                "a",
                []
              ],
              "raw": {
                "$bin": "01"
              },
              "empty": {},
              "keys": {
                "$map": [
                  [
                    1,
                    2.5
                  ]
                ]
              }
            }
            """)
        #expect(MessagePackValue.uint(3).json(prettyPrinted: true) == "3")
    }

    @Test("doubles print in the shortest text that reads back bit for bit, with '.' or 'e'")
    func doubleRoundTrip() throws {
        var random = SplitMix64(seed: 0x5EED)
        var doubles: [Double] = [0, 1, -1, 0.1, 1e16, 123456789012345680, .ulpOfOne, .leastNormalMagnitude, .pi]
        for _ in 0..<2000 {
            let double = Double(bitPattern: random.next())
            if double.isFinite { doubles.append(double) }
        }
        for double in doubles {
            let text = MessagePackValue.double(double).json()
            #expect(text.contains(".") || text.contains("e"), "\(text)")
            guard case .double(let back) = try MessagePackValue(json: text) else {
                Issue.record("\(text) did not read back as a double")
                continue
            }
            #expect(back.bitPattern == double.bitPattern, "\(text)")
        }
    }

    @Test("float32 values read back bit for bit, from their own text and from float64 text")
    func floatRoundTrip() throws {
        var random = SplitMix64(seed: 0xF10A7)
        for _ in 0..<2000 {
            let float = Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))
            guard float.isFinite else { continue }
            // The fixtures write a float32 as its exact value printed as a float64.
            for text in [MessagePackValue.float(float).json(), #"{"$float32": \#(Double(float))}"#] {
                guard case .float(let back) = try MessagePackValue(json: text) else {
                    Issue.record("\(text) did not read back as a float")
                    continue
                }
                #expect(back.bitPattern == float.bitPattern, "\(text)")
            }
        }
    }
}
