import Foundation
@testable import MultiprocessingPostgres
import Testing

/// Every suite on the test server, one at a time: one restarts the server under the others.
@Suite("PostgreSQL", .serialized, .enabled(if: TestDatabase.isAvailable, TestDatabase.skipped))
enum PostgresSuites {}

/// The server the tests use: `make test` starts one with Scripts/postgres.sh and sets
/// SWIFT_MULTIPROCESSING_POSTGRES_URL. Without it, the suites are skipped.
enum TestDatabase {
    static let url = ProcessInfo.processInfo.environment["SWIFT_MULTIPROCESSING_POSTGRES_URL"]
    static let isAvailable = url != nil
    static let skipped: Comment = """
        SWIFT_MULTIPROCESSING_POSTGRES_URL is unset: `make test` sets it, or \
        `eval "$(Scripts/postgres.sh start)"` before `swift test`
        """

    struct Unavailable: Error {}

    /// A queue name no other test uses (queues share the tables).
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix).\(UUID().uuidString.prefix(8))"
    }

    /// A queue on the test server, closed after `body`.
    static func withQueue<Element: Codable & Sendable, Result: Sendable>(
        _: Element.Type,
        name: String,
        maxsize: Int = 0,
        leaseDuration: Duration = .seconds(30),
        pollInterval: Duration = .seconds(1),
        _ body: (DurableQueue<Element>) async throws -> Result
    ) async throws -> Result {
        guard let url else { throw Unavailable() }
        let queue = try DurableQueue<Element>(url: url, name: name, maxsize: maxsize,
                                              leaseDuration: leaseDuration, pollInterval: pollInterval)
        do {
            let result = try await body(queue)
            await queue.close()
            return result
        } catch {
            await queue.close()
            throw error
        }
    }

    /// A connection of its own (the library's), for SQL the tests run directly on the tables.
    static func withClient<Result>(_ body: (_PGConnection) async throws -> Result) async throws -> Result {
        guard let url else { throw Unavailable() }
        return try await body(try await _PGConnection.connect(url, timeout: .seconds(10)))
    }

    /// `SELECT count(*)` of a queue's rows.
    static func rowCount(_ client: _PGConnection, queue: String, table: String = "durable_queue_items") async throws -> Int {
        let table = table == "durable_queue_items" ? table : "durable_queue_dead_letters"
        let rows = try await client.execute("SELECT count(*) FROM \(table) WHERE queue = $1", [.string(queue)])
        return Int(try rows.integer(0, 0) ?? -1)
    }
}

/// Whether `body` throws a `DurableQueueError` with `code`; returns it.
@discardableResult
func expectDurableQueueError(
    _ code: DurableQueueError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> some Any
) async -> DurableQueueError? {
    do {
        _ = try await body()
        Issue.record("expected DurableQueueError.\(code), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as DurableQueueError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected DurableQueueError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
