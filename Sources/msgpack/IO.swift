#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import MessagePack

// Plain POSIX reads and writes: raw bytes both ways, and errno messages such as
// "No such file or directory" for the one-line error report.

/// A failure of the tool itself (a file, the hex input), already worded for the user.
struct ToolError: Error {
    var message: String
}

/// Runs `body`; any error is printed as one line `msgpack: <message>` on standard
/// error and turned into exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        let message = describe(error).split(whereSeparator: \.isNewline).joined(separator: " ")
        writeStandardError("msgpack: \(message)\n")
        throw ExitCode.failure
    }
}

/// A readable one-line account of `error`, without Swift's struct dumps.
func describe(_ error: any Error) -> String {
    switch error {
    case let error as ToolError:
        return error.message
    case let error as DecodingError:
        switch error {
        case .dataCorrupted(let context), .keyNotFound(_, let context),
             .typeMismatch(_, let context), .valueNotFound(_, let context):
            return describe(context.debugDescription, at: context.codingPath)
        @unknown default:
            return "\(error)"
        }
    case let error as EncodingError:
        switch error {
        case .invalidValue(_, let context):
            return "cannot encode: " + describe(context.debugDescription, at: context.codingPath)
        @unknown default:
            return "cannot encode: \(error)"
        }
    default:
        // MessagePackJSONError and others describe themselves.
        return String(describing: error)
    }
}

/// `message`, followed by where it happened when that is below the top level.
func describe(_ message: String, at codingPath: [any CodingKey]) -> String {
    guard !codingPath.isEmpty else { return message }
    let path = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    return "\(message) (at \(path.hasPrefix(".") ? String(path.dropFirst()) : path))"
}

/// All of `path`, or of standard input when `path` is `nil` or "-".
func readInput(_ path: String?) throws -> [UInt8] {
    guard let path, path != "-" else { return try readAll(STDIN_FILENO, name: "standard input") }
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw ToolError(message: "cannot open \(path): \(lastErrorText())") }
    defer { close(descriptor) }
    return try readAll(descriptor, name: path)
}

/// Reads `descriptor` to its end.
func readAll(_ descriptor: Int32, name: String) throws -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count == 0 { return result }
        if count < 0 {
            if errno == EINTR { continue }
            throw ToolError(message: "cannot read \(name): \(lastErrorText())")
        }
        result.append(contentsOf: chunk[..<count])
    }
}

/// Writes all of `bytes` to standard output.
func writeOutput(_ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let count = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw ToolError(message: "cannot write standard output: \(lastErrorText())")
            }
            offset += count
        }
    }
}

func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let count = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            if count < 0, errno == EINTR { continue }
            // Nowhere left to report a failure to write the error itself.
            guard count > 0 else { return }
            offset += count
        }
    }
}

func lastErrorText() -> String {
    String(cString: strerror(errno))
}

// MARK: - Hex

/// The bytes spelled by hex text; whitespace anywhere is ignored.
func bytes(fromHexInput text: [UInt8]) throws -> [UInt8] {
    var result: [UInt8] = []
    result.reserveCapacity(text.count / 2)
    var high: UInt8?
    for (offset, character) in text.enumerated() {
        switch character {
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0B, 0x0C:
            continue
        default:
            guard let digit = _hexDigit(character) else {
                let shown = (0x21...0x7E).contains(character)
                    ? "'\(Character(Unicode.Scalar(character)))'" : "byte 0x\(_hexString([character]))"
                throw ToolError(message: "invalid hex input: \(shown) at offset \(offset) is not a hex digit")
            }
            if let first = high {
                result.append(first << 4 | digit)
                high = nil
            } else {
                high = digit
            }
        }
    }
    guard high == nil else { throw ToolError(message: "invalid hex input: an odd number of hex digits") }
    return result
}
