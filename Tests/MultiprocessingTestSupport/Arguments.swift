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
