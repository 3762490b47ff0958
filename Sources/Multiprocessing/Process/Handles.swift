import MessagePack
import Synchronization
import SystemPackage

/// The descriptors that cross into a child with its start argument.
///
/// In the parent, encoding a `Connection` (or a queue) adds its descriptor here and
/// writes its index; `ChildProcess.start` then hands the descriptors over, in
/// order. In the child, decoding reads the index and takes the descriptor the
/// child received in that place. Outside a child's start argument there is no
/// table, and encoding a connection is an error, as in Python ("Queue objects
/// should only be shared between processes through inheritance").
public final class _HandleTable: Sendable {
    static let key = CodingUserInfoKey(rawValue: "swift-multiprocessing.handles")!

    private struct State {
        var descriptors: [FileDescriptor]
        var taken: Set<Int> = []
        /// The parent's connections being handed over, kept open until the spawn is done.
        var held: [Connection] = []
    }

    private let state: Mutex<State>
    /// Whether this is the child's side (decoding) or the parent's (encoding).
    let isChild: Bool

    /// The parent's side: collects descriptors to hand over.
    init() {
        state = Mutex(State(descriptors: []))
        isChild = false
    }

    /// The child's side: the descriptors it received, in order.
    init(childDescriptors: [CInt]) {
        state = Mutex(State(descriptors: childDescriptors.map { FileDescriptor(rawValue: $0) }))
        isChild = true
    }

    /// The descriptors collected, in the order of their indexes.
    var descriptors: [FileDescriptor] { state.withLock { $0.descriptors } }

    /// Adds a descriptor to hand over; the same descriptor twice has one index.
    func add(_ fd: FileDescriptor) -> Int {
        state.withLock { state in
            if let index = state.descriptors.firstIndex(of: fd) { return index }
            state.descriptors.append(fd)
            return state.descriptors.count - 1
        }
    }

    /// Adds a connection's descriptor, keeping it open until `endHandOver()`: a
    /// `close()` meanwhile cannot free the number for another file before the spawn.
    func add(_ connection: Connection) throws(ConnectionError) -> Int {
        let fd = try connection.beginHandOver()
        state.withLock { $0.held.append(connection) }
        return add(fd)
    }

    /// Ends the hand-over of every connection added (after the spawn, or its failure).
    func endHandOver() {
        for connection in state.withLock({ state in defer { state.held = [] }; return state.held }) {
            connection.endHandOver()
        }
    }

    /// The child's descriptor at `index`, to own. A handle decoded twice gets a
    /// copy the second time, so that each owner closes its own.
    func take(_ index: Int) throws -> FileDescriptor {
        try state.withLock { state throws in
            guard state.descriptors.indices.contains(index) else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: [], debugDescription: "Handle \(index) was not handed to this process (it has \(state.descriptors.count))."))
            }
            let fd = state.descriptors[index]
            if state.taken.insert(index).inserted { return fd }
            return try _duplicate(fd, atLeast: 3)
        }
    }

    static func forEncoding(_ encoder: any Encoder, _ what: String) throws -> _HandleTable {
        guard let table = encoder.userInfo[key] as? _HandleTable, !table.isChild else {
            throw EncodingError.invalidValue(what, .init(
                codingPath: encoder.codingPath,
                debugDescription: "A \(what) can only be encoded as part of a child process's start argument (ChildProcess.start), which hands its descriptors over; it cannot be sent as a message."))
        }
        return table
    }

    static func forDecoding(_ decoder: any Decoder, _ what: String) throws -> _HandleTable {
        guard let table = decoder.userInfo[key] as? _HandleTable, table.isChild else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "A \(what) can only be decoded from a child process's start argument."))
        }
        return table
    }
}

/// A connection crosses into a child as a handle: its descriptor is handed over,
/// and the bytes say which one, and which way it reads and writes.
extension Connection: Codable {
    private struct Handle: Codable {
        var index: Int
        var readable: Bool
        var writable: Bool
    }

    /// Hands the connection to a child: only inside a child's start argument (as Python
    /// shares a queue only by inheritance); anywhere else this throws.
    public func encode(to encoder: any Encoder) throws {
        let table = try _HandleTable.forEncoding(encoder, "Connection")
        // A closed connection's number may already name another file: never hand that over
        // (the table keeps it open from here until the spawn is done).
        let index: Int
        do {
            index = try table.add(self)
        } catch {
            throw ConnectionError(.closed, "a closed connection cannot be handed to a child")
        }
        try Handle(index: index, readable: isReadable, writable: isWritable).encode(to: encoder)
    }

    /// The connection a parent handed to this child.
    public convenience init(from decoder: any Decoder) throws {
        let table = try _HandleTable.forDecoding(decoder, "Connection")
        let handle = try Handle(from: decoder)
        self.init(owning: try table.take(handle.index), readable: handle.readable, writable: handle.writable)
    }
}
