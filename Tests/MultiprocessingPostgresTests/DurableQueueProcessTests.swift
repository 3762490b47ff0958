import Foundation
import Multiprocessing
import MultiprocessingPostgres
import Testing

/// The helper executable the tests start (Tests/DurableQueueTestHelper), built beside the test binary.
private let helper = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    .deletingLastPathComponent().appendingPathComponent("DurableQueueTestHelper")

/// A started helper process, and the connection on which it says what it did: its
/// descriptor 3 (`ChildProcess` and a pipe, not Foundation's `Process`, which closes its
/// pipes on a thread of its own, later).
private struct HelperProcess {
    let child: ChildProcess
    let output: Connection

    init(_ arguments: [String]) throws {
        let (output, theirs) = try Connection.pipe(duplex: false)
        defer { theirs.close() }  // the child has its own copy
        child = try ChildProcess.start(executable: helper.path, arguments: arguments, handing: [theirs])
        self.output = output
    }

    /// The line it sent, or "" if it ended without one.
    func firstLine() async -> String {
        (try? await output.receive(String.self)) ?? ""
    }

    /// Waits for the end, then returns its line and how it ended.
    func finish() async throws -> (output: String, termination: ChildProcess.Termination) {
        let line = await firstLine()
        let termination = try await child.join()
        output.close()
        return (line, termination)
    }
}

extension PostgresSuites {
    /// DurableQueue between real processes, against a real PostgreSQL server.
    @Suite("DurableQueue between processes")
    struct DurableQueueProcessTests {
        @Test("3 producer and 3 consumer processes: every item acknowledged exactly once (count and checksums)", .timeLimit(.minutes(2)))
        func producersAndConsumers() async throws {
            guard let url = TestDatabase.url else { return }
            let name = TestDatabase.uniqueName("processes")
            let (producers, perProducer) = (3, 300)
            // Creates the schema before the processes race for it, and checks the result afterwards.
            try await TestDatabase.withQueue(Int.self, name: name) { queue in
                #expect(try await queue.count == 0)
                let started = try (0..<producers).map { index in
                    try HelperProcess(["produce", url, name, String(index * perProducer), String(perProducer)])
                } + (0..<3).map { _ in try HelperProcess(["consume", url, name, "3000"]) }
                var results: [(output: String, termination: ChildProcess.Termination)] = []
                for process in started { results.append(try await process.finish()) }
                #expect(results.allSatisfy { $0.termination == .exited(0) }, "\(results)")

                var (count, sum, squares, redelivered) = (0, 0, 0, 0)
                for result in results.dropFirst(producers) {
                    let fields = result.output.split(separator: " ")
                    #expect(fields.first == "acknowledged", "\(result.output)")
                    let numbers = fields.dropFirst().compactMap { Int($0) }
                    guard numbers.count == 4 else { continue }
                    count += numbers[0]
                    sum += numbers[1]
                    squares += numbers[2]
                    redelivered += numbers[3]
                }
                let values = 0..<(producers * perProducer)
                #expect(count == values.count)
                #expect(sum == values.reduce(0, +))
                #expect(squares == values.reduce(0) { $0 + $1 * $1 })
                #expect(redelivered == 0)
                #expect(try await queue.count == 0)
            }
        }

        @Test("a consumer SIGKILLed while holding leases: its items go to another consumer after the lease, attempt 2", .timeLimit(.minutes(1)))
        func killedConsumer() async throws {
            guard let url = TestDatabase.url else { return }
            let name = TestDatabase.uniqueName("killed")
            try await TestDatabase.withQueue(Int.self, name: name) { queue in
                for value in 1...5 { try await queue.put(value) }
                let holder = try HelperProcess(["hold", url, name, "3", "1000"])
                let line = await holder.firstLine()
                let held = Set(line.split(separator: " ").dropFirst().compactMap { Int64($0) })
                #expect(line.hasPrefix("holding") && held.count == 3, "\(line)")
                try holder.child.kill()
                #expect(try await holder.finish().termination == .signaled(SIGKILL))

                var attempts: [Int64: Int] = [:]
                for _ in 1...5 {
                    let delivery = try await queue.get(timeout: .seconds(15))
                    attempts[delivery.id] = delivery.attempt
                    try await queue.taskDone(delivery)
                }
                #expect(attempts.count == 5)
                for (id, attempt) in attempts {
                    #expect(attempt == (held.contains(id) ? 2 : 1), "item \(id)")
                }
                #expect(try await queue.count == 0)
            }
        }
    }
}
