// The child program the Multiprocessing tests spawn (as servo/ipc-channel's
// spawn_client_test_helper): its main is ChildProcess.bootstrap with the entries
// the tests name. Run by hand, it says what it is and exits.
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
]

try ChildProcess.bootstrap(entries)
print("MultiprocessingTestHelper: the child program of the Multiprocessing tests; run by them, not by hand.")
