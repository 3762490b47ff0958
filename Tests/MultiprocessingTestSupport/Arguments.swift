// The start arguments the Multiprocessing tests hand the helper child: one
// definition, for the parent that encodes them and the child that decodes them.
import Glibc
import Multiprocessing

public struct Greeting: Codable, Sendable {
    public var connection: Connection
    public var name: String
    public init(connection: Connection, name: String) { (self.connection, self.name) = (connection, name) }
}

public struct TwoPipes: Codable, Sendable {
    public var input: Connection
    public var output: Connection
    public init(input: Connection, output: Connection) { (self.input, self.output) = (input, output) }
}

public struct Production: Codable, Sendable {
    public var queue: Queue<Int>
    public var first: Int
    public var count: Int
    public init(queue: Queue<Int>, first: Int, count: Int) { (self.queue, self.first, self.count) = (queue, first, count) }
}

public struct Consumption: Codable, Sendable {
    public var queue: Queue<Int>
    public var results: Connection
    public init(queue: Queue<Int>, results: Connection) { (self.queue, self.results) = (queue, results) }
}

public struct JoinableConsumption: Codable, Sendable {
    public var queue: JoinableQueue<Int>
    public var results: Connection
    public init(queue: JoinableQueue<Int>, results: Connection) { (self.queue, self.results) = (queue, results) }
}

/// What a consumer took: how many items, and their sum (a checksum).
public struct Tally: Codable, Sendable, Equatable {
    public var count = 0
    public var sum = 0
    public init(count: Int = 0, sum: Int = 0) { (self.count, self.sum) = (count, sum) }
}

/// Blobs through a queue: `count` blobs of `size` bytes of `Blob.pattern`.
public struct BlobWork: Codable, Sendable {
    public var queue: Queue<[UInt8]>
    public var results: Connection
    public var size: Int
    public var count: Int
    public init(queue: Queue<[UInt8]>, results: Connection, size: Int, count: Int = 1) {
        (self.queue, self.results, self.size, self.count) = (queue, results, size, count)
    }
}

public enum Blob {
    /// `size` bytes that differ from their neighbours, so a shifted or zeroed run shows.
    public static func pattern(_ size: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            // 8 bytes at a time: tests are built without optimization.
            let words = UnsafeMutableRawBufferPointer(buffer)
            var offset = 0
            while offset + 8 <= size {
                words.storeBytes(of: UInt64(offset) &* 0x9E37_79B9_7F4A_7C15, toByteOffset: offset, as: UInt64.self)
                offset += 8
            }
            while offset < size {
                buffer[offset] = UInt8(truncatingIfNeeded: offset)
                offset += 1
            }
            count = size
        }
    }

    /// Whether `bytes` are exactly `pattern(bytes.count)`.
    public static func isPattern(_ bytes: [UInt8]) -> Bool {
        let expected = pattern(bytes.count)
        return bytes.isEmpty || bytes.withUnsafeBytes { got in expected.withUnsafeBytes { memcmp(got.baseAddress!, $0.baseAddress!, got.count) == 0 } }
    }
}

/// What a process left open or unreaped, before and after a piece of work.
public struct LeakReport: Codable, Sendable, Equatable {
    public var descriptorsBefore: [String]
    public var descriptorsAfter: [String]
    public var sharedMemoryAdded: [String]
    public var unreapedChildren: Bool
    public var delivered: Tally
    public init(descriptorsBefore: [String], descriptorsAfter: [String], sharedMemoryAdded: [String], unreapedChildren: Bool, delivered: Tally) {
        (self.descriptorsBefore, self.descriptorsAfter, self.sharedMemoryAdded, self.unreapedChildren, self.delivered)
            = (descriptorsBefore, descriptorsAfter, sharedMemoryAdded, unreapedChildren, delivered)
    }
}

/// An item for the kill tests: an id and a body made from it, so a reader can
/// tell a whole item from a torn or shifted one. Most are small (0–96 bytes),
/// every 7th 4–10 KiB, and with `large`, every 29th about 100 KB (more than a
/// 64 KiB ring holds: it streams through in pieces).
public struct Parcel: Codable, Sendable, Equatable {
    public var id: Int
    public var body: [UInt8]

    public init(_ id: Int, large: Bool) {
        self.id = id
        let size = id < 0 ? 0 : large && id % 29 == 0 ? 100_000 + id % 1000 : id % 7 == 0 ? 4096 + (id &* 37) % 6144 : id % 97
        body = Parcel.body(id, size)
    }

    static func body(_ id: Int, _ size: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            for index in 0..<size { buffer[index] = UInt8(truncatingIfNeeded: id &* 31 &+ index &* 7) }
            count = size
        }
    }

    /// Whether the body is the one `id` makes (its size is checked too: any of the three sizes).
    public var isIntact: Bool { body == Parcel.body(id, body.count) }
}

/// A producer or consumer of parcels in the kill tests. `crashAt`
/// ("point:n"): the child kills itself the n-th time it reaches that point of the
/// queue's protocol (SWIFT_MULTIPROCESSING_CRASH_AT).
public struct ParcelWork: Codable, Sendable {
    public var queue: Queue<Parcel>
    /// Where a consumer reports each parcel it takes: [id, intact ? 1 : 0].
    public var reports: Connection?
    public var crashAt: String?
    public var first: Int
    public var count: Int
    public var large: Bool
    public init(queue: Queue<Parcel>, reports: Connection?, crashAt: String? = nil, first: Int = 0, count: Int = 0, large: Bool = true) {
        (self.queue, self.reports, self.crashAt, self.first, self.count, self.large) = (queue, reports, crashAt, first, count, large)
    }
}

/// A child that waits for its connection's other end to close (or `seconds` to
/// pass), then exits with `code`.
public struct ExitOnClose: Codable, Sendable {
    public var connection: Connection
    public var code: Int32
    public var seconds: Int64
    public init(connection: Connection, code: Int32, seconds: Int64 = 120) { (self.connection, self.code, self.seconds) = (connection, code, seconds) }
}

/// A child that sends the integers 0..<count on `connection`, then exits.
public struct Numbers: Codable, Sendable {
    public var connection: Connection
    public var count: Int
    public init(connection: Connection, count: Int) { (self.connection, self.count) = (connection, count) }
}

/// The pool tasks the helper registers (Tests/MultiprocessingTestHelper), shared so
/// that the tests call them by the same names and types.
public enum PoolTasks {
    public static let addOne = ProcessPool.Task("pool-add-one") { (x: Int) in x + 1 }
    public static let pid = ProcessPool.Task("pool-pid") { (_: Int) in getpid() }
    /// Sleeps `seconds`, then returns its pid.
    public static let sleep = ProcessPool.Task("pool-sleep") { (seconds: Double) -> Int32 in
        usleep(UInt32(seconds * 1_000_000))
        return getpid()
    }
    /// Ends its own worker with `signal`, mid-task.
    public static let killSelf = ProcessPool.Task("pool-kill-self") { (signal: Int32) -> Int in
        raise(signal)
        return 0
    }
    /// Its input, back.
    public static let echo = ProcessPool.Task("pool-echo") { (bytes: [UInt8]) in bytes }
    /// x + 1; SIGKILLs its worker for a negative x.
    public static let addOneOrDie = ProcessPool.Task("pool-add-one-or-die") { (x: Int) -> Int in
        if x < 0 { raise(SIGKILL) }
        return x + 1
    }
    /// A real segmentation fault: a store to address 16.
    public static let segfault = ProcessPool.Task("pool-segfault") { (_: Int) -> Int in
        UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
        return 0
    }
    public static let fail = ProcessPool.Task("pool-fail") { (message: String) -> Int in
        throw PoolTestFailure(message: message)
    }
    /// x * 10 for an even x; throws for an odd one.
    public static let failOdd = ProcessPool.Task("pool-fail-odd") { (x: Int) -> Int in
        if x % 2 != 0 { throw PoolTestFailure(message: "\(x) is odd") }
        return x * 10
    }
    /// SIGKILLs itself the first time (when the file `marker` does not exist yet, it
    /// makes it); returns 42 the next.
    public static let crashOnce = ProcessPool.Task("pool-crash-once") { (marker: String) -> Int in
        if access(marker, F_OK) != 0 {
            close(open(marker, O_CREAT | O_WRONLY, 0o600))
            raise(SIGKILL)
        }
        return 42
    }

    /// A worker's initializer: sets POOL_INIT to its argument.
    public static let initialize = ChildProcess.Entry("pool-init") { (value: String) in
        setenv("POOL_INIT", value, 1)
    }
    /// POOL_INIT in the worker, or "" if no initializer set it.
    public static let initialized = ProcessPool.Task("pool-initialized") { (_: Int) in
        getenv("POOL_INIT").map { String(cString: $0) } ?? ""
    }

    public static let all: [any ChildProcessEntry] = [addOne, echo, pid, sleep, killSelf, addOneOrDie, segfault, fail, failOdd, crashOnce, initialize, initialized]
}

public struct PoolTestFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "deliberate: \(message)" }
}

/// A process that runs a pool of its own and reports its workers' pids.
public struct PoolParent: Codable, Sendable {
    public var connection: Connection
    public var executable: String
    public init(connection: Connection, executable: String) { (self.connection, self.executable) = (connection, executable) }
}
