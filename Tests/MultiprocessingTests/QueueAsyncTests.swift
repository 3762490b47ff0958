import Foundation
import Multiprocessing
import MultiprocessingTestSupport
import Synchronization
import Testing

/// The async forms of the queues: waiting without a thread, cancellation that
/// loses nothing, and real processes on the other side.
@Suite("Queues in Swift concurrency", .serialized, .checksLeaks)
struct QueueAsyncTests {
    @Test("64 tasks await get() on empty queues; other tasks still run; then each gets its item", .timeLimit(.minutes(2)))
    func noBlockedThreads() async throws {
        // The cooperative pool has about one thread per core. If a waiting get held
        // one, 64 of them would leave none for the tasks below, and this would hang.
        let queues = try (0..<64).map { _ in try Queue<Int>() }
        let started = Counter()
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for (index, queue) in queues.enumerated() {
                group.addTask {
                    started.value.add(1, ordering: .relaxed)
                    return (index, try await queue.get())
                }
            }
            // Other work still gets threads while all 64 wait.
            let others = await withTaskGroup(of: Int.self) { others in
                for value in 0..<100 { others.addTask { await Task.yield(); return value } }
                return await others.reduce(0, +)
            }
            #expect(others == (0..<100).reduce(0, +))
            while started.value.load(ordering: .relaxed) < 64 { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(100))
            for queue in queues { #expect(queue.count == 0) }  // none took anything yet
            for (index, queue) in queues.enumerated() { try await queue.put(1000 + index) }
            var got = 0
            for try await (index, value) in group {
                #expect(value == 1000 + index)
                got += 1
            }
            #expect(got == 64)
        }
    }

    @Test("A cancelled get takes nothing: raced against the item's arrival, 300 times, every item is got exactly once")
    func cancelledGetLosesNothing() async throws {
        let queue = try Queue<Int>()
        var received: [Int] = []
        var cancelledEmpty = 0
        for round in 0..<300 {
            let getter = Task { try await queue.get() }
            // Cancel and put in a varying order and spacing, so the cancellation
            // lands before, during and after the item's arrival; every third round
            // the getter is cancelled and done with before the item comes at all.
            let pause = UInt32.random(in: 0...300)
            switch round % 3 {
            case 0:
                getter.cancel()
                await #expect(throws: CancellationError.self) { try await getter.value }
                try await queue.put(round)
            case 1:
                usleep(pause)
                try await queue.put(round)
                getter.cancel()
            default:
                getter.cancel()
                usleep(pause)
                try await queue.put(round)
            }
            do {
                received.append(try await getter.value)
            } catch is CancellationError {
                cancelledEmpty += 1
                // Not taken: the next get, by anyone, has it.
                received.append(try await queue.get(timeout: .seconds(10)))
            }
        }
        #expect(received == Array(0..<300))
        #expect(queue.count == 0)
        #expect(cancelledEmpty >= 100)  // at least the rounds cancelled before their item
    }

    @Test("A cancelled put puts nothing: raced against a slot freeing, 300 times, the queue holds exactly what put returned for")
    func cancelledPutPutsNothing() async throws {
        let queue = try Queue<Int>(maxsize: 1)
        try await queue.put(-1)  // full
        var putCount = 0
        var cancelledCount = 0
        var taken: [Int] = []
        for round in 0..<300 {
            let putter = Task { try await queue.put(round) }
            // As above: every third round the putter is cancelled and done with
            // before a slot frees; the others race the two.
            let pause = UInt32.random(in: 0...300)
            switch round % 3 {
            case 0:
                putter.cancel()
                await #expect(throws: CancellationError.self) { try await putter.value }
                #expect(queue.count == 1)  // still only the item before
                taken.append(try await queue.get(timeout: .seconds(10)))
            case 1:
                usleep(pause)
                taken.append(try await queue.get(timeout: .seconds(10)))  // frees the slot
                putter.cancel()
            default:
                putter.cancel()
                usleep(pause)
                taken.append(try await queue.get(timeout: .seconds(10)))
            }
            do {
                try await putter.value
                putCount += 1
            } catch is CancellationError {
                cancelledCount += 1
                try await queue.put(round)  // refill: the next round starts full again
            }
            #expect(queue.count == 1)
        }
        taken.append(try await queue.get(timeout: .seconds(10)))
        // Each round's value is in the queue once: put by the task, or (cancelled) by the refill.
        #expect(taken == [-1] + Array(0..<300))
        #expect(putCount + cancelledCount == 300)
        #expect(cancelledCount >= 100)  // at least the rounds cancelled before a slot freed
    }

    @Test("A child process puts; the parent consumes with for try await")
    func childProducesParentIterates() async throws {
        let queue = try Queue<Int>(maxsize: 100)
        let child = try ChildProcess.start(executable: helper, entry: "queue-produce", argument: Production(queue: queue, first: 0, count: 10_000))
        var tally = Tally()
        for try await value in queue {
            tally.count += 1
            tally.sum += value
            if tally.count == 10_000 { break }
        }
        #expect(tally == Tally(count: 10_000, sum: (0..<10_000).reduce(0, +)))
        #expect(try await child.join() == .exited(0))
        #expect(queue.count == 0)
    }

    @Test("The parent puts with await on a small queue; child processes consume")
    func parentProducesChildrenConsume() async throws {
        let queue = try Queue<Int>(maxsize: 8)
        let consumers = try startConsumers(2, on: queue)
        for value in 0..<10_000 { try await queue.put(value) }
        for _ in 0..<2 { try await queue.put(-1) }
        let tally = try collect(consumers)
        #expect(tally == Tally(count: 10_000, sum: (0..<10_000).reduce(0, +)))
    }

    @Test("await join() returns once a child has marked every item done")
    func joinAcrossProcesses() async throws {
        let queue = try JoinableQueue<Int>(maxsize: 16)
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "joinable-consume", argument: JoinableConsumption(queue: queue, results: theirs))
        theirs.close()
        for value in 0..<1000 { try await queue.put(value) }
        try await queue.put(-1)
        #expect(try await queue.join(timeout: .seconds(120)))
        #expect(queue.unfinishedTasks == 0)
        #expect(try await mine.receive(Tally.self, timeout: .seconds(60)) == Tally(count: 1000, sum: (0..<1000).reduce(0, +)))
        #expect(try await child.join() == .exited(0))
    }

    @Test("close() ends a for try await loop waiting on the queue, and a waiting get throws .closed")
    func closeEndsIteration() async throws {
        let queue = try Queue<Int>()
        let loop = Task {
            var seen: [Int] = []
            for try await value in queue { seen.append(value) }
            return seen
        }
        try await queue.put(1)
        try await queue.put(2)
        while queue.count > 0 { try await Task.sleep(for: .milliseconds(5)) }
        queue.close()
        #expect(try await loop.value == [1, 2])

        let other = try Queue<Int>()
        let getter = Task { try await other.get() }
        try await Task.sleep(for: .milliseconds(50))
        other.close()
        await #expect(throws: QueueError.closed) { try await getter.value }
    }

    @Test("Timeouts: an async get on an empty queue and a put on a full one give up with .empty and .full")
    func timeouts() async throws {
        let queue = try Queue<Int>(maxsize: 1)
        let start = ContinuousClock.now
        await #expect(throws: QueueError.empty) { try await queue.get(timeout: .milliseconds(200)) }
        try await queue.put(1)
        await #expect(throws: QueueError.full) { try await queue.put(2, timeout: .milliseconds(200)) }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(30))
        #expect(try await queue.get() == 1)
        #expect(queue.count == 0)
    }

    @Test("SimpleQueue: async put and get")
    func simpleQueue() async throws {
        let queue = try SimpleQueue<Int>()
        try await queue.put(41)
        #expect(try await queue.get() == 41)
    }
}

/// A count shared between tasks.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
