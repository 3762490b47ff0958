import Foundation
import MessagePack
import Testing

@Suite("The msgpack command-line tool")
struct ToolTests {
    /// What one run of the tool did.
    struct Run {
        var status: Int32
        var stdout: [UInt8]
        var stderr: String
        var output: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// The `msgpack` executable, which `swift build` puts beside the test binary.
    static let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("msgpack")

    /// Runs `msgpack` with `arguments`, `input` on its standard input.
    ///
    /// Through `posix_spawn` and files, not Foundation's `Process`: `Process` closes
    /// its pipes and its own socket on another thread some time after the exit, and
    /// the descriptor check of the tests that run next (`make test`) would see them
    /// vanish.
    func run(_ arguments: [String], input: [UInt8] = []) throws -> Run {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.executable.path),
            "msgpack is not at \(Self.executable.path): run `swift build` before `swift test`")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("msgpack-tool-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputFile = directory.appendingPathComponent("stdin")
        let outputFile = directory.appendingPathComponent("stdout")
        let errorFile = directory.appendingPathComponent("stderr")
        try Data(input).write(to: inputFile)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputFile.path, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([Self.executable.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, Self.executable.path, &actions, nil, argv, environ)
        try #require(spawned == 0, "posix_spawn failed: \(String(cString: strerror(spawned)))")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        // WIFEXITED/WEXITSTATUS are macros Swift does not import.
        let exited = status & 0x7f == 0
        return Run(
            status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
            stdout: [UInt8](try Data(contentsOf: outputFile)),
            stderr: String(decoding: try Data(contentsOf: errorFile), as: UTF8.self))
    }

    func run(_ arguments: [String], input: String) throws -> Run {
        try run(arguments, input: Array(input.utf8))
    }

    /// The "msgpack" hex of a fixture file.
    func fixtureHex(_ name: String) throws -> String {
        let file = try JSONTests.fixture(name)
        guard case .string(let hex)? = file["msgpack"] else {
            Issue.record("\(name) has no \"msgpack\" string")
            return ""
        }
        return hex
    }

    @Test("decode --hex prints fixtures as tagged JSON", arguments: [
        ("timestamp96-year-9999.json", #"{"$timestamp":{"seconds":253402300799,"nanoseconds":0}}"#),
        ("timestamp96-int64-min.json", #"{"$timestamp":{"seconds":-9223372036854775808,"nanoseconds":0}}"#),
        ("timestamp96-int64-max.json", #"{"$timestamp":{"seconds":9223372036854775807,"nanoseconds":999999999}}"#),
        ("timestamp96-minus-one-ns.json", #"{"$timestamp":{"seconds":-1,"nanoseconds":999999999}}"#),
        ("timestamp96-minus-one.json", #"{"$timestamp":{"seconds":-1,"nanoseconds":0}}"#),
        ("timestamp96-past-34-bits.json", #"{"$timestamp":{"seconds":17179869184,"nanoseconds":0}}"#),
        ("bin8-uint8-array.json", #"{"$bin":"007fff"}"#),
        ("bin8-empty.json", #"{"$bin":""}"#),
        ("ext8-3-bytes.json", #"{"$ext":{"type":-5,"data":"000102"}}"#),
        ("ext8-17-bytes.json", #"{"$ext":{"type":9,"data":"000102030405060708090a0b0c0d0e0f10"}}"#),
        ("fixmap-mixed-keys.json", #"{"$map":[[1,"int"],["s","str"],[-1,"negative"],[null,"nil"],[1.5,"float64"],[{"$bin":"00ff"},"bin"],[false,"bool"]]}"#),
        ("fixarray-mixed-floats.json", #"[{"$float32":1.5},1.5,{"$float32":"nan"},{"$float64":"-inf"}]"#),
    ])
    func decodeHex(_ name: String, _ expected: String) throws {
        let result = try run(["decode", "--hex"], input: try fixtureHex(name))
        #expect(result.stderr == "")
        #expect(result.status == 0)
        #expect(result.output == expected + "\n")
    }

    @Test("decode --pretty indents, and hex input may hold whitespace")
    func decodePretty() throws {
        let result = try run(["decode", "--hex", "--pretty"], input: "82 a1 61 c4 01 ff\n a1 62 92 01 c0\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output == """
            {
              "a": {
                "$bin": "ff"
              },
              "b": [
                1,
                null
              ]
            }

            """)
    }

    @Test("encode --hex of a fixture's tagged JSON prints the fixture's hex", arguments: [
        "timestamp96-year-9999.json", "timestamp96-int64-min.json", "timestamp64-2023.json", "timestamp32-zero.json",
        "bin8-uint8-array.json", "ext8-3-bytes.json", "fixext8-type-minus-128.json", "fixmap-mixed-keys.json",
        "fixmap-dollar-key.json", "fixarray-mixed-floats.json", "float32-max.json", "uint64-max.json", "int64-min.json",
        "utf8-escapes.json", "struct-stamps.json",
    ])
    func encodeHex(_ name: String) throws {
        let file = try JSONTests.fixture(name)
        let value = try #require(file["value"])
        let result = try run(["encode", "--hex"], input: value.json(prettyPrinted: true))
        #expect(result.stderr == "")
        #expect(result.status == 0)
        #expect(result.output == (try fixtureHex(name)) + "\n")
    }

    @Test("encode writes raw bytes; decode reads raw bytes from a file")
    func rawBytesAndFiles() throws {
        let encoded = try run(["encode"], input: #"{"id": 7, "raw": {"$bin": "ff"}, "when": {"$timestamp": {"seconds": 1, "nanoseconds": 0}}}"#)
        #expect(encoded.status == 0, "\(encoded.stderr)")
        #expect(encoded.stdout == [0x83, 0xA2, 0x69, 0x64, 0x07, 0xA3, 0x72, 0x61, 0x77, 0xC4, 0x01, 0xFF,
                                   0xA4, 0x77, 0x68, 0x65, 0x6E, 0xD6, 0xFF, 0x00, 0x00, 0x00, 0x01])

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("msgpack-tool-test-\(UUID().uuidString).msgpack")
        try Data(encoded.stdout).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let decoded = try run(["decode", file.path])
        #expect(decoded.status == 0, "\(decoded.stderr)")
        #expect(decoded.output == #"{"id":7,"raw":{"$bin":"ff"},"when":{"$timestamp":{"seconds":1,"nanoseconds":0}}}"# + "\n")
    }

    @Test("bad input exits non-zero with one line on stderr", arguments: [
        (["decode", "--hex"], "zz", "msgpack: invalid hex input: 'z' at offset 0 is not a hex digit"),
        (["decode", "--hex"], "0 1 2", "msgpack: invalid hex input: an odd number of hex digits"),
        (["decode", "--hex"], "c403ff", nil),          // bin8 of 3 bytes holding 1
        (["decode", "--hex"], "c1", nil),              // the reserved byte
        (["decode", "--hex"], "", nil),                // nothing at all
        (["decode", "--hex"], "c0c0", nil),            // bytes after the value
        (["decode", "--hex"], "a2c328", nil),          // invalid UTF-8
        (["decode", "/nonexistent/file.msgpack"], "", "msgpack: cannot open /nonexistent/file.msgpack: No such file or directory"),
        (["encode"], #"{"a": 1 "b": 2}"#, "msgpack: Invalid JSON at offset 8: expected ',' or '}'"),
        (["encode"], #""\uD800""#, "msgpack: Invalid JSON at offset 1: lone high surrogate \\uD800"),
        (["encode"], "18446744073709551616", nil),
        (["encode", "--hex"], "", "msgpack: Invalid JSON at offset 0: unexpected end of input, expected a value"),
    ] as [([String], String, String?)])
    func badInput(_ arguments: [String], _ input: String, _ expected: String?) throws {
        let result = try run(arguments, input: input)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "not one line: \(result.stderr)")
        #expect(result.stderr.hasPrefix("msgpack: "), "\(result.stderr)")
        if let expected { #expect(result.stderr == expected + "\n") }
    }

    @Test("raw truncated bytes and hostile nesting are errors too")
    func rawAndDeepInput() throws {
        // An array of 2 elements holding only 1.
        let truncated = try run(["decode"], input: [0x92, 0x01])
        #expect(truncated.status != 0)
        #expect(truncated.stderr.hasPrefix("msgpack: ") && truncated.stderr.filter { $0 == "\n" }.count == 1, "\(truncated.stderr)")

        let deep = try run(["encode"], input: String(repeating: "[", count: 100_000))
        #expect(deep.status != 0)
        #expect(deep.stderr == "msgpack: Invalid JSON at offset 512: nesting deeper than 512 arrays and objects\n")
    }

    @Test("decoding errors read as sentences, not struct dumps")
    func readableDecodingError() throws {
        let result = try run(["decode", "--hex"], input: "c403ff")
        #expect(!result.stderr.contains("Context"), "\(result.stderr)")
        #expect(!result.stderr.contains("codingPath"), "\(result.stderr)")
    }

    @Test("usage errors exit non-zero; --help describes the tool with examples")
    func usage() throws {
        let unknown = try run(["encode", "--bogus"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("--bogus"))

        let help = try run(["--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("Convert between MessagePack and tagged JSON."))
        #expect(help.output.contains("Examples:"))
        #expect(help.output.contains("encode"))
        #expect(help.output.contains("decode"))
    }
}
