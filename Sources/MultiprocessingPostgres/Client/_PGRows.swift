import CLibPQ
import Foundation

/// A statement's parameter: text, which the server parses as the type the statement
/// gives it, or bytes (binary format), for `bytea`.
enum _PGParameter: Sendable {
    case text(String)
    case binary([UInt8])

    /// Text as PostgreSQL takes it: without NUL characters, which no text value may hold.
    static func string(_ value: String) -> _PGParameter {
        .text(value.utf8.contains(0) ? value.replacingOccurrences(of: "\0", with: "\\0") : value)
    }

    static func integer(_ value: some BinaryInteger) -> _PGParameter { .text(String(value)) }
    static func double(_ value: Double) -> _PGParameter { .text(String(value)) }
    static func uuid(_ value: UUID) -> _PGParameter { .text(value.uuidString) }

    /// A `bigint[]`, as text: `{1,2,3}`.
    static func integers(_ values: [Int64]) -> _PGParameter {
        .text("{" + values.map(String.init).joined(separator: ",") + "}")
    }

    /// A `uuid[]`, as text.
    static func uuids(_ values: [UUID]) -> _PGParameter {
        .text("{" + values.map(\.uuidString).joined(separator: ",") + "}")
    }

    /// A `bytea[]` in PostgreSQL's binary array format (`array_recv`): one dimension, no
    /// NULLs, element type bytea (OID 17), then each element's length and bytes. Binary, so
    /// that payloads cross as they are, not as hex text at twice their size.
    static func byteaArray(_ elements: [[UInt8]]) throws -> _PGParameter {
        guard let count = Int32(exactly: elements.count) else {
            throw _PGError(.server, "\(elements.count) items are over PostgreSQL's limit for one array")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
        func append(_ value: Int32) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
        append(1)      // dimensions
        append(0)      // no NULLs
        append(17)     // bytea
        append(count)  // elements in the dimension
        append(1)      // its lower bound
        for element in elements {
            guard let length = Int32(exactly: element.count) else {
                throw _PGError(.server, "an item of \(element.count) bytes is over PostgreSQL's limit")
            }
            append(length)
            bytes.append(contentsOf: element)
        }
        return .binary(bytes)
    }
}

/// The rows of a statement's result, in PostgreSQL's binary format, read by column type.
/// A value of another type or length than expected throws: nothing here traps on what
/// the server sent.
final class _PGRows {
    private let result: OpaquePointer?

    /// No rows (a statement that returns none).
    init() { result = nil }

    /// Owns `result`: cleared when this is freed.
    init(taking result: OpaquePointer) { self.result = result }

    deinit {
        if let result { PQclear(result) }
    }

    var count: Int { result.map { Int(PQntuples($0)) } ?? 0 }

    /// The value's bytes, or nil for SQL NULL.
    private func value(_ row: Int, _ column: Int, _ types: Set<UInt32>, _ what: String) throws -> UnsafeRawBufferPointer? {
        guard let result, row >= 0, row < count, column >= 0, column < Int(PQnfields(result)) else {
            throw _PGError(.server, "the reply has no row \(row), column \(column)")
        }
        let (row, column) = (Int32(row), Int32(column))
        guard types.contains(PQftype(result, column)) else {
            throw _PGError(.server, "column \(column) is of type \(PQftype(result, column)), not \(what)")
        }
        if PQgetisnull(result, row, column) == 1 { return nil }
        let length = Int(PQgetlength(result, row, column))
        guard length >= 0, let bytes = PQgetvalue(result, row, column) else {
            throw _PGError(.server, "column \(column) has no value")
        }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    /// A big-endian integer of exactly `size` bytes.
    private func bigEndian(_ bytes: UnsafeRawBufferPointer, size: Int, _ what: String) throws -> UInt64 {
        guard bytes.count == size else { throw _PGError(.server, "a \(what) of \(bytes.count) bytes, not \(size)") }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    private static let int2: UInt32 = 21, int4: UInt32 = 23, int8: UInt32 = 20, float8: UInt32 = 701
    private static let text: UInt32 = 25, bytea: UInt32 = 17, timestamptz: UInt32 = 1184, uuid: UInt32 = 2950

    /// An int2, int4 or int8 (a `count(*)` is int8, a column `integer`); nil for NULL.
    func integer(_ row: Int, _ column: Int) throws -> Int64? {
        guard let bytes = try value(row, column, [Self.int2, Self.int4, Self.int8], "an integer") else { return nil }
        switch bytes.count {
        case 2: return Int64(Int16(truncatingIfNeeded: try bigEndian(bytes, size: 2, "int2")))
        case 4: return Int64(Int32(truncatingIfNeeded: try bigEndian(bytes, size: 4, "int4")))
        default: return Int64(bitPattern: try bigEndian(bytes, size: 8, "int8"))
        }
    }

    func double(_ row: Int, _ column: Int) throws -> Double? {
        guard let bytes = try value(row, column, [Self.float8], "float8") else { return nil }
        return Double(bitPattern: try bigEndian(bytes, size: 8, "float8"))
    }

    func bytes(_ row: Int, _ column: Int) throws -> [UInt8]? {
        try value(row, column, [Self.bytea], "bytea").map { Array($0) }
    }

    func string(_ row: Int, _ column: Int) throws -> String? {
        try value(row, column, [Self.text], "text").map { String(decoding: $0, as: UTF8.self) }
    }

    /// A timestamptz: microseconds since 2000-01-01 00:00 UTC on the wire.
    func date(_ row: Int, _ column: Int) throws -> Date? {
        guard let bytes = try value(row, column, [Self.timestamptz], "timestamptz") else { return nil }
        let microseconds = Int64(bitPattern: try bigEndian(bytes, size: 8, "timestamptz"))
        return Date(timeIntervalSince1970: 946_684_800 + Double(microseconds) / 1e6)
    }

    func uuid(_ row: Int, _ column: Int) throws -> UUID? {
        guard let bytes = try value(row, column, [Self.uuid], "uuid") else { return nil }
        guard bytes.count == 16 else { throw _PGError(.server, "a uuid of \(bytes.count) bytes") }
        let b = Array(bytes)
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                           b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}
