/// Tagged JSON: a lossless JSON text form of ``MessagePackValue``.
///
/// Plain JSON cannot say everything MessagePack can (binary, extensions, float 32,
/// non-string map keys), so those values are written as objects with one key that
/// starts with `$`:
///
/// | JSON | value |
/// |---|---|
/// | `null`, `true`, `false`, `"text"` | `.nil`, `.bool`, `.string` |
/// | `7`, `-7` (no `.`, `e` or `E`) | `.uint`, `.int` (exact, from Int64.min to UInt64.max) |
/// | `1.0`, `1e+300` | `.double` |
/// | `[…]` | `.array` |
/// | `{"key": …}` (no key starts with `$`) | `.map` with string keys, in the order written |
/// | `{"$bin": "00ff"}` | `.binary` |
/// | `{"$ext": {"type": 5, "data": "0102"}}` | `.extension` |
/// | `{"$timestamp": {"seconds": 1, "nanoseconds": 0}}` | `.timestamp` |
/// | `{"$float32": 1.5}`, `{"$float32": "nan"}` (or `"inf"`, `"-inf"`) | `.float` |
/// | `{"$float64": "nan"}` (or `"inf"`, `"-inf"`, a number) | `.double` |
/// | `{"$map": [[1, "one"], …]}` | `.map` with any keys, in order |
///
/// ```swift
/// let value = try MessagePackValue(json: #"{"id": 7, "raw": {"$bin": "ff"}}"#)
/// value.json()   // {"id":7,"raw":{"$bin":"ff"}}
/// ```
extension MessagePackValue {
    /// The deepest nesting of arrays and objects that the JSON reader accepts.
    ///
    /// The reader recurses once per level, so hostile input such as 100,000 `[`
    /// must stop here rather than exhaust the stack.
    public static let maxJSONDepth = 512

    /// Parses tagged JSON text.
    /// - Throws: ``MessagePackJSONError`` with the byte offset of the problem.
    public init(json: String) throws {
        try self.init(json: Array(json.utf8))
    }

    /// Parses tagged JSON held as UTF-8 bytes (a leading byte order mark is skipped).
    /// - Throws: ``MessagePackJSONError`` with the byte offset of the problem.
    public init(json: [UInt8]) throws {
        self = try json.withUnsafeBufferPointer { buffer throws(MessagePackJSONError) in
            var reader = _JSONReader(bytes: buffer)
            return try reader.readDocument()
        }
    }

    /// The value as tagged JSON text.
    /// - Parameter prettyPrinted: `false` (the default) for one compact line, `true`
    ///   for one element per line with 2-space indentation.
    public func json(prettyPrinted: Bool = false) -> String {
        var writer = _JSONWriter(pretty: prettyPrinted)
        writer.write(self, indent: 0)
        return String(decoding: writer.output, as: UTF8.self)
    }
}

/// Text that is not valid tagged JSON, and where the problem starts.
public struct MessagePackJSONError: Error, CustomStringConvertible, Hashable, Sendable {
    /// What is wrong, e.g. "expected ',' or '}'".
    public var message: String
    /// The offset of the problem in the UTF-8 bytes of the text, from 0.
    public var offset: Int

    /// An error saying `message` about the text at byte `offset`.
    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// `Invalid JSON at offset <offset>: <message>`.
    public var description: String { "Invalid JSON at offset \(offset): \(message)" }
}

// MARK: - Reading

/// A recursive-descent reader of tagged JSON over UTF-8 bytes.
///
/// It holds a buffer pointer, so it lives only inside `withUnsafeBufferPointer`.
struct _JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    /// Arrays and objects open at the current position.
    var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// One value, with only whitespace around it.
    mutating func readDocument() throws(MessagePackJSONError) -> MessagePackValue {
        // RFC 8259 lets a reader ignore a UTF-8 byte order mark; editors on some systems write one.
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
        let value = try readValue()
        skipWhitespace()
        if index < bytes.count { throw error("unexpected \(describeByte(at: index)) after the value") }
        return value
    }

    mutating func readValue() throws(MessagePackJSONError) -> MessagePackValue {
        skipWhitespace()
        guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try readObject()
        case UInt8(ascii: "["): return .array(try readArray())
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): try readLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try readLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try readLiteral("null"); return .nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        default: throw error("unexpected \(describeByte(at: index)), expected a value")
        }
    }

    // MARK: Containers

    /// Counts one more open container, refusing to go past ``MessagePackValue/maxJSONDepth``.
    mutating func enter() throws(MessagePackJSONError) {
        depth += 1
        if depth > MessagePackValue.maxJSONDepth {
            throw error("nesting deeper than \(MessagePackValue.maxJSONDepth) arrays and objects")
        }
    }

    mutating func readArray() throws(MessagePackJSONError) -> [MessagePackValue] {
        try enter()
        index += 1  // "["
        var elements: [MessagePackValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { depth -= 1; return elements }
        while true {
            elements.append(try readValue())
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            if consume(UInt8(ascii: "]")) { break }
            throw error(index < bytes.count ? "expected ',' or ']'" : "unexpected end of input, expected ',' or ']'")
        }
        depth -= 1
        return elements
    }

    /// A plain object (a map with string keys), or a tagged object when its first key starts with `$`.
    mutating func readObject() throws(MessagePackJSONError) -> MessagePackValue {
        try enter()
        index += 1  // "{"
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = []
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { depth -= 1; return .map(pairs) }
        while true {
            let keyOffset = index
            let key = try readKey()
            if key.hasPrefix("$") {
                // A "$" key is only a tag, and a tag is alone: the writer puts any map
                // with a "$" key in {"$map": …}, so nothing is ambiguous.
                guard pairs.isEmpty else {
                    throw error("key \(quoted(key)) starts with '$'; write this map as {\"$map\": [[key, value], …]}", at: keyOffset)
                }
                let value = try readTagged(key, keyOffset: keyOffset)
                skipWhitespace()
                guard consume(UInt8(ascii: "}")) else {
                    throw error(index < bytes.count
                        ? "a tagged object ({\"\(key)\": …}) must have exactly one key; expected '}'"
                        : "unexpected end of input, expected '}'")
                }
                depth -= 1
                return value
            }
            pairs.append((.string(key), try readValue()))
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { skipWhitespace(); continue }
            if consume(UInt8(ascii: "}")) { break }
            throw error(index < bytes.count ? "expected ',' or '}'" : "unexpected end of input, expected ',' or '}'")
        }
        depth -= 1
        return .map(pairs)
    }

    /// A key and the ':' after it.
    mutating func readKey() throws(MessagePackJSONError) -> String {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            throw error(index < bytes.count ? "expected a string key" : "unexpected end of input, expected a string key")
        }
        let key = try readString()
        skipWhitespace()
        guard consume(UInt8(ascii: ":")) else {
            throw error(index < bytes.count ? "expected ':'" : "unexpected end of input, expected ':'")
        }
        return key
    }

    // MARK: Tags

    /// The value of a tagged object, after its key and ':'.
    mutating func readTagged(_ tag: String, keyOffset: Int) throws(MessagePackJSONError) -> MessagePackValue {
        skipWhitespace()
        let offset = index
        switch tag {
        case "$bin":
            guard case .string(let hex) = try readValue(), let data = _hexDecoded(hex) else {
                throw error("\"$bin\" must be a string of hex digit pairs", at: offset)
            }
            return .binary(data)
        case "$ext":
            let payload = try readValue()
            guard let fields = Self.fields(of: payload, ["type", "data"]),
                  let type = fields[0].integer(in: Int64(Int8.min)...Int64(Int8.max)),
                  case .string(let hex) = fields[1], let data = _hexDecoded(hex) else {
                throw error("\"$ext\" must be {\"type\": <-128…127>, \"data\": \"<hex>\"}", at: offset)
            }
            return .extension(MessagePackExtension(type: Int8(type), data: data))
        case "$timestamp":
            let payload = try readValue()
            guard let fields = Self.fields(of: payload, ["seconds", "nanoseconds"]),
                  let seconds = fields[0].integer(in: Int64.min...Int64.max),
                  let nanoseconds = fields[1].integer(in: 0...999_999_999) else {
                throw error("\"$timestamp\" must be {\"seconds\": <Int64>, \"nanoseconds\": <0…999999999>}", at: offset)
            }
            return .timestamp(MessagePackTimestamp(seconds: seconds, nanoseconds: UInt32(nanoseconds)))
        case "$float32":
            // Parsed from the text straight to Float: going through Double would round twice.
            if let text = try readNumberText() {
                guard let float = Float(text), float.isFinite else {
                    throw error("\(text) is beyond the range of float32", at: offset)
                }
                return .float(float)
            }
            guard let float = Self.nonFinite(try readValue(), as: Float.self) else {
                throw error("\"$float32\" must be a number, \"nan\", \"inf\" or \"-inf\"", at: offset)
            }
            return .float(float)
        case "$float64":
            if let text = try readNumberText() { return .double(try double(text, at: offset)) }
            guard let double = Self.nonFinite(try readValue(), as: Double.self) else {
                throw error("\"$float64\" must be a number, \"nan\", \"inf\" or \"-inf\"", at: offset)
            }
            return .double(double)
        case "$map":
            guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else {
                throw error("\"$map\" must be an array of [key, value] pairs", at: offset)
            }
            let elements = try readArray()
            var pairs: [(key: MessagePackValue, value: MessagePackValue)] = []
            pairs.reserveCapacity(elements.count)
            for element in elements {
                guard case .array(let pair) = element, pair.count == 2 else {
                    throw error("\"$map\" must be an array of [key, value] pairs", at: offset)
                }
                pairs.append((pair[0], pair[1]))
            }
            return .map(pairs)
        default:
            throw error("unknown tag \(quoted(tag)) (expected $bin, $ext, $timestamp, $float32, $float64 or $map)", at: keyOffset)
        }
    }

    /// The values of a plain object that has exactly the given keys, in the order asked.
    static func fields(of value: MessagePackValue, _ names: [String]) -> [MessagePackValue]? {
        guard case .map(let pairs) = value, pairs.count == names.count else { return nil }
        var result: [MessagePackValue] = []
        for name in names {
            guard let field = value[name] else { return nil }
            result.append(field)
        }
        return result
    }

    /// "nan", "inf" or "-inf" as a float of type `F`.
    static func nonFinite<F: BinaryFloatingPoint>(_ value: MessagePackValue, as _: F.Type) -> F? {
        switch value {
        case .string("nan"): return F.nan
        case .string("inf"): return F.infinity
        case .string("-inf"): return -F.infinity
        default: return nil
        }
    }

    // MARK: Scalars

    /// Reads a number, an integer when it has no '.', 'e' or 'E'.
    mutating func readNumber() throws(MessagePackJSONError) -> MessagePackValue {
        let start = index
        guard let text = try readNumberText() else { throw error("expected a number") }
        if text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            return .double(try double(text, at: start))
        }
        let negative = text.utf8.first == UInt8(ascii: "-")
        var magnitude: UInt64 = 0
        for digit in text.utf8.dropFirst(negative ? 1 : 0) {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw integerRangeError(text, at: start) }
            magnitude = sum
        }
        guard negative else { return .uint(magnitude) }
        // Int64.min's magnitude, 2^63, is one past Int64.max.
        if magnitude == UInt64(Int64.max) + 1 { return .int(.min) }
        guard magnitude <= UInt64(Int64.max) else { throw integerRangeError(text, at: start) }
        return .int(-Int64(magnitude))
    }

    func integerRangeError(_ text: String, at offset: Int) -> MessagePackJSONError {
        error("integer \(text) is outside -9223372036854775808…18446744073709551615 (write it with '.' or 'e' for a float64)", at: offset)
    }

    /// A finite Double from number text that is already valid JSON.
    func double(_ text: String, at offset: Int) throws(MessagePackJSONError) -> Double {
        guard let double = Double(text), double.isFinite else {
            throw error("\(text) is beyond the range of float64", at: offset)
        }
        return double
    }

    /// The text of a JSON number, checked against the grammar; `nil` (reading nothing)
    /// when no number starts here.
    mutating func readNumberText() throws(MessagePackJSONError) -> String? {
        let start = index
        guard index < bytes.count, bytes[index] == UInt8(ascii: "-") || isDigit(bytes[index]) else { return nil }
        _ = consume(UInt8(ascii: "-"))
        if consume(UInt8(ascii: "0")) {
            if index < bytes.count, isDigit(bytes[index]) { throw error("a number cannot have a leading zero") }
        } else {
            try readDigits()
        }
        if consume(UInt8(ascii: ".")) { try readDigits() }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            try readDigits()
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// One or more decimal digits.
    mutating func readDigits() throws(MessagePackJSONError) {
        guard index < bytes.count, isDigit(bytes[index]) else {
            throw error(index < bytes.count ? "expected a digit" : "unexpected end of input, expected a digit")
        }
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    mutating func readLiteral(_ word: StaticString) throws(MessagePackJSONError) {
        let count = word.utf8CodeUnitCount
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        guard index + count <= bytes.count, bytes[index..<index + count].elementsEqual(expected) else {
            throw error("invalid literal, expected \(word)")
        }
        index += count
    }

    /// A string, from its opening quote to past its closing one.
    mutating func readString() throws(MessagePackJSONError) -> String {
        let start = index
        index += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            // Copy the run of ordinary bytes up to the next quote, backslash or control character.
            let runStart = index
            while index < bytes.count, bytes[index] >= 0x20, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
                index += 1
            }
            utf8.append(contentsOf: bytes[runStart..<index])
            guard index < bytes.count else { throw error("unterminated string", at: start) }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { index += 1; break }
            if byte < 0x20 { throw error("control character \(describeByte(at: index)) in a string must be escaped") }
            try readEscape(into: &utf8)
        }
        guard let string = String(validating: utf8, as: UTF8.self) else {
            throw error("the string is not valid UTF-8", at: start)
        }
        return string
    }

    /// One backslash escape, appended as UTF-8.
    mutating func readEscape(into utf8: inout [UInt8]) throws(MessagePackJSONError) {
        let start = index
        index += 1  // backslash
        guard index < bytes.count else { throw error("unterminated string") }
        let letter = bytes[index]
        index += 1
        switch letter {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(letter)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var code = try readHex4()
            if (0xDC00...0xDFFF).contains(code) {
                throw error("lone low surrogate \\u\(hex4(code))", at: start)
            }
            if (0xD800...0xDBFF).contains(code) {
                // A high surrogate must be followed at once by an escaped low one.
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    throw error("lone high surrogate \\u\(hex4(code))", at: start)
                }
                index += 2
                let low = try readHex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw error("lone high surrogate \\u\(hex4(code))", at: start)
                }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            // Surrogates are excluded above, so every code is a scalar.
            guard let scalar = Unicode.Scalar(code) else { throw error("invalid code point", at: start) }
            UTF8.encode(scalar) { utf8.append($0) }
        default:
            throw error("invalid escape \\\(String(decoding: [letter], as: UTF8.self))", at: start)
        }
    }

    /// The four hex digits of a \u escape.
    mutating func readHex4() throws(MessagePackJSONError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = _hexDigit(bytes[index]) else {
                throw error("\\u must be followed by 4 hex digits")
            }
            code = code << 4 | UInt32(digit)
            index += 1
        }
        return code
    }

    // MARK: Helpers

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    /// Moves past `byte` if it comes next.
    mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    /// A byte for an error message: the character when printable ASCII, else its hex.
    func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let byte = bytes[offset]
        if (0x21...0x7E).contains(byte) { return "'\(String(decoding: [byte], as: UTF8.self))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: false).leftPadded(to: 2))"
    }

    func hex4(_ code: UInt32) -> String { String(code, radix: 16, uppercase: true).leftPadded(to: 4) }

    func quoted(_ key: String) -> String { "\"" + key + "\"" }

    func error(_ message: String, at offset: Int? = nil) -> MessagePackJSONError {
        MessagePackJSONError(message: message, offset: offset ?? index)
    }
}

extension MessagePackValue {
    /// The integer, when this is `.int` or `.uint` within `range`.
    fileprivate func integer(in range: ClosedRange<Int64>) -> Int64? {
        switch self {
        case .int(let value): return range.contains(value) ? value : nil
        case .uint(let value): return value <= UInt64(Int64.max) && range.contains(Int64(value)) ? Int64(value) : nil
        default: return nil
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

/// Lowercase hex, two digits a byte (also the `msgpack` tool's).
package func _hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}

/// The value of one hex digit, either case (also the `msgpack` tool's).
package func _hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// The bytes spelled by pairs of hex digits, or `nil` if `hex` is anything else.
func _hexDecoded(_ hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count.isMultiple(of: 2) else { return nil }
    var result: [UInt8] = []
    result.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = _hexDigit(digits[index]), let low = _hexDigit(digits[index + 1]) else { return nil }
        result.append(high << 4 | low)
        index += 2
    }
    return result
}

// MARK: - Writing

/// Writes tagged JSON as UTF-8 bytes.
struct _JSONWriter {
    let pretty: Bool
    var output: [UInt8] = []

    init(pretty: Bool) {
        self.pretty = pretty
    }

    /// Writes `value`, whose first line is already indented by `indent` levels.
    mutating func write(_ value: MessagePackValue, indent: Int) {
        switch value {
        case .nil: append("null")
        case .bool(let bool): append(bool ? "true" : "false")
        case .int(let int): append(String(int))
        case .uint(let uint): append(String(uint))
        case .float(let float):
            writeTag("$float32", indent: indent) { writer, _ in
                if let name = Self.nonFiniteName(float) { writer.writeString(name) } else { writer.append(float.description) }
            }
        case .double(let double):
            if let name = Self.nonFiniteName(double) {
                writeTag("$float64", indent: indent) { writer, _ in writer.writeString(name) }
            } else {
                append(Self.text(of: double))
            }
        case .string(let string): writeString(string)
        case .binary(let bytes):
            writeTag("$bin", indent: indent) { writer, _ in writer.writeString(_hexString(bytes)) }
        case .array(let elements):
            writeArray(elements, indent: indent) { writer, element, indent in writer.write(element, indent: indent) }
        case .map(let pairs):
            if let keys = Self.plainKeys(pairs) {
                writeObject(Array(zip(keys, pairs.lazy.map(\.value))), indent: indent)
            } else {
                writeTag("$map", indent: indent) { writer, indent in
                    writer.writeArray(pairs, indent: indent) { writer, pair, indent in
                        writer.writeArray([pair.key, pair.value], indent: indent) { writer, item, indent in
                            writer.write(item, indent: indent)
                        }
                    }
                }
            }
        case .timestamp(let stamp):
            writeTag("$timestamp", indent: indent) { writer, indent in
                writer.writeObject([("seconds", .int(stamp.seconds)), ("nanoseconds", .uint(UInt64(stamp.nanoseconds)))], indent: indent)
            }
        case .extension(let ext):
            writeTag("$ext", indent: indent) { writer, indent in
                writer.writeObject([("type", .int(Int64(ext.type))), ("data", .string(_hexString(ext.data)))], indent: indent)
            }
        }
    }

    /// The keys when every one is a string that does not start with `$`, so the
    /// map can be a plain object; otherwise `nil`.
    static func plainKeys(_ pairs: [(key: MessagePackValue, value: MessagePackValue)]) -> [String]? {
        var keys: [String] = []
        keys.reserveCapacity(pairs.count)
        for pair in pairs {
            guard case .string(let key) = pair.key, !key.hasPrefix("$") else { return nil }
            keys.append(key)
        }
        return keys
    }

    /// The shortest text that reads back as exactly `double`, always with '.' or 'e'
    /// so that it reads back as a float and not an integer.
    static func text(of double: Double) -> String {
        // Swift's description is the shortest round-trip form: "1.0", "0.1", "1e+300", "5e-324".
        var text = double.description
        if !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") }) {
            text += ".0"
        }
        assert(Double(text) == double, "\(text) does not read back as \(double)")
        return text
    }

    static func nonFiniteName<F: FloatingPoint>(_ value: F) -> String? {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return nil
    }

    /// `{"<tag>": <payload>}`, the payload written by `body` at the given indent.
    mutating func writeTag(_ tag: String, indent: Int, body: (inout _JSONWriter, Int) -> Void) {
        append("{")
        newline(indent + 1)
        writeString(tag)
        append(pretty ? ": " : ":")
        body(&self, indent + 1)
        newline(indent)
        append("}")
    }

    mutating func writeObject(_ members: [(String, MessagePackValue)], indent: Int) {
        guard !members.isEmpty else { append("{}"); return }
        append("{")
        for (offset, member) in members.enumerated() {
            if offset > 0 { append(",") }
            newline(indent + 1)
            writeString(member.0)
            append(pretty ? ": " : ":")
            write(member.1, indent: indent + 1)
        }
        newline(indent)
        append("}")
    }

    mutating func writeArray<Element>(
        _ elements: [Element], indent: Int, each: (inout _JSONWriter, Element, Int) -> Void
    ) {
        guard !elements.isEmpty else { append("[]"); return }
        append("[")
        for (offset, element) in elements.enumerated() {
            if offset > 0 { append(",") }
            newline(indent + 1)
            each(&self, element, indent + 1)
        }
        newline(indent)
        append("]")
    }

    /// A quoted string: `"`, `\` and control characters escaped, all other text as is.
    mutating func writeString(_ string: String) {
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            case 0x00..<0x20: append("\\u00" + _hexString([byte]))
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// In pretty mode, a line break and `level` levels of 2-space indentation.
    mutating func newline(_ level: Int) {
        guard pretty else { return }
        output.append(UInt8(ascii: "\n"))
        output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
    }

    mutating func append(_ text: String) {
        output.append(contentsOf: text.utf8)
    }
}
