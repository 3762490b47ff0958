// The start arguments the Multiprocessing tests hand the helper child: one
// definition, for the parent that encodes them and the child that decodes them.
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
