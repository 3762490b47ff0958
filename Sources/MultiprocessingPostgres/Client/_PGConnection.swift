import CLibPQ
import Foundation
import Multiprocessing

/// One connection to a PostgreSQL server through libpq, in non-blocking mode: every wait
/// for its socket suspends the task in Multiprocessing's reactor (`_awaitDescriptor`), so
/// no wait holds a thread.
///
/// A connection serves one operation at a time: `_PGPool` hands it out and takes it back.
/// That is the reason for `@unchecked Sendable`: it moves between tasks, never shared.
final class _PGConnection: @unchecked Sendable {
    private let connection: OpaquePointer
    /// A statement was sent and its results not all read (its task was cancelled, or the
    /// connection failed): the connection cannot serve another.
    private var inStatement = false

    private init(_ connection: OpaquePointer) {
        self.connection = connection
        // The server's notices (such as "relation already exists, skipping") would go to
        // standard error: they are not errors, and nobody asked for them.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    deinit {
        PQfinish(connection)
    }

    /// Checks a connection string or URL with libpq's own parser, without connecting.
    /// - Throws: libpq's message, which names what it could not read.
    static func validate(_ conninfo: String) throws(_PGError) {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &message) else {
            let text = message.map { String(cString: $0) } ?? "libpq could not read it"
            if let message { PQfreemem(message) }
            throw _PGError(.connect, text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        PQconninfoFree(options)
    }

    /// Connects with a libpq connection string or URL (`postgres://user@host:port/db?...`).
    /// - Throws: `_PGError` `.connect` when the server cannot be reached in `timeout` or
    ///   refuses; `CancellationError`.
    static func connect(_ conninfo: String, timeout: Duration) async throws -> _PGConnection {
        guard let raw = PQconnectStart(conninfo) else {
            throw _PGError(.connect, "libpq could not allocate a connection")
        }
        let pg = _PGConnection(raw)  // finished by deinit, whatever happens next
        guard PQstatus(raw) != CONNECTION_BAD else { throw pg.failure(.connect, "connecting") }
        let deadline = ContinuousClock.now + timeout
        // libpq's protocol for PQconnectPoll: act as if it had asked to write, then wait
        // for what it asks each time.
        var polling = PGRES_POLLING_WRITING
        while polling != PGRES_POLLING_OK {
            guard polling != PGRES_POLLING_FAILED else { throw pg.failure(.connect, "connecting") }
            let socket = PQsocket(raw)
            guard socket >= 0 else { throw pg.failure(.connect, "connecting") }
            let ready = try await _awaitDescriptor(
                socket, readable: polling == PGRES_POLLING_READING, writable: polling == PGRES_POLLING_WRITING,
                timeout: deadline - .now)
            guard ready else { throw _PGError(.connect, "connecting: no answer from the server in \(timeout)") }
            polling = PQconnectPoll(raw)
        }
        guard PQsetnonblocking(raw, 1) == 0 else { throw pg.failure(.connect, "connecting") }
        return pg
    }

    /// Whether it can serve another operation: connected, not inside a statement or a
    /// transaction. Reads what has arrived first: a server that ended the connection (a
    /// restart) has said so, and the connection is found dead here, before a statement
    /// is sent on it.
    var isReusable: Bool {
        guard !inStatement, PQstatus(connection) == CONNECTION_OK else { return false }
        if _isReady(PQsocket(connection), readable: true, writable: false) { _ = PQconsumeInput(connection) }
        return PQstatus(connection) == CONNECTION_OK && PQtransactionStatus(connection) == PQTRANS_IDLE
    }

    /// Runs one statement, its parameters as `$1`, `$2`…, and returns its rows (in
    /// PostgreSQL's binary format). A statement once sent is read to its end, whatever
    /// happens to the task: call it from a task whose cancellation cannot reach it (see
    /// `DurableQueue.database`), or the connection is left unusable.
    ///
    /// - Throws: `_PGError`: `.server` for an error the server reported (the connection
    ///   stays usable), `.connectionLost` when the connection failed, after the statement
    ///   may or may not have run.
    @discardableResult
    func execute(_ sql: String, _ parameters: [_PGParameter] = []) async throws -> _PGRows {
        inStatement = true
        try send(sql, parameters)
        try await flush()
        var rows: _PGRows?
        var serverError: _PGError?
        while true {
            while PQisBusy(connection) == 1 {
                try await awaitSocket(readable: true)
                guard PQconsumeInput(connection) == 1 else { throw failure(.connectionLost, "reading a reply") }
            }
            guard let result = PQgetResult(connection) else { break }
            let status = PQresultStatus(result)
            if status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK {
                rows = _PGRows(taking: result)
            } else {
                serverError = serverError ?? _PGError(result: result, connection: connection)
                PQclear(result)
            }
        }
        inStatement = false
        guard PQstatus(connection) == CONNECTION_OK else { throw failure(.connectionLost, "running a statement") }
        if let serverError { throw serverError }
        return rows ?? _PGRows()
    }

    /// Runs `body` inside BEGIN and COMMIT; a throw rolls back (on a connection that still works).
    func transaction<T>(_ body: () async throws -> T) async throws -> T {
        try await execute("BEGIN")
        do {
            let value = try await body()
            try await execute("COMMIT")
            return value
        } catch {
            if !inStatement && PQstatus(connection) == CONNECTION_OK { _ = try? await execute("ROLLBACK") }
            throw error
        }
    }

    /// Waits until the server sends something (a notification, or the end of the
    /// connection), or `timeout` passes. Cancellation throws `CancellationError`.
    /// - Throws: `_PGError.connectionLost` when the connection failed.
    func awaitInput(timeout: Duration) async throws {
        if try await awaitSocket(readable: true, timeout: timeout) {
            guard PQconsumeInput(connection) == 1 else { throw failure(.connectionLost, "listening") }
        }
        guard PQstatus(connection) == CONNECTION_OK else { throw failure(.connectionLost, "listening") }
    }

    /// The payloads of the notifications received so far (read by `execute` or `awaitInput`).
    func takeNotifications() -> [String] {
        var payloads: [String] = []
        while let notification = PQnotifies(connection) {
            payloads.append(String(cString: notification.pointee.extra))
            PQfreemem(notification)
        }
        return payloads
    }

    // MARK: Sending

    private func send(_ sql: String, _ parameters: [_PGParameter]) throws {
        guard let count = Int32(exactly: parameters.count) else {
            throw _PGError(.server, "too many parameters: \(parameters.count)")
        }
        var values: [UnsafePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { for value in values { free(UnsafeMutableRawPointer(mutating: value)) } }
        for parameter in parameters {
            switch parameter {
            case .text(let text):
                values.append(UnsafePointer(strdup(text)))
                lengths.append(0)
                formats.append(0)
            case .binary(let bytes):
                guard let length = Int32(exactly: bytes.count) else {
                    throw _PGError(.server, "a parameter of \(bytes.count) bytes is over PostgreSQL's limit")
                }
                let copy = malloc(max(1, bytes.count))!.bindMemory(to: CChar.self, capacity: max(1, bytes.count))
                bytes.withUnsafeBytes { UnsafeMutableRawPointer(copy).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                values.append(UnsafePointer(copy))
                lengths.append(length)
                formats.append(1)
            }
        }
        // Binary results (the last argument): integers, timestamps and bytea without text parsing.
        guard PQsendQueryParams(connection, sql, count, nil, values, lengths, formats, 1) == 1 else {
            throw failure(.connectionLost, "sending a statement")
        }
    }

    /// Sends what libpq has buffered, waiting for room in the socket when it is full.
    private func flush() async throws {
        while true {
            let flushed = PQflush(connection)
            if flushed == 0 { return }
            guard flushed > 0 else { throw failure(.connectionLost, "sending a statement") }
            // libpq's advice: wait for either, and read what came, so that a server that
            // answers while we write is never blocked on us.
            try await awaitSocket(readable: true, writable: true)
            guard PQconsumeInput(connection) == 1 else { throw failure(.connectionLost, "sending a statement") }
        }
    }

    @discardableResult
    private func awaitSocket(readable: Bool, writable: Bool = false, timeout: Duration? = nil) async throws -> Bool {
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw failure(.connectionLost, "waiting for the server") }
        return try await _awaitDescriptor(socket, readable: readable, writable: writable, timeout: timeout)
    }

    /// libpq's message for the last failure, as an error of `kind`.
    private func failure(_ kind: _PGError.Kind, _ doing: String) -> _PGError {
        let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
        return _PGError(kind, "\(doing): \(message.isEmpty ? "the connection failed" : message)")
    }
}
