// The child program the Multiprocessing tests spawn (as servo/ipc-channel's
// spawn_client_test_helper): its main is ChildProcess.bootstrap with the entries
// the tests name. Run by hand, it says what it is and exits.
import Foundation
import Glibc
import MessagePack
import Multiprocessing
import MultiprocessingTestSupport

struct Failure: Error, CustomStringConvertible {
    var description: String
}

let entries: [any ChildProcessEntry] = [
    ChildProcess.Entry("greet") { (greeting: Greeting) in
        try greeting.connection.send("hello, \(greeting.name)")
    },
    // Sends back every value until the other end closes.
    ChildProcess.Entry("echo") { (connection: Connection) in
        while let value = try? connection.receive(MessagePackValue.self) {
            try connection.send(value)
        }
    },
    // Reads integers from one connection until it closes; writes their sum to the other.
    ChildProcess.Entry("sum") { (pipes: TwoPipes) in
        var total = 0
        while let value = try? pipes.input.receive(Int.self) { total += value }
        try pipes.output.send(total)
    },
    ChildProcess.Entry("exit") { (code: Int32) in
        exit(code)
    },
    ChildProcess.Entry("fail") { (message: String) in
        throw Failure(description: message)
    },
    // Says it is ready, then waits to be terminated or killed.
    ChildProcess.Entry("wait-forever") { (connection: Connection) in
        try connection.send("ready")
        while true { pause() }
    },
    // Puts `count` integers from `first` on the queue.
    ChildProcess.Entry("queue-produce") { (work: Production) in
        for value in work.first..<(work.first + work.count) { try work.queue.put(value) }
    },
    // Takes integers until a -1, then reports how many it took and their sum.
    ChildProcess.Entry("queue-consume") { (work: Consumption) in
        var tally = Tally()
        while true {
            let value = try work.queue.get(timeout: .seconds(120))
            if value == -1 { break }
            tally.count += 1
            tally.sum += value
        }
        try work.results.send(tally)
    },
    // As queue-consume, marking each item (the -1 too) done.
    ChildProcess.Entry("joinable-consume") { (work: JoinableConsumption) in
        var tally = Tally()
        while true {
            let value = try work.queue.get(timeout: .seconds(120))
            try work.queue.taskDone()
            if value == -1 { break }
            tally.count += 1
            tally.sum += value
        }
        try work.results.send(tally)
    },
    // Says it is ready, then waits in get (holding the queue's read lock) until killed.
    ChildProcess.Entry("queue-block-get") { (work: Consumption) in
        try work.results.send("ready")
        _ = try work.queue.get()
    },
    // Says it is ready, then waits in put on a full queue until killed.
    ChildProcess.Entry("queue-block-put") { (work: Consumption) in
        try work.results.send("ready")
        try work.queue.put(99)
    },
    ChildProcess.Entry("simple-put") { (queue: SimpleQueue<String>) in
        try queue.put("hello")
    },
    // Puts blobs, says so, and waits to be killed (its writer thread is then still
    // writing them, if the pipe cannot hold them all).
    ChildProcess.Entry("blob-put-and-wait") { (work: BlobWork) in
        for _ in 0..<work.count { try work.queue.put(Blob.pattern(work.size)) }
        try work.results.send("put")
        while true { pause() }
    },
    // Takes one blob and reports its size, and whether its bytes are the pattern.
    ChildProcess.Entry("blob-get") { (work: BlobWork) in
        let blob = try work.queue.get(timeout: .seconds(120))
        try work.results.send([blob.count, Blob.isPattern(blob) ? 1 : 0])
    },
    // Puts parcels first..<first+count, then waits until they are in the ring.
    ChildProcess.Entry("parcel-produce") { (work: ParcelWork) in
        if let point = work.crashAt { setenv("SWIFT_MULTIPROCESSING_CRASH_AT", point, 1) }
        for id in work.first..<(work.first + work.count) { try work.queue.put(Parcel(id, large: work.large)) }
        work.queue.flush()
    },
    // Takes parcels until one with id -1, reporting each as it takes it.
    ChildProcess.Entry("parcel-consume") { (work: ParcelWork) in
        if let point = work.crashAt { setenv("SWIFT_MULTIPROCESSING_CRASH_AT", point, 1) }
        while true {
            let parcel = try work.queue.get(timeout: .seconds(120))
            if parcel.id == -1 { break }
            try work.reports?.send([parcel.id, parcel.isIntact ? 1 : 0])
        }
    },
    // Moves items through queues between children of its own, twice, and reports
    // what this process had open before and after the second time (the first
    // opens what libraries keep for good), and whether any child was left unreaped.
    ChildProcess.Entry("leak-check") { (results: Connection) in
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        func work() throws -> Tally {
            let queue = try Queue<Int>(maxsize: 100)
            let joinable = try JoinableQueue<Int>()
            var links: [Connection] = []
            var children: [ChildProcess] = []
            for _ in 0..<2 {
                let (mine, theirs) = try Connection.pipe()
                children.append(try ChildProcess.start(executable: me, entry: "queue-consume", argument: Consumption(queue: queue, results: theirs)))
                links.append(mine)
            }
            let (joinMine, joinTheirs) = try Connection.pipe(duplex: true)
            children.append(try ChildProcess.start(executable: me, entry: "joinable-consume", argument: JoinableConsumption(queue: joinable, results: joinTheirs)))
            for index in 0..<2 {
                children.append(try ChildProcess.start(executable: me, entry: "queue-produce", argument: Production(queue: queue, first: index * 5_000, count: 5_000)))
            }
            for value in 0..<100 { try joinable.put(value) }
            try joinable.put(-1)
            _ = try joinable.join(timeout: .seconds(120))
            for child in children.suffix(2) { _ = try child.join() }
            for _ in 0..<2 { try queue.put(-1) }
            var tally = Tally()
            for link in links + [joinMine] {
                let part = try link.receive(Tally.self, timeout: .seconds(120))
                tally.count += part.count
                tally.sum += part.sum
            }
            for child in children { _ = try child.join() }
            return tally
        }
        ProcessSnapshot.dispatchWarmedUp
        _ = try work()
        let before = ProcessSnapshot()
        let tally = try work()
        let after = ProcessSnapshot()
        try results.send(LeakReport(
            descriptorsBefore: before.descriptors, descriptorsAfter: after.descriptors,
            sharedMemoryAdded: after.sharedMemory.subtracting(before.sharedMemory).sorted(),
            unreapedChildren: ProcessSnapshot.hasChildren(), delivered: tally))
    },
    // Reports the descriptors open in the child.
    ChildProcess.Entry("descriptors") { (connection: Connection) in
        var open: [Int] = []
        if let directory = opendir("/proc/self/fd") {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if let fd = Int(name), fd != Int(dirfd(directory)) { open.append(fd) }
            }
            closedir(directory)
        }
        try connection.send(open.sorted())
    },
    // Ignores SIGTERM, says it is ready, then waits to be killed.
    ChildProcess.Entry("ignore-terminate") { (connection: Connection) in
        signal(SIGTERM, SIG_IGN)
        try connection.send("ready")
        while true { pause() }
    },
    // Waits until the other end of its connection closes (at most `seconds`),
    // then exits with `code`.
    ChildProcess.Entry("exit-on-close") { (work: ExitOnClose) in
        _ = try? work.connection.poll(timeout: .seconds(work.seconds))
        exit(work.code)
    },
    // Sends the integers 0..<count, then exits (the other end reads end of file).
    ChildProcess.Entry("send-numbers") { (work: Numbers) in
        for value in 0..<work.count { try work.connection.send(value) }
    },
    // Runs a pool of 2 workers, sends their pids, gives each a task that hangs, and
    // waits: the test kills this process and looks for the workers.
    ChildProcess.Entry("pool-parent") { (work: PoolParent) in
        let pool = try ProcessPool(workers: 2, executable: work.executable)
        var pids: Set<Int32> = []
        while pids.count < 2 {
            let pid = try pool.run(PoolTasks.sleep, 0.05)
            pids.insert(pid)
        }
        for _ in 0..<2 { Thread.detachNewThread { _ = try? pool.run(PoolTasks.sleep, 3600) } }
        try work.connection.send(pids.sorted())
        while true { pause() }
    },
] + PoolTasks.all

try ChildProcess.bootstrap(entries)
print("MultiprocessingTestHelper: the child program of the Multiprocessing tests; run by them, not by hand.")
