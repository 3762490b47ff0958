import Foundation
import MessagePack
import Multiprocessing
import MultiprocessingTestSupport
import Testing

/// Starts `count` consumer children on `queue`; each reports its Tally through its connection.
func startConsumers(_ count: Int, on queue: Queue<Int>) throws -> (results: [Connection], children: [ChildProcess]) {
    var results: [Connection] = []
    var children: [ChildProcess] = []
    for _ in 0..<count {
        let (mine, theirs) = try Connection.pipe()
        children.append(try ChildProcess.start(executable: helper, entry: "queue-consume", argument: Consumption(queue: queue, results: theirs)))
        theirs.close()  // the child has its own copy
        results.append(mine)
    }
    return (results, children)
}

/// Starts the helper's `entry` with the argument `argument` builds around a
/// connection, waits until the child says `word` on it, then gives the child a
/// moment to settle into what it waits on (a lock, a full queue, a full pipe).
func startSettled<Argument: Codable & Sendable>(
    _ entry: String, saying word: String, _ argument: (Connection) -> Argument
) throws -> ChildProcess {
    let (mine, theirs) = try Connection.pipe()
    let child = try ChildProcess.start(executable: helper, entry: entry, argument: argument(theirs))
    theirs.close()
    #expect(try mine.receive(String.self, timeout: .seconds(60)) == word)
    usleep(300_000)
    return child
}

/// The consumers' tallies added up, once each has reported and exited with code 0.
func collect(_ consumers: (results: [Connection], children: [ChildProcess])) throws -> Tally {
    var tally = Tally()
    for connection in consumers.results {
        let part = try connection.receive(Tally.self, timeout: .seconds(300))
        tally.count += part.count
        tally.sum += part.sum
    }
    for child in consumers.children { #expect(try child.join() == .exited(0)) }
    return tally
}

/// Queues between real processes (the helper executable is the child).
@Suite("Queues between processes", .serialized, .checksLeaks)
struct QueueTests {
    /// Starts `consumers` consumer children and `producers` producer children moving
    /// `total` integers (0..<total) through `queue`; returns what the consumers took.
    func move(_ total: Int, producers: Int, consumers: Int, queue: Queue<Int>) throws -> Tally {
        let consuming = try startConsumers(consumers, on: queue)
        var producing: [ChildProcess] = []
        let share = total / producers
        for index in 0..<producers {
            let count = index == producers - 1 ? total - share * index : share
            producing.append(try ChildProcess.start(executable: helper, entry: "queue-produce", argument: Production(queue: queue, first: share * index, count: count)))
        }
        for producer in producing { #expect(try producer.join() == .exited(0)) }
        for _ in 0..<consumers { try queue.put(-1) }
        return try collect(consuming)
    }

    @Test("1 producer and 1 consumer process: 100,000 items, each delivered once")
    func oneToOne() throws {
        let shm = ProcessSnapshot().sharedMemory
        let queue = try Queue<Int>(maxsize: 1000)
        let tally = try move(100_000, producers: 1, consumers: 1, queue: queue)
        #expect(tally == Tally(count: 100_000, sum: (0..<100_000).reduce(0, +)))
        #expect(queue.isEmpty)
        #expect(ProcessSnapshot().sharedMemory == shm)  // nothing named in /dev/shm
    }

    @Test("4 producers and 4 consumers: 100,000 items, each delivered once")
    func fourByFour() throws {
        let queue = try Queue<Int>(maxsize: 100)
        let tally = try move(100_000, producers: 4, consumers: 4, queue: queue)
        #expect(tally == Tally(count: 100_000, sum: (0..<100_000).reduce(0, +)))
        #expect(queue.count == 0)
    }

    @Test("100,000 items put before any consumer exists, then all delivered (put never waits for a reader)")
    func putBeforeConsumers() throws {
        let queue = try Queue<Int>(bufferSize: 64 << 10)
        let start = ContinuousClock.now
        // Large integers (9 bytes, 24 with the ring's header): 2.4 MB, more than the 64 KiB ring holds.
        let scale = 100_000_000  // most values over 2^32: 9-byte integers; the sum still fits an Int
        for value in 0..<100_000 { try queue.put(value * scale) }
        #expect(queue.count == 100_000)
        #expect(queue.pendingCount > 0)  // the ring could not hold them: they wait for the writer thread
        #expect(ContinuousClock.now - start < .seconds(120))
        let consuming = try startConsumers(2, on: queue)
        try queue.put(-1)
        try queue.put(-1)
        let tally = try collect(consuming)
        #expect(tally == Tally(count: 100_000, sum: (0..<100_000).reduce(0, +) * scale))
        #expect(queue.flush(timeout: .seconds(10)))
    }

    @Test("a full queue: isFull, putNowait and put(timeout:) throw .full; a get in another process frees a slot")
    func fullQueue() throws {
        let queue = try Queue<Int>(maxsize: 3)
        for value in 1...3 { try queue.put(value) }
        #expect(queue.isFull && queue.count == 3)
        #expect(throws: QueueError.full) { try queue.putNowait(4) }
        let start = ContinuousClock.now
        #expect(throws: QueueError.full) { try queue.put(4, timeout: .milliseconds(200)) }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(150) && waited < .seconds(30))
        // A consumer child takes items: the blocked put goes through.
        let (mine, theirs) = try Connection.pipe()
        let consumer = try ChildProcess.start(executable: helper, entry: "queue-consume", argument: Consumption(queue: queue, results: theirs))
        theirs.close()
        try queue.put(4, timeout: .seconds(60))
        try queue.put(-1, timeout: .seconds(60))
        #expect(try mine.receive(Tally.self, timeout: .seconds(60)) == Tally(count: 4, sum: 10))
        #expect(try consumer.join() == .exited(0))
    }

    @Test("an empty queue: getNowait and get(timeout:) throw .empty, after about the timeout")
    func emptyQueue() throws {
        let queue = try Queue<Int>()
        #expect(queue.isEmpty && !queue.isFull && queue.count == 0 && queue.maxsize == 0)
        #expect(throws: QueueError.empty) { try queue.getNowait() }
        let start = ContinuousClock.now
        #expect(throws: QueueError.empty) { try queue.get(timeout: .milliseconds(200)) }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(150) && waited < .seconds(30))
        try queue.put(5)
        #expect(queue.count == 1 && !queue.isEmpty)
        #expect(try queue.get(timeout: .seconds(5)) == 5)
    }

    struct Unencodable: Codable, Sendable {
        func encode(to encoder: any Encoder) throws {
            throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "cannot"))
        }
        init() {}
        init(from decoder: any Decoder) throws {}
    }

    @Test("an item that cannot be encoded makes put throw in the caller, and takes no slot")
    func encodingError() throws {
        let queue = try Queue<Unencodable>(maxsize: 1)
        #expect(throws: EncodingError.self) { try queue.put(Unencodable()) }
        #expect(queue.count == 0)
    }

    @Test("poll: false on an empty queue after the timeout, true once another process puts, without taking the item")
    func poll() throws {
        let queue = try Queue<Int>()
        #expect(try !queue.poll())
        let start = ContinuousClock.now
        #expect(try !queue.poll(timeout: .milliseconds(200)))
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        let producer = try ChildProcess.start(executable: helper, entry: "queue-produce", argument: Production(queue: queue, first: 42, count: 1))
        #expect(try queue.poll(timeout: .seconds(60)))
        #expect(try queue.poll())  // still there: poll takes nothing
        #expect(try queue.getNowait() == 42)
        #expect(try !queue.poll())
        #expect(try producer.join() == .exited(0))
    }

    @Test("close: put and get throw .closed in this process")
    func close() throws {
        let queue = try Queue<Int>()
        try queue.put(1)
        queue.close()
        #expect(throws: QueueError.closed) { try queue.put(2) }
        #expect(throws: QueueError.closed) { try queue.get() }
    }

    @Test("JoinableQueue: join returns when consumers in other processes have marked every item done")
    func joinable() throws {
        let queue = try JoinableQueue<Int>()
        let (mine, theirs) = try Connection.pipe()
        let consumer = try ChildProcess.start(executable: helper, entry: "joinable-consume", argument: JoinableConsumption(queue: queue, results: theirs))
        theirs.close()
        for value in 1...50 { try queue.put(value) }
        try queue.put(-1)
        #expect(try queue.join(timeout: .seconds(120)))
        #expect(queue.unfinishedTasks == 0)
        #expect(try mine.receive(Tally.self, timeout: .seconds(60)) == Tally(count: 50, sum: 1275))
        #expect(try consumer.join() == .exited(0))
        #expect(throws: QueueError.taskDoneTooOften) { try queue.taskDone() }
        #expect(try queue.join(timeout: .zero))
    }

    @Test("SimpleQueue: a child's put, the parent's get")
    func simple() throws {
        let queue = try SimpleQueue<String>()
        let child = try ChildProcess.start(executable: helper, entry: "simple-put", argument: queue)
        #expect(try queue.get() == "hello")
        #expect(try child.join() == .exited(0))
        #expect(queue.isEmpty)
    }

    @Test("a consumer killed while it waits in get (holding the read lock) does not stop the next one; nothing is lost")
    func killedConsumer() throws {
        let queue = try Queue<Int>()
        // It reaches get and takes the read lock.
        let blocked = try startSettled("queue-block-get", saying: "ready") { Consumption(queue: queue, results: $0) }
        try blocked.kill()
        #expect(try blocked.join(timeout: .seconds(60)) == .signaled(SIGKILL))
        for value in 1...10 { try queue.put(value) }
        #expect(try queue.get(timeout: .seconds(30)) == 1)  // this process takes the lock the dead one held
        let (results, theirResults) = try Connection.pipe()
        let next = try ChildProcess.start(executable: helper, entry: "queue-consume", argument: Consumption(queue: queue, results: theirResults))
        theirResults.close()
        try queue.put(-1)
        #expect(try results.receive(Tally.self, timeout: .seconds(60)) == Tally(count: 9, sum: 54))
        #expect(try next.join() == .exited(0))
    }

    @Test("a producer killed while it waits in put on a full queue does not stop the others")
    func killedProducer() throws {
        let queue = try Queue<Int>(maxsize: 1)
        try queue.put(1)
        // It reaches put and waits for a slot.
        let blocked = try startSettled("queue-block-put", saying: "ready") { Consumption(queue: queue, results: $0) }
        try blocked.kill()
        #expect(try blocked.join(timeout: .seconds(60)) == .signaled(SIGKILL))
        #expect(queue.count == 1)  // the dead producer took no slot
        #expect(try queue.get(timeout: .seconds(30)) == 1)
        let producer = try ChildProcess.start(executable: helper, entry: "queue-produce", argument: Production(queue: queue, first: 10, count: 3))
        var got: [Int] = []
        for _ in 0..<3 { got.append(try queue.get(timeout: .seconds(60))) }
        #expect(got == [10, 11, 12])
        #expect(try producer.join() == .exited(0))
    }
}

/// Large items, writers that die in the middle of one, and what a process leaves behind.
@Suite("Queues: large items, dead writers, leaks", .serialized, .checksLeaks)
struct QueueRecoveryTests {
    @Test("a 64 MiB item crosses a queue to another process intact")
    func largeItem() throws {
        let queue = try Queue<[UInt8]>()
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "blob-get", argument: BlobWork(queue: queue, results: theirs, size: 0))
        theirs.close()
        try queue.put(Blob.pattern(64 << 20))
        #expect(try mine.receive([Int].self, timeout: .seconds(120)) == [64 << 20, 1])
        #expect(try child.join() == .exited(0))
        #expect(queue.count == 0)
    }

    @Test("large Data items read without a copy stay intact while later items arrive")
    func largeDataItems() throws {
        let queue = try Queue<Data>()
        let sent = (1...4).map { index in Data(Blob.pattern(300_000 + index).map { $0 ^ UInt8(index) }) }
        for data in sent { try queue.put(data) }
        var received: [Data] = []
        for _ in sent { received.append(try queue.get(timeout: .seconds(60))) }
        #expect(received == sent)
        received[0][0] ^= 0xff  // a change to one is its own
        #expect(received[0][0] != sent[0][0] && received[1] == sent[1])
    }

    /// Starts a child that puts an 8 MiB blob (through a 64 KiB ring) and kills it
    /// while its writer thread is in the middle of the item, waiting for room.
    func killWriterMidFrame(_ queue: Queue<[UInt8]>) throws {
        // Its writer thread fills the pipe and waits for room, holding the write lock.
        let writer = try startSettled("blob-put-and-wait", saying: "put") { BlobWork(queue: queue, results: $0, size: 8 << 20) }
        try writer.kill()
        #expect(try writer.join(timeout: .seconds(60)) == .signaled(SIGKILL))
    }

    @Test("a writer killed mid-item while another puts: the next writer ends the item, the reader passes it by and takes the next")
    func writerKilledMidFrameThenAnotherWriter() throws {
        let queue = try Queue<[UInt8]>(bufferSize: 64 << 10)
        try killWriterMidFrame(queue)
        try queue.put([1, 2, 3])  // this writer finds the item open: it ends it once a reader makes room
        #expect(try queue.get(timeout: .seconds(60)) == [1, 2, 3])
        #expect(queue.count == 0)
        try queue.put([4])
        #expect(try queue.get(timeout: .seconds(60)) == [4])
    }

    @Test("a writer killed mid-item with no other writer: the reader waiting for the rest ends the item itself")
    func writerKilledMidFrameReaderEndsIt() throws {
        let queue = try Queue<[UInt8]>(bufferSize: 64 << 10)
        try killWriterMidFrame(queue)
        #expect(throws: QueueError.empty) { _ = try queue.get(timeout: .seconds(2)).count }  // passes the dead item, finds none after it
        #expect(queue.count == 0)
        try queue.put([5, 6])
        #expect(try queue.get(timeout: .seconds(60)) == [5, 6])
    }

    @Test("a producer killed with items its writer thread had yet to write: their slots are freed for the others")
    func killedWithItemsWaiting() throws {
        let queue = try Queue<[UInt8]>(maxsize: 4, bufferSize: 64 << 10)
        // Four 1 MiB items: the first streams through the 64 KiB ring; the rest wait in the child's writer thread.
        let writer = try startSettled("blob-put-and-wait", saying: "put") { BlobWork(queue: queue, results: $0, size: 1 << 20, count: 4) }
        #expect(queue.isFull)
        try writer.kill()
        // Full, until a waiting put finds the dead producer (not yet reaped: a zombie
        // counts as gone) and frees the slots of its unwritten items.
        try queue.put([7], timeout: .seconds(30))
        #expect(try writer.join(timeout: .seconds(60)) == .signaled(SIGKILL))
        #expect(try queue.get(timeout: .seconds(60)) == [7])  // the item begun is passed by
        #expect(queue.count == 0)
    }

    @Test("after moving items between several processes, a process has the same descriptors open, nothing new in /dev/shm, and no child unreaped")
    func noLeaks() throws {
        // Run in a child of its own: this test process has other suites opening files and starting children meanwhile.
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "leak-check", argument: theirs)
        theirs.close()
        let report = try mine.receive(LeakReport.self, timeout: .seconds(300))
        #expect(try child.join() == .exited(0))
        #expect(report.delivered == Tally(count: 10_100, sum: (0..<10_000).reduce(0, +) + (0..<100).reduce(0, +)))
        #expect(report.descriptorsAfter == report.descriptorsBefore)
        #expect(report.sharedMemoryAdded == [])
        #expect(!report.unreapedChildren)
    }
}

@Suite("Queue limits", .checksLeaks)
struct QueueLimitTests {
    @Test("an item over the reader's maximum frame length is refused before it is allocated")
    func frameTooLong() throws {
        let queue = try Queue<String>()
        queue.maxFrameLength = 16
        try queue.put(String(repeating: "x", count: 100))
        let error = #expect(throws: QueueError.self) { try queue.get(timeout: .seconds(5)) }
        #expect(error?.code == .frameTooLong)
        // The refused frame is skipped by the next reader: the queue stays usable and counts right.
        queue.maxFrameLength = 1 << 20
        try queue.put("next")
        #expect(try queue.get(timeout: .seconds(5)) == "next")
        #expect(queue.count == 0)
    }

    @Test("a closed connection is not handed to a child (its number may name another file by then)")
    func closedHandle() throws {
        let (a, b) = try Connection.pipe()
        b.close()
        #expect(throws: ConnectionError.self) { try ChildProcess.start(executable: helper, entry: "greet", argument: Greeting(connection: b, name: "x")) }
        #expect(throws: ConnectionError.self) { try ChildProcess.start(executable: "/bin/true", handing: [b]) }
        _ = a
    }
}
