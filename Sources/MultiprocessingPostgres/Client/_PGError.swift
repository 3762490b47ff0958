import CLibPQ

/// A failure of libpq or of the server, before `DurableQueue` says what it was doing.
struct _PGError: Error, Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        /// No connection could be made: nothing was sent, so anything can be tried again.
        case connect
        /// The connection failed after a statement was sent: it may or may not have run.
        case connectionLost
        /// The server reported an error for the statement; the connection is still usable.
        case server
    }

    let kind: Kind
    /// The server's SQLSTATE code, for `.server` (such as `40P01`, a deadlock).
    let sqlState: String?
    let message: String

    init(_ kind: Kind, _ message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }

    /// The error of a failed result: the server's message and SQLSTATE, or libpq's message.
    init(result: OpaquePointer, connection: OpaquePointer) {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let primary = field(UInt8(ascii: "M")) ?? String(cString: PQresultErrorMessage(result))
        let detail = field(UInt8(ascii: "D")).map { " (\($0))" } ?? ""
        self.init(.server, primary + detail, sqlState: field(UInt8(ascii: "C")))
    }

    var description: String {
        sqlState.map { "\(message) [SQLSTATE \($0)]" } ?? message
    }
}
