import SystemPackage

/// An error from a `Connection`: what went wrong, and the system's error where one caused it.
public struct ConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The code's name, such as `endOfFile`.
        public var description: String { name }

        /// The connection was closed by this process.
        public static let closed = Code(name: "closed")
        /// The other end closed before a whole frame arrived (Python's `EOFError`);
        /// at a frame boundary, nothing was lost.
        public static let endOfFile = Code(name: "endOfFile")
        /// A frame's length is over the reader's maximum. The payload is left
        /// unread, so the connection cannot be read further.
        public static let frameTooLong = Code(name: "frameTooLong")
        /// A frame header states an impossible length.
        public static let invalidFrame = Code(name: "invalidFrame")
        /// Reading or writing is not what this end of a one-way pipe does.
        public static let wrongDirection = Code(name: "wrongDirection")
        /// `receive(timeout:)` found no frame in time.
        public static let timedOut = Code(name: "timedOut")
        /// A system call failed; `underlyingError` says how.
        public static let system = Code(name: "system")
    }

    /// What went wrong: compare it, `error.code == .endOfFile`.
    public let code: Code
    /// The system's error, for `.system`.
    public let underlyingError: Errno?
    let detail: String

    init(_ code: Code, _ detail: String, underlyingError: Errno? = nil) {
        self.code = code
        self.detail = detail
        self.underlyingError = underlyingError
    }

    static func system(_ errno: Errno, _ doing: String) -> ConnectionError {
        ConnectionError(.system, "\(doing): \(errno)", underlyingError: errno)
    }

    /// `Connection error (<code>): <what happened>`.
    public var description: String { "Connection error (\(code)): \(detail)" }
}
