import Foundation
@testable import MultiprocessingPostgres
import Testing

struct Order: Codable, Sendable, Equatable {
    var id: Int
    var item: String
    var note: String?
}

extension PostgresSuites {
    /// DurableQueue against a real PostgreSQL server (`make test` starts one).
    @Suite("DurableQueue on PostgreSQL")
    struct DurableQueueTests {
        @Test("put, get and taskDone carry structs in order; an empty queue throws .empty", .timeLimit(.minutes(1)))
        func roundTrip() async throws {
            try await TestDatabase.withQueue(Order.self, name: TestDatabase.uniqueName("round-trip")) { queue in
                let orders = [Order(id: 1, item: "tea"), Order(id: 2, item: "cake", note: "no nuts"), Order(id: 3, item: "ü ☕")]
                for order in orders { try await queue.put(order) }
                #expect(try await queue.count == 3)
                for order in orders {
                    let delivery = try await queue.get(timeout: .seconds(5))
                    #expect(delivery.value == order)
                    #expect(delivery.attempt == 1)
                    #expect(delivery.leaseDeadline > Date.now.addingTimeInterval(20))
                    try await queue.taskDone(delivery)
                }
                #expect(try await queue.count == 0)
                await expectDurableQueueError(.empty) { try await queue.getNowait() }
                await expectDurableQueueError(.empty) { try await queue.get(timeout: .milliseconds(200)) }
                try await queue.join(timeout: .seconds(1))
            }
        }

        @Test("count and maxsize agree with SELECT count(*); a full put waits for a taskDone", .timeLimit(.minutes(1)))
        func countAndMaxsize() async throws {
            let name = TestDatabase.uniqueName("maxsize")
            try await TestDatabase.withClient { client in
                // A poll interval longer than the test: only taskDone's NOTIFY can wake the put.
                try await TestDatabase.withQueue(Int.self, name: name, maxsize: 3, pollInterval: .seconds(60)) { queue in
                    #expect(queue.maxsize == 3)
                    for value in 1...3 { try await queue.putNowait(value) }
                    #expect(try await queue.count == 3)
                    #expect(try await TestDatabase.rowCount(client, queue: name) == 3)
                    await expectDurableQueueError(.full) { try await queue.putNowait(4) }
                    await expectDurableQueueError(.full) { try await queue.put(4, timeout: .milliseconds(200)) }

                    // A leased item is not acknowledged yet: it still counts, and takes its place.
                    let delivery = try await queue.getNowait()
                    #expect(try await queue.count == 3)
                    await expectDurableQueueError(.full) { try await queue.putNowait(4) }

                    let waitingPut = Task { try await queue.put(4, timeout: .seconds(20)) }
                    try await Task.sleep(for: .milliseconds(300))
                    let acknowledged = ContinuousClock.now
                    try await queue.taskDone(delivery)
                    try await waitingPut.value
                    #expect(ContinuousClock.now - acknowledged < .seconds(10))
                    #expect(try await queue.count == 3)
                    #expect(try await TestDatabase.rowCount(client, queue: name) == 3)
                    await expectDurableQueueError(.timedOut) { try await queue.join(timeout: .milliseconds(100)) }
                }
            }
        }

        @Test("concurrent puts through two handles never pass maxsize", .timeLimit(.minutes(1)))
        func concurrentPutsRespectMaxsize() async throws {
            let name = TestDatabase.uniqueName("race")
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Int.self, name: name, maxsize: 5) { first in
                    try await TestDatabase.withQueue(Int.self, name: name, maxsize: 5) { second in
                        let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                            for value in 0..<40 {
                                let queue = value.isMultiple(of: 2) ? first : second
                                group.addTask {
                                    do {
                                        try await queue.putNowait(value)
                                        return true
                                    } catch let error as DurableQueueError where error.code == .full {
                                        return false
                                    }
                                }
                            }
                            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                        }
                        #expect(accepted == 5)
                        #expect(try await TestDatabase.rowCount(client, queue: name) == 5)
                        #expect(try await first.count == 5)
                    }
                }
            }
        }

        @Test("a lease that runs out is delivered again with attempt 2; the first taskDone then throws .leaseLost", .timeLimit(.minutes(1)))
        func leaseRunsOut() async throws {
            try await TestDatabase.withQueue(Order.self, name: TestDatabase.uniqueName("lease"), leaseDuration: .milliseconds(500)) { queue in
                let order = Order(id: 7, item: "soup")
                try await queue.put(order)
                let first = try await queue.get(timeout: .seconds(5))
                #expect(first.attempt == 1)
                // Leased: not visible to another get until the deadline.
                await expectDurableQueueError(.empty) { try await queue.getNowait() }
                let second = try await queue.get(timeout: .seconds(10))
                #expect(second.id == first.id)
                #expect(second.value == order)
                #expect(second.attempt == 2)
                #expect(second.leaseDeadline > first.leaseDeadline)
                let lost = await expectDurableQueueError(.leaseLost) { try await queue.taskDone(first) }
                #expect(lost?.itemID == first.id)
                try await queue.taskDone(second)
                #expect(try await queue.count == 0)
                // Acknowledged: the row is gone, so a second acknowledgement is refused too.
                await expectDurableQueueError(.leaseLost) { try await queue.taskDone(second) }
            }
        }

        @Test("a poisoned row goes to the dead letters with its error; the items around it flow", .timeLimit(.minutes(1)))
        func poisonedRow() async throws {
            let name = TestDatabase.uniqueName("poison")
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Order.self, name: name) { queue in
                    try await queue.put(Order(id: 1, item: "before"))
                    // 0xc1 is the one byte MessagePack never uses.
                    let garbage: [UInt8] = [0xc1, 0x00, 0xff]
                    let insert = "INSERT INTO durable_queue_items (queue, payload) VALUES ($1, $2) RETURNING id"
                    let poisonedID = try #require(try await client.execute(insert, [.string(name), .binary(garbage)]).integer(0, 0))
                    // A well-formed MessagePack value of the wrong shape: a string, not an Order.
                    let wrongShape: [UInt8] = [0xa3, 0x61, 0x62, 0x63]
                    let wrongShapeID = try #require(try await client.execute(insert, [.string(name), .binary(wrongShape)]).integer(0, 0))
                    try await queue.put(Order(id: 2, item: "after"))

                    let before = try await queue.get(timeout: .seconds(5))
                    #expect(before.value.item == "before")
                    try await queue.taskDone(before)
                    for id in [poisonedID, wrongShapeID] {
                        let error = await expectDurableQueueError(.undecodable) { try await queue.get(timeout: .seconds(5)) }
                        #expect(error?.itemID == id)
                        #expect(error.map { "\($0)".contains("item \(id) ") } == true)
                        #expect(error?.underlyingError is DecodingError)
                    }
                    let after = try await queue.get(timeout: .seconds(5))
                    #expect(after.value.item == "after")
                    try await queue.taskDone(after)
                    #expect(try await queue.count == 0)

                    let rows = try await client.execute(
                        "SELECT id, error, payload FROM durable_queue_dead_letters WHERE queue = $1 ORDER BY id", [.string(name)])
                    let dead = try (0..<rows.count).map { row in
                        (try rows.integer(row, 0) ?? -1, try rows.string(row, 1) ?? "", try rows.bytes(row, 2) ?? [])
                    }
                    #expect(dead.map(\.0) == [poisonedID, wrongShapeID])
                    #expect(dead.allSatisfy { !$0.1.isEmpty })
                    #expect(dead.first?.2 == garbage)
                }
            }
        }

        @Test("get(timeout:) wakes on a put from another connection, by NOTIFY, not polling", .timeLimit(.minutes(1)))
        func wakesOnNotify() async throws {
            let name = TestDatabase.uniqueName("notify")
            // A poll interval longer than the test's bound: only the NOTIFY can wake the get.
            try await TestDatabase.withQueue(Int.self, name: name, pollInterval: .seconds(60)) { consumer in
                try await TestDatabase.withQueue(Int.self, name: name) { producer in
                    #expect(try await consumer.count == 0)   // the schema exists; the get below starts listening
                    let waiting = Task { try await consumer.get(timeout: .seconds(30)) }
                    try await Task.sleep(for: .milliseconds(500))
                    let put = ContinuousClock.now
                    try await producer.put(42)
                    let delivery = try await waiting.value
                    let latency = ContinuousClock.now - put
                    #expect(delivery.value == 42)
                    // Generous: timing belongs in benchmarks; 60 s polling would take far longer.
                    #expect(latency < .seconds(10), "woke \(latency) after the put")
                    try await consumer.taskDone(delivery)
                }
            }
        }

        @Test("the blocking forms, from a thread outside Swift concurrency: put, get, taskDone, join, close", .timeLimit(.minutes(1)))
        func blockingForms() async throws {
            guard let url = TestDatabase.url else { return }
            let name = TestDatabase.uniqueName("blocking")
            let values: [Int] = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(with: Result {
                        let queue = try DurableQueue<Int>(url: url, name: name, maxsize: 2)
                        defer { queue.close() }
                        try queue.put(1)
                        try queue.putNowait(2)
                        var full = false
                        do { try queue.putNowait(3) } catch DurableQueueError.full { full = true }
                        let first = try queue.get(timeout: .seconds(5))
                        let second = try queue.getNowait()
                        try queue.taskDone(first)
                        try queue.taskDone(second)
                        try queue.join(timeout: .seconds(5))
                        var empty = false
                        do { _ = try queue.getNowait() } catch DurableQueueError.empty { empty = true }
                        return [first.value, second.value, full ? 1 : 0, empty ? 1 : 0]
                    })
                }
            }
            #expect(values == [1, 2, 1, 1])
        }

        @Test("a server that does not answer: .database once reconnectTimeout has passed, naming the cause", .timeLimit(.minutes(1)))
        func unreachableServer() async throws {
            // Port 1 on this machine: nothing listens, so every connection is refused.
            let queue = try DurableQueue<Int>(url: "postgres://postgres@127.0.0.1:1/none?sslmode=disable",
                                              name: "unreachable", reconnectTimeout: .seconds(1))
            let started = ContinuousClock.now
            let error = await expectDurableQueueError(.database) { try await queue.put(1) }
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(error.map { "\($0)".contains("refused") } == true, "\(String(describing: error))")
            await expectDurableQueueError(.database) { try await queue.count }
            await queue.close()
            await expectDurableQueueError(.closed) { try await queue.put(1) }
        }

        @Test("batches: put(contentsOf:) in order, get(upTo:), taskDone of many; a lost lease in a batch is named, the rest acknowledged", .timeLimit(.minutes(1)))
        func batches() async throws {
            try await TestDatabase.withQueue(Int.self, name: TestDatabase.uniqueName("batch"), maxsize: 150,
                                             leaseDuration: .milliseconds(800)) { queue in
                try await queue.put(contentsOf: 0..<100)
                try await queue.put(contentsOf: [Int]())  // nothing, and no error
                #expect(try await queue.count == 100)
                await expectDurableQueueError(.invalidArgument) { try await queue.put(contentsOf: 0..<151) }
                await expectDurableQueueError(.full) { try await queue.put(contentsOf: 0..<51, timeout: .milliseconds(100)) }
                #expect(try await queue.count == 100, "a refused batch put nothing")
                let first = try await queue.get(upTo: 30, timeout: .seconds(5))
                #expect(first.map(\.value) == Array(0..<30))
                try await queue.taskDone(first)
                let second = try await queue.get(upTo: 1000, timeout: .seconds(5))
                #expect(second.map(\.value) == Array(30..<100))
                // The first of these is let run out and taken again, with attempt 2.
                try await Task.sleep(for: .milliseconds(900))
                let again = try await queue.get(upTo: 1, timeout: .seconds(5))
                #expect(again.map(\.value) == [30] && again.first?.attempt == 2)
                let lost = await expectDurableQueueError(.leaseLost) { try await queue.taskDone(second) }
                #expect(lost?.itemID == second.first?.id)
                #expect(try await queue.count == 1, "all but the one whose lease was lost are acknowledged")
                try await queue.taskDone(again)
                #expect(try await queue.count == 0)
            }
        }

        @Test("a batch with an undecodable item: it goes to the dead letters, the others' leases are given back whole", .timeLimit(.minutes(1)))
        func undecodableInBatch() async throws {
            let name = TestDatabase.uniqueName("batch-poison")
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Order.self, name: name) { queue in
                    try await queue.put(Order(id: 1, item: "a"))
                    let insert = "INSERT INTO durable_queue_items (queue, payload) VALUES ($1, $2) RETURNING id"
                    let poisoned = try await client.execute(insert, [.string(name), .binary([0xc1])]).integer(0, 0)
                    try await queue.put(Order(id: 3, item: "c"))
                    let error = await expectDurableQueueError(.undecodable) { try await queue.get(upTo: 10, timeout: .seconds(5)) }
                    #expect(error?.itemID == poisoned)
                    let rest = try await queue.get(upTo: 10, timeout: .seconds(5))
                    #expect(rest.map(\.value.id) == [1, 3])
                    #expect(rest.allSatisfy { $0.attempt == 1 }, "given back without a delivery counted")
                    try await queue.taskDone(rest)
                    #expect(try await TestDatabase.rowCount(client, queue: name, table: "dead") == 1)
                }
            }
        }

        @Test("cancelled gets take nothing: raced against claims 60 times, every item is got once, none left leased", .timeLimit(.minutes(1)))
        func cancelledGets() async throws {
            try await TestDatabase.withQueue(Int.self, name: TestDatabase.uniqueName("cancel")) { queue in
                let items = 60
                try await queue.put(contentsOf: 0..<items)
                var delivered: [Int] = []
                for round in 0..<items {
                    let getting = Task { try await queue.get(timeout: .seconds(5)) }
                    if round % 3 != 0 { try await Task.sleep(for: .microseconds(Int.random(in: 0...3000))) }
                    getting.cancel()
                    if case .success(let delivery) = await getting.result {
                        delivered.append(delivery.value)
                        try await queue.taskDone(delivery)
                    }
                }
                // What no get returned is visible at once, never delivered: no lease was kept.
                let rest = try await queue.get(upTo: items, timeout: .seconds(5))
                #expect(rest.allSatisfy { $0.attempt == 1 })
                #expect((delivered + rest.map(\.value)).sorted() == Array(0..<items))
                try await queue.taskDone(rest)
                print("cancelled gets: \(items - delivered.count) of \(items) cancelled before they returned")
            }
        }

        @Test("a connection the server ended while idle is let go unused: puts after it succeed, none fails", .timeLimit(.minutes(1)))
        func serverEndsIdleConnections() async throws {
            let name = TestDatabase.uniqueName("terminated")
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Int.self, name: name) { queue in
                    for round in 0..<5 {
                        try await queue.put(round)  // a pooled connection, idle afterwards
                        try await client.execute("""
                            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                            """)
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    try await queue.put(5)
                    #expect(try await queue.count == 6)
                }
            }
        }

        @Test("a put with a timeout waits for the put lock no longer than its timeout", .timeLimit(.minutes(1)))
        func putLockWaitIsBounded() async throws {
            let name = TestDatabase.uniqueName("lock")
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Int.self, name: name, maxsize: 10) { queue in
                    try await queue.put(1)
                    try await client.execute("BEGIN")
                    try await client.execute("SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
                                             [.integer(DurableQueue<Int>.putLockClass), .string(name)])
                    let started = ContinuousClock.now
                    await expectDurableQueueError(.full) { try await queue.put(2, timeout: .seconds(1)) }
                    let waited = ContinuousClock.now - started
                    try await client.execute("ROLLBACK")
                    #expect(waited < .seconds(15), "waited \(waited) with the lock held")
                    try await queue.put(3, timeout: .seconds(5))
                    #expect(try await queue.count == 2)
                }
            }
        }

        @Test("a wait that asks for a second channel while another waits is heard at once: a put waiting for room, beside a waiting get", .timeLimit(.minutes(1)))
        func secondChannelWhileListening() async throws {
            let name = TestDatabase.uniqueName("channels")
            // Polling slower than the test's bound: only notifications can end these waits.
            try await TestDatabase.withQueue(Int.self, name: name, maxsize: 1, pollInterval: .seconds(60)) { queue in
                try await TestDatabase.withQueue(Int.self, name: name) { other in
                    try await queue.put(1)
                    let held = try await queue.get(timeout: .seconds(5))  // leased: still counts, so the queue is full
                    let getting = Task { try await queue.get(timeout: .seconds(30)) }
                    try await Task.sleep(for: .milliseconds(300))  // listening for puts now
                    let putting = Task { try await queue.put(2, timeout: .seconds(30)) }
                    try await Task.sleep(for: .milliseconds(300))  // waiting for room, listening for it
                    let acknowledged = ContinuousClock.now
                    try await other.taskDone(held)  // room: heard on the second channel
                    try await putting.value
                    let got = try await getting.value  // and the put, on the first
                    #expect(got.value == 2)
                    #expect(ContinuousClock.now - acknowledged < .seconds(10))
                    try await queue.taskDone(got)
                }
            }
        }

        @Test("a queue dropped without close() lets its listening connection go", .timeLimit(.minutes(1)))
        func droppedQueueStopsListening() async throws {
            guard let url = TestDatabase.url else { return }
            let name = TestDatabase.uniqueName("dropped")
            let listeners = """
                SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN "dq_put.\(name)"'
                """
            try await TestDatabase.withClient { client in
                do {
                    let queue = try DurableQueue<Int>(url: url, name: name)
                    await expectDurableQueueError(.empty) { try await queue.get(timeout: .milliseconds(300)) }
                    #expect(try await client.execute(listeners).integer(0, 0) == 1, "the get's wait listened")
                }
                var left: Int64? = 1
                for _ in 0..<100 where left != 0 {
                    try await Task.sleep(for: .milliseconds(100))
                    left = try await client.execute(listeners).integer(0, 0)
                }
                #expect(left == 0, "the dropped queue's LISTEN connection is still open")
            }
        }

        @Test("a channel no wait asked for in a while is let go (UNLISTEN), even while gets that find items go on, and listened to again when a wait needs it", .timeLimit(.minutes(1)))
        func idleChannelLetGo() async throws {
            let name = TestDatabase.uniqueName("linger")
            let lastStatement = """
                SELECT query FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%LISTEN "dq_put.\(name)"'
                """
            // pollInterval 1 s: a channel lingers 2 s after the last wait that asked for it.
            try await TestDatabase.withClient { client in
                try await TestDatabase.withQueue(Int.self, name: name, pollInterval: .seconds(1)) { queue in
                    await expectDurableQueueError(.empty) { try await queue.get(timeout: .milliseconds(300)) }
                    #expect(try await client.execute(lastStatement).string(0, 0) == "LISTEN \"dq_put.\(name)\"")
                    // Gets that find items keep coming: they do not wait, so they do not keep
                    // the channel.
                    try await queue.put(contentsOf: 0..<200)
                    var last: String?
                    for _ in 0..<100 where last?.hasPrefix("UNLISTEN") != true {
                        try await queue.taskDone(try await queue.get(timeout: .seconds(5)))
                        try await Task.sleep(for: .milliseconds(100))
                        last = try await client.execute(lastStatement).string(0, 0)
                    }
                    #expect(last == "UNLISTEN \"dq_put.\(name)\"")
                    try await queue.taskDone(try await queue.get(upTo: 1000, timeout: .seconds(5)))
                    // A wait after it listens again, and hears a put from elsewhere.
                    let waiting = Task { try await queue.get(timeout: .seconds(20)) }
                    try await Task.sleep(for: .milliseconds(300))
                    try await TestDatabase.withQueue(Int.self, name: name) { try await $0.put(7) }
                    let delivery = try await waiting.value
                    #expect(delivery.value == 7)
                    try await queue.taskDone(delivery)
                }
            }
        }

        @Test("bad names and URLs are refused with clear errors")
        func badArguments() async throws {
            await expectDurableQueueError(.invalidName) { try DurableQueue<Int>(url: "postgres://localhost/db", name: "") }
            await expectDurableQueueError(.invalidName) { try DurableQueue<Int>(url: "postgres://localhost/db", name: "a\"b") }
            await expectDurableQueueError(.invalidURL) { try DurableQueue<Int>(url: "http://localhost/db", name: "a") }
            await expectDurableQueueError(.invalidArgument) { try DurableQueue<Int>(url: "postgres://localhost/db", name: "a", maxsize: -1) }
        }
    }
}
