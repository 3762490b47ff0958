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
        guard let raw = startConnecting(conninfo) else {
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

    /// Defaults that bound every wait on the server, before the caller's own settings (any
    /// the URL or connection string gives win, as later parameters do in libpq):
    /// - TCP keepalives and a user timeout: a server gone without a word (a network cut)
    ///   is found dead in about 30 s, not the kernel's 2 hours.
    /// - `statement_timeout`: no statement runs longer than a minute.
    /// - `idle_in_transaction_session_timeout`: a client stopped inside a transaction (a put
    ///   holding the queue's put lock, say) loses its session, and its locks, after 30 s.
    /// - Plans that do not follow the statistics of the moment: `plan_cache_mode=
    ///   force_generic_plan` (each statement planned once per connection), and no sequential
    ///   or bitmap scans (`enable_seqscan`, `enable_bitmapscan` off, for these connections
    ///   only; every statement here has an index to use). A queue table's statistics are
    ///   nearly always stale: planned while the table looked empty, a claim scanned and
    ///   sorted the whole table for each item, so a get cost time in proportion to the
    ///   queue's length (it took items/s from 2,300 to 450 here). With these, a claim walks
    ///   the (queue, id) index and stops at the first row it can lock.
    private static let defaults: [(String, String)] = [
        ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ]
    private static let serverSettings =
        "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=30000 -c plan_cache_mode=force_generic_plan "
        + "-c enable_seqscan=off -c enable_bitmapscan=off"

    /// The value `conninfo` gives `keyword`, read by libpq's own parser.
    private static func option(_ keyword: String, in conninfo: String) -> String? {
        guard let options = PQconninfoParse(conninfo, nil) else { return nil }
        defer { PQconninfoFree(options) }
        var entry = options
        while let name = entry.pointee.keyword {
            if String(cString: name) == keyword { return entry.pointee.val.map { String(cString: $0) } }
            entry += 1
        }
        return nil
    }

    /// PQconnectStartParams with `defaults`, then `conninfo` expanded as `dbname` (a URL or a
    /// connection string; what it sets overrides the defaults), then `options`: the server
    /// settings above followed by the caller's own (from `conninfo`, else `PGOPTIONS`), so
    /// that theirs win where both set one and ours hold where theirs are silent.
    private static func startConnecting(_ conninfo: String) -> OpaquePointer? {
        let theirs = option("options", in: conninfo) ?? ProcessInfo.processInfo.environment["PGOPTIONS"]
        let options = serverSettings + (theirs.map { " " + $0 } ?? "")
        let pairs = defaults + [("dbname", conninfo), ("options", options)]
        let keywords = pairs.map { strdup($0.0) }, values = pairs.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let keywordPointers = keywords.map { UnsafePointer($0) } + [nil]
        let valuePointers = values.map { UnsafePointer($0) } + [nil]
        return PQconnectStartParams(keywordPointers, valuePointers, 1)
    }

    /// Whether it can serve another operation: connected, not inside a statement or a
    /// transaction, and sent nothing while idle. An idle connection of the pool listens to
    /// nothing, so anything it received is the server ending it (a restart sends a FATAL
    /// message, then closes): such a connection is let go here, before a statement is sent
    /// on it and the old message is taken for that statement's answer.
    var isReusable: Bool {
        guard !inStatement, PQstatus(connection) == CONNECTION_OK,
              PQtransactionStatus(connection) == PQTRANS_IDLE else { return false }
        return !_isReady(PQsocket(connection), readable: true, writable: false)
    }

    /// Runs one statement, its parameters as `$1`, `$2`…, and returns its rows (in
    /// PostgreSQL's binary format). A statement once sent is read to its end, whatever
    /// happens to the task: call it from a task whose cancellation cannot reach it (as
    /// `_PGPool.withConnection` does), or the connection is left unusable.
    ///
    /// - Throws: `_PGError`: `.server` for an error the server reported (the connection
    ///   stays usable), `.connectionLost` when the connection failed, after the statement
    ///   may or may not have run.
    @discardableResult
    func execute(_ sql: String, _ parameters: [_PGParameter] = []) async throws -> _PGRows {
        guard let count = Int32(exactly: parameters.count) else {
            throw _PGError(.server, "too many parameters: \(parameters.count)")
        }
        // Each statement is parsed and planned once per connection, as a prepared statement:
        // the server's own benchmark (pgbench) runs this queue's statements twice as fast
        // prepared as parsed each time.
        let name: String
        if let known = prepared[sql] {
            name = known
        } else {
            name = "durable_queue_\(prepared.count)"
            inStatement = true
            guard PQsendPrepare(connection, name, sql, count, nil) == 1 else {
                throw failure(.connectionLost, "preparing a statement")
            }
            try await flush()
            try await readResults()
            prepared[sql] = name
        }
        inStatement = true
        try send(name, parameters, count)
        try await flush()
        return try await readResults()
    }

    /// The statements prepared on this connection, by their SQL (a fixed set: the queue's).
    private var prepared: [String: String] = [:]

    /// Reads every result of the statement sent; clears `inStatement`.
    @discardableResult
    private func readResults() async throws -> _PGRows {
        var rows: _PGRows?
        var serverError: _PGError?
        while true {
            while PQisBusy(connection) == 1 {
                try await awaitSocket(readable: true, orEvery: .milliseconds(5))
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
    /// connection), `also` is true (see `_awaitDescriptor`), or `timeout` passes.
    /// Cancellation throws `CancellationError`.
    /// - Throws: `_PGError.connectionLost` when the connection failed.
    func awaitInput(timeout: Duration, also: () -> Bool = { false }) async throws {
        if try await awaitSocket(readable: true, timeout: timeout, orEvery: .milliseconds(50), also: also) {
            guard PQconsumeInput(connection) == 1 else { throw failure(.connectionLost, "listening") }
        }
        guard PQstatus(connection) == CONNECTION_OK else { throw failure(.connectionLost, "listening") }
    }

    /// The channels of the notifications received so far (read by `execute` or `awaitInput`).
    func takeNotifications() -> [String] {
        var channels: [String] = []
        while let notification = PQnotifies(connection) {
            channels.append(String(cString: notification.pointee.relname))
            PQfreemem(notification)
        }
        return channels
    }

    /// The connection's socket (-1 when it has none).
    var socket: CInt { PQsocket(connection) }

    // MARK: Sending

    private func send(_ name: String, _ parameters: [_PGParameter], _ count: Int32) throws {
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
                let copy = malloc(max(1, bytes.count))!
                bytes.withUnsafeBytes { source in
                    if let start = source.baseAddress { copy.copyMemory(from: start, byteCount: source.count) }
                }
                values.append(UnsafePointer(copy.assumingMemoryBound(to: CChar.self)))
                lengths.append(length)
                formats.append(1)
            }
        }
        // Binary results (the last argument): integers, timestamps and bytea without text parsing.
        guard PQsendQueryPrepared(connection, name, count, values, lengths, formats, 1) == 1 else {
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

    /// Waits for the socket (see `_awaitDescriptor`). Over TLS, libpq may hold decrypted
    /// bytes the socket no longer announces: then the wait also ends `orEvery` so often,
    /// for the caller to look again.
    @discardableResult
    private func awaitSocket(
        readable: Bool, writable: Bool = false, timeout: Duration? = nil, orEvery look: Duration? = nil,
        also: () -> Bool = { false }
    ) async throws -> Bool {
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw failure(.connectionLost, "waiting for the server") }
        var timeout = timeout
        if let look, PQsslInUse(connection) == 1 { timeout = min(timeout ?? look, look) }
        return try await _awaitDescriptor(socket, readable: readable, writable: writable, timeout: timeout, also: also)
    }

    /// libpq's message for the last failure, as an error of `kind`.
    private func failure(_ kind: _PGError.Kind, _ doing: String) -> _PGError {
        let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
        return _PGError(kind, "\(doing): \(message.isEmpty ? "the connection failed" : message)")
    }
}
