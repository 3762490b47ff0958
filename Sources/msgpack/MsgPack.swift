import ArgumentParser
import MessagePack

/// The `msgpack` tool: converts between MessagePack bytes and tagged JSON.
///
/// The entry point lives in this file rather than `main.swift` because `@main`
/// is not allowed in a module with a `main.swift` once it has more than one file.
@main
struct MsgPack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "msgpack",
        abstract: "Convert between MessagePack and tagged JSON.",
        discussion: """
            Tagged JSON is plain JSON in which an object with one key starting with '$' \
            stands for what JSON cannot say, so that nothing is lost either way:

              {"$bin": "00ff"}                                  binary
              {"$ext": {"type": 5, "data": "0102"}}             extension
              {"$timestamp": {"seconds": 0, "nanoseconds": 0}}  timestamp (ext -1)
              {"$float32": 1.5}  {"$float32": "nan"}            float 32
              {"$float64": "inf"}                               non-finite float 64
              {"$map": [[1, "one"], [null, "nil"]]}             map with non-string keys

            Integers have no '.' or 'e' (7, -7); float 64 values always do (7.0, 1e+300). \
            Objects keep their keys in the order written.

            Examples:
              echo '{"id": 7, "tags": ["a", "b"]}' | msgpack encode --hex
              echo '82a2696407a47461677392a161a162' | msgpack decode --hex
              msgpack encode order.json > order.msgpack
              msgpack decode --pretty order.msgpack
            """,
        subcommands: [Encode.self, Decode.self]
    )
}

/// `msgpack encode`: tagged JSON in, MessagePack out.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read tagged JSON and write it as MessagePack.",
        discussion: """
            Examples:
              echo '[1, 2.5, {"$bin": "ff"}]' | msgpack encode --hex     # 9301cb4004000000000000c401ff
              msgpack encode value.json > value.msgpack
            """
    )

    @Flag(name: .long, help: "Write lowercase hex and a newline instead of raw bytes.")
    var hex = false

    @Argument(help: "The JSON file to read, or '-' for standard input (the default).")
    var file: String?

    func run() throws {
        try reportingErrors {
            let value = try MessagePackValue(json: try readInput(file))
            let bytes = try value.bytes()
            if hex {
                try writeOutput(Array((_hexString(bytes) + "\n").utf8))
            } else {
                try writeOutput(bytes)
            }
        }
    }
}

/// `msgpack decode`: MessagePack in, tagged JSON out.
struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read MessagePack and write it as tagged JSON.",
        discussion: """
            Binary, extensions and timestamps come out as tagged objects, so `msgpack encode` \
            turns the output back into the same bytes.

            Examples:
              echo 'c70cff000000000000003afff4417f' | msgpack decode --hex
              msgpack decode --pretty value.msgpack
            """
    )

    @Flag(name: .long, help: "The input is hex text (whitespace is ignored) rather than raw bytes.")
    var hex = false

    @Flag(name: .long, help: "Indent the JSON by 2 spaces, one element per line.")
    var pretty = false

    @Argument(help: "The MessagePack file to read, or '-' for standard input (the default).")
    var file: String?

    func run() throws {
        try reportingErrors {
            var input = try readInput(file)
            if hex { input = try bytes(fromHexInput: input) }
            let value = try MessagePackValue(bytes: input)
            try writeOutput(Array((value.json(prettyPrinted: pretty) + "\n").utf8))
        }
    }
}
