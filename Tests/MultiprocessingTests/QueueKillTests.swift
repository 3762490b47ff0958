import Foundation
import Multiprocessing
import MultiprocessingTestSupport
import Testing

/// What consumers reported: every parcel id taken (with repeats, if any), and
/// how many were not intact.
struct Deliveries {
    var ids: [Int] = []
    var torn = 0

    mutating func add(_ report: [Int]) {
        ids.append(report[0])
        if report[1] != 1 { torn += 1 }
    }

    var duplicates: [Int] {
        var seen = Set<Int>()
        return ids.filter { !seen.insert($0).inserted }
    }
}

/// Reads reports ([id, intact]) from consumers' connections until each ends (its
/// consumer exited or was killed: a report cut short ends it too).
final class ReportReader: @unchecked Sendable {
    // @unchecked: `open` and `deliveries` are touched only under `lock`.
    private let lock = NSLock()
    private var open: [Connection] = []
    private var result = Deliveries()
    private var stopping = false
    private var running = false

    func add(_ connection: Connection) {
        lock.withLock { open.append(connection) }
    }

    /// Reads on a thread of Dispatch's (a Foundation Thread brings a run loop, whose
    /// descriptors the leak check would see come and go).
    func start() {
        running = true
        DispatchQueue(label: "chaos-reports").async { [self] in
            while true {
                let (connections, stop) = lock.withLock { (open, stopping) }
                if connections.isEmpty && stop {
                    lock.withLock { running = false }
                    return
                }
                guard let ready = try? wait(connections, timeout: .milliseconds(50)) else { continue }
                for connection in ready {
                    do {
                        let report = try connection.receive([Int].self, timeout: .seconds(5))
                        lock.withLock { result.add(report) }
                    } catch {
                        connection.close()
                        lock.withLock { open.removeAll { $0 === connection } }
                    }
                }
            }
        }
    }

    /// Waits until every connection has ended, then returns what was reported.
    func finish() -> Deliveries {
        lock.withLock { stopping = true }
        while lock.withLock({ running }) { usleep(10_000) }
        return lock.withLock { result }
    }
}

/// Takes parcels in this process until the queue has stayed empty for `quiet`
/// (a reader that waits a second lets go of putters that died, so `count` settles).
func drain(_ queue: Queue<Parcel>, into deliveries: inout Deliveries, quiet: Duration = .milliseconds(1200)) throws {
    while true {
        do {
            let parcel = try queue.get(timeout: quiet)
            deliveries.add([parcel.id, parcel.isIntact ? 1 : 0])
        } catch QueueError.empty {
            return
        }
    }
}

/// A process killed at each commit point of the queue's protocol, by the queue
/// itself (`SWIFT_MULTIPROCESSING_CRASH_AT`): the n-th time it reaches the point,
/// for several n, with items that fit the ring and items that stream through it.
@Suite("Queues: a process killed at every commit point", .serialized, .checksLeaks)
struct QueueCommitPointTests {
    static let producerPoints = [
        "beforeReserving", "slotsIntentWritten", "slotsCommitted", "writeHeaderCopied", "writeCopied",
        "writeIntentWritten", "writeCommitted", "streamed",
    ]
    static let consumerPoints = ["readCopied", "readIntentWritten", "readCommitted"]

    /// The n-th passes to kill at: early, mid-way, and one drawn at random. (A
    /// producer streams its 4 large items in 8 pieces or more.)
    static func passes(_ point: String) -> [Int] {
        point == "streamed" ? [1, 3, Int.random(in: 2...8)] : [1, 4, Int.random(in: 2...40)]
    }

    @Test("a producer killed at each commit point: what it put before is delivered once, whole, in order; count is exact; the queue goes on",
          arguments: producerPoints)
    func producerKilled(at point: String) throws {
        for pass in Self.passes(point) {
            let queue = try Queue<Parcel>(bufferSize: 64 << 10)
            let child = try ChildProcess.start(
                executable: helper, entry: "parcel-produce",
                argument: ParcelWork(queue: queue, reports: nil, crashAt: "\(point):\(pass)", count: 90))
            var got = Deliveries()
            // This process reads meanwhile: a streamed item needs a reader to pass through the ring.
            while child.isAlive { try drain(queue, into: &got, quiet: .milliseconds(100)) }
            #expect(try child.join(timeout: .seconds(120)) == .signaled(SIGKILL), "the producer did not reach \(point) \(pass) times")
            try drain(queue, into: &got)
            // One producer: what reached the ring is a prefix of what it put, each once.
            #expect(got.ids == Array(0..<got.ids.count), "\(point):\(pass): \(got.ids)")
            #expect(got.torn == 0)
            #expect(queue.count == 0, "\(point):\(pass)")
            try queue.put(Parcel(1000, large: true))
            #expect(try queue.get(timeout: .seconds(30)) == Parcel(1000, large: true))
            #expect(queue.count == 0)
        }
    }

    @Test("a writers-table entry given back at exit and claimed again is not set from its last owner's record when the next owner is killed")
    func reusedEntry() throws {
        let queue = try Queue<Parcel>(bufferSize: 64 << 10)
        // Small items: they all fit the ring before anyone reads.
        let first = try ChildProcess.start(executable: helper, entry: "parcel-produce", argument: ParcelWork(queue: queue, reports: nil, count: 5, large: false))
        #expect(try first.join(timeout: .seconds(120)) == .exited(0))  // its entry is given back at exit
        let second = try ChildProcess.start(
            executable: helper, entry: "parcel-produce",
            argument: ParcelWork(queue: queue, reports: nil, crashAt: "writeCopied:1", first: 100, count: 1, large: false))
        #expect(try second.join(timeout: .seconds(120)) == .signaled(SIGKILL))
        var got = Deliveries()
        try drain(queue, into: &got)
        #expect(got.ids == Array(0..<5))
        #expect(queue.count == 0)
    }

    @Test("a consumer killed at each commit point: every item is delivered once, whole, but at most the one it held; count is exact; the queue goes on",
          arguments: consumerPoints)
    func consumerKilled(at point: String) throws {
        for pass in Self.passes(point) {
            let queue = try Queue<Parcel>(bufferSize: 64 << 10)
            for id in 0..<90 { try queue.put(Parcel(id, large: true)) }
            let (mine, theirs) = try Connection.pipe()
            let child = try ChildProcess.start(
                executable: helper, entry: "parcel-consume",
                argument: ParcelWork(queue: queue, reports: theirs, crashAt: "\(point):\(pass)"))
            theirs.close()
            var got = Deliveries()
            while let report = try? mine.receive([Int].self, timeout: .seconds(60)) { got.add(report) }
            #expect(try child.join(timeout: .seconds(120)) == .signaled(SIGKILL), "the consumer did not reach \(point) \(pass) times")
            try drain(queue, into: &got)
            #expect(got.duplicates == [], "\(point):\(pass)")
            #expect(Set(got.ids).isSubset(of: Set(0..<90)))
            #expect(got.ids.count >= 89, "\(point):\(pass): more than the item in hand lost: \(Set(0..<90).subtracting(got.ids).sorted())")
            #expect(got.torn == 0)
            #expect(queue.count == 0, "\(point):\(pass)")
            try queue.put(Parcel(29, large: true))
            #expect(try queue.get(timeout: .seconds(30)) == Parcel(29, large: true))
            #expect(queue.count == 0)
        }
    }
}

/// Producers and consumers killed at random moments under load, and replaced, as a
/// supervisor restarting crashed workers would.
@Suite("Queues: chaos", .serialized, .checksLeaks)
struct QueueChaosTests {
    /// Seconds of killing (SWIFT_MULTIPROCESSING_CHAOS_SECONDS; short in `make test`).
    static let seconds = Double(ProcessInfo.processInfo.environment["SWIFT_MULTIPROCESSING_CHAOS_SECONDS"] ?? "") ?? 8
    /// Parcels each producer run puts.
    static let runLength = 20_000

    @Test("random SIGKILLs of consumers and producers under load: nothing hangs, nothing arrives twice or torn, at most one item lost per kill, count exact, the queue goes on")
    func chaos() throws {
        let queue = try Queue<Parcel>(maxsize: 500, bufferSize: 64 << 10)
        let reports = ReportReader()
        reports.start()
        var consumers: [ChildProcess] = []
        var producers: [(child: ChildProcess, first: Int)] = []
        var nextRange = 0
        func startConsumer() throws {
            let (mine, theirs) = try Connection.pipe()
            consumers.append(try ChildProcess.start(executable: helper, entry: "parcel-consume", argument: ParcelWork(queue: queue, reports: theirs)))
            theirs.close()
            reports.add(mine)
        }
        func startProducer() throws {
            let first = nextRange * 1_000_000
            nextRange += 1
            producers.append((try ChildProcess.start(
                executable: helper, entry: "parcel-produce",
                argument: ParcelWork(queue: queue, reports: nil, first: first, count: Self.runLength)), first))
        }
        for _ in 0..<3 { try startConsumer() }
        for _ in 0..<2 { try startProducer() }

        var consumerKills = 0
        var killedProducers: Set<Int> = []
        let end = Date().addingTimeInterval(Self.seconds)
        var nextProducerKill = Date().addingTimeInterval(0.4)
        while Date() < end {
            usleep(UInt32.random(in: 20_000...120_000))
            let victim = consumers.remove(at: Int.random(in: 0..<consumers.count))
            try victim.kill()
            _ = try victim.join()
            consumerKills += 1
            try startConsumer()
            // Two producers at work throughout: one that finished its run is followed by another.
            let working = producers.filter { $0.child.isAlive }.count
            for _ in working..<2 { try startProducer() }
            if Date() >= nextProducerKill, let index = producers.indices.filter({ producers[$0].child.isAlive }).randomElement() {
                let victim = producers.remove(at: index)
                try victim.child.kill()
                _ = try victim.child.join()
                killedProducers.insert(victim.first)
                try startProducer()
                nextProducerKill = Date().addingTimeInterval(Double.random(in: 0.2...0.8))
            }
        }
        // The survivors finish (those that finished already say how they ended); then
        // the consumers are told to stop.
        for producer in producers { #expect(try producer.child.join(timeout: .seconds(300)) == .exited(0)) }
        for _ in consumers { try queue.put(Parcel(-1, large: false), timeout: .seconds(60)) }
        for consumer in consumers { #expect(try consumer.join(timeout: .seconds(120)) == .exited(0)) }
        var got = reports.finish()
        try drain(queue, into: &got)

        #expect(got.duplicates.isEmpty, "delivered twice: \(got.duplicates.prefix(20))")
        #expect(got.torn == 0)
        // Per producer run: ids missing below the highest delivered are holes. Only a
        // consumer killed holding an item makes one (a producer killed loses only
        // what it had not yet put in the ring: the end of its run).
        var holes = 0
        var byRun: [Int: [Int]] = [:]
        for id in got.ids { byRun[id / 1_000_000 * 1_000_000, default: []].append(id) }
        for producer in producers {
            let ids = byRun[producer.first] ?? []
            #expect(ids.count >= Self.runLength - consumerKills, "a producer that was not killed lost more than the consumers' kills")
        }
        for (first, ids) in byRun {
            let highest = ids.max()! - first
            holes += highest + 1 - ids.count
        }
        #expect(holes <= consumerKills, "\(holes) items lost for \(consumerKills) consumer kills")
        #expect(queue.count == 0)
        try queue.put(Parcel(7, large: true))
        #expect(try queue.get(timeout: .seconds(30)) == Parcel(7, large: true))
        print("chaos: \(got.ids.count) items delivered in \(Self.seconds) s of kills; \(consumerKills) consumers and \(killedProducers.count) producers killed; \(holes) items lost")
    }
}
