import MessagePack

// The frames of the pool's worker protocol (see the README's protocol table), made
// as MessagePack values and read through views of msgpack-c's tree, not through
// Codable: the pool makes and reads one of each per task, and a Codable coder's fixed
// cost per call (a boxed container, runtime lookups of generic types) was the larger
// part of the pool's own work; building a MessagePackValue of each frame read, a
// tenth of the whole pool's CPU.

/// Pool → worker: run `task` on `input` (its MessagePack bytes), as request `id`;
/// or, for a chunk, on each input in `batch` (one MessagePack array of them). One
/// frame on the worker's connection, a map {"id", "task", "input"} or {"id",
/// "task", "batch"}.
struct _PoolRequest: Sendable {
    var id: UInt64
    var task: String
    var input: [UInt8]?
    var batch: [UInt8]?

    init(id: UInt64, task: String, input: [UInt8]) { (self.id, self.task, self.input) = (id, task, input) }
    init(id: UInt64, task: String, batch: [UInt8]) { (self.id, self.task, self.batch) = (id, task, batch) }

    /// Its frame.
    func bytes() throws -> [UInt8] {
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = [("id", .uint(id)), ("task", .string(task))]
        if let input { pairs.append(("input", .binary(input))) }
        if let batch { pairs.append(("batch", .binary(batch))) }
        return try MessagePackValue.map(pairs).bytes()
    }

    /// Reads a frame; throws for one that breaks the protocol.
    init(frame: [UInt8]) throws {
        var id: UInt64?, task: String?, input: [UInt8]?, batch: [UInt8]?
        try MessagePackValue.withView(of: frame) { frame in
            try _PoolFrame.forEachField(of: frame, "a request") { name, value in
                if name.isString("id") {
                    id = try _PoolFrame.id(value)
                } else if name.isString("task") {
                    guard let name = value.string else { throw _PoolFrame.violation("a request's task is not a string") }
                    task = name
                } else if name.isString("input") {
                    input = try _PoolFrame.binary(value, "a request's input")
                } else if name.isString("batch") {
                    batch = try _PoolFrame.binary(value, "a request's batch")
                }
            }
        }
        guard let id, let task else { throw _PoolFrame.violation("a request lacks its id or task") }
        (self.id, self.task, self.input, self.batch) = (id, task, input, batch)
    }
}

/// Worker → pool: request `id`'s output (MessagePack bytes) or its error, its
/// `outcome` (the frame's "output" or "error" field). For a chunk: `outputs`, every
/// input's output as one MessagePack array, when every input's task returned;
/// otherwise `results`, one outcome per input in order; or an error alone, when the
/// batch could not be read or the task is unknown (every input fails with it).
struct _PoolReply: Sendable {
    struct Failure: Sendable {
        var type: String
        var description: String
    }
    struct Outcome: Sendable {
        var output: [UInt8]?
        var error: Failure?
    }
    var id: UInt64
    var outcome = Outcome()
    var outputs: [UInt8]?
    var results: [Outcome]?

    init(id: UInt64) { self.id = id }

    /// Its frame.
    func bytes() throws -> [UInt8] {
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = [("id", .uint(id))]
        pairs += outcome.pairs
        if let outputs { pairs.append(("outputs", .binary(outputs))) }
        if let results { pairs.append(("results", .array(results.map { .map($0.pairs) }))) }
        return try MessagePackValue.map(pairs).bytes()
    }

    /// Reads a frame; throws for one that breaks the protocol.
    init(frame: [UInt8]) throws {
        var id: UInt64?, outcome = Outcome(), outputs: [UInt8]?, results: [Outcome]?
        try MessagePackValue.withView(of: frame) { frame in
            try _PoolFrame.forEachField(of: frame, "a reply") { name, value in
                if name.isString("id") {
                    id = try _PoolFrame.id(value)
                } else if name.isString("outputs") {
                    outputs = try _PoolFrame.binary(value, "a reply's outputs")
                } else if name.isString("results") {
                    guard let each = value.elements else { throw _PoolFrame.violation("a reply's results are not an array") }
                    results = try each.map { result in
                        var outcome = Outcome()
                        try _PoolFrame.forEachField(of: result, "a result") { try outcome.read($0, $1) }
                        return outcome
                    }
                } else {
                    try outcome.read(name, value)
                }
            }
        }
        guard let id else { throw _PoolFrame.violation("a reply has no id") }
        (self.id, self.outcome, self.outputs, self.results) = (id, outcome, outputs, results)
    }
}

extension _PoolReply.Failure {
    /// An error thrown in a worker, as the pool's caller will see it: its type's
    /// name and its description.
    init(_ error: any Error) {
        self.init(type: String(reflecting: Swift.type(of: error)), description: String(describing: error))
    }
}

extension _PoolReply.Outcome {
    var pairs: [(key: MessagePackValue, value: MessagePackValue)] {
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = []
        if let output { pairs.append(("output", .binary(output))) }
        if let error { pairs.append(("error", .map([("type", .string(error.type)), ("description", .string(error.description))]))) }
        return pairs
    }

    /// Takes field `name` if it is an outcome's ("output", "error").
    mutating func read(_ name: _MessagePackView, _ value: _MessagePackView) throws {
        if name.isString("output") {
            output = try _PoolFrame.binary(value, "an output")
        } else if name.isString("error") {
            var type: String?, description: String?
            try _PoolFrame.forEachField(of: value, "an error") { name, value in
                guard let text = value.string else { return }
                if name.isString("type") { type = text } else if name.isString("description") { description = text }
            }
            guard let type, let description else { throw _PoolFrame.violation("an error lacks its type or description") }
            error = .init(type: type, description: description)
        }
    }
}

/// Reading the frames' fields: a nil value is an absent field (as Python sends None).
enum _PoolFrame {
    /// Each field of a map, by its key: a field whose key is not a string, or which
    /// this side does not know, is left alone.
    static func forEachField(of value: _MessagePackView, _ what: String, _ body: (_MessagePackView, _MessagePackView) throws -> Void) throws {
        guard let pairs = value.pairs else { throw violation("\(what) is not a map") }
        for (key, value) in pairs where !value.isNil { try body(key, value) }
    }

    static func id(_ value: _MessagePackView) throws -> UInt64 {
        guard let id = value.unsignedInteger else { throw violation("a frame's id is missing or not a non-negative integer") }
        return id
    }

    static func binary(_ value: _MessagePackView, _ what: String) throws -> [UInt8] {
        guard let bytes = value.binary else { throw violation("\(what) is not binary") }
        return bytes
    }

    static func violation(_ description: String) -> ProcessPoolError {
        ProcessPoolError(.system, "the worker protocol was broken: \(description)")
    }
}

/// For the fuzzer: reads `bytes` as a request and as a reply, as a pool worker and
/// the pool do, and makes the frame again from what was read. Each is nil where
/// the bytes are not such a frame (a thrown error); anything else is a finding.
@_spi(Fuzzing) public func _readPoolFrames(_ bytes: [UInt8]) -> (request: [UInt8]?, reply: [UInt8]?) {
    let request = try? _PoolRequest(frame: bytes).bytes()
    let reply = try? _PoolReply(frame: bytes).bytes()
    return (request, reply)
}

/// For the fuzzer: takes `bytes` as a worker's reply to one input, to a chunk of one
/// and to a chunk of three, as the pool does, and decodes what it says the outputs
/// are (as a map's consumer would, for a few output types). How many outputs decoded;
/// a reply that breaks the protocol is failures, never a trap.
@_spi(Fuzzing) public func _interpretPoolReply(_ bytes: [UInt8]) -> Int {
    guard let reply = try? _PoolReply(frame: bytes) else { return 0 }
    let decoder = MessagePackDecoder()
    var decoded = 0
    for batchCount in [nil, 1, 3] {
        switch ProcessPool.outcomes(of: reply, batchCount: batchCount, worker: 1) {
        case .success(.each(let results)):
            for case .success(let output) in results where (try? decoder.decode(Int.self, from: output)) != nil { decoded += 1 }
        case .success(.batch(let outputs)):
            decoded += (try? _PoolBatch<Int>.decode(from: outputs, with: decoder))?.count ?? 0
            decoded += (try? _PoolBatch<UInt8>.decode(from: outputs, with: decoder))?.count ?? 0
            decoded += (try? _PoolBatch<String>.decode(from: outputs, with: decoder))?.count ?? 0
        case .failure: break
        }
    }
    return decoded
}

/// A chunk's inputs or outputs: one MessagePack array, whatever their type. (As a
/// plain `[UInt8]`, bytes would be a MessagePack binary, which a Python worker reads
/// as bytes, not as a list of numbers; other arrays go as they are, the coders' fast
/// way for arrays.)
struct _PoolBatch<Element: Codable>: Codable {
    var elements: [Element]

    init(_ elements: [Element]) { self.elements = elements }

    /// The elements' MessagePack array.
    static func encode(_ elements: [Element], with encoder: MessagePackEncoder) throws -> [UInt8] {
        Element.self == UInt8.self ? try encoder.encode(_PoolBatch(elements)) : try encoder.encode(elements)
    }

    /// The elements of a MessagePack array.
    static func decode(from bytes: [UInt8], with decoder: MessagePackDecoder) throws -> [Element] {
        Element.self == UInt8.self ? try decoder.decode(_PoolBatch.self, from: bytes).elements : try decoder.decode([Element].self, from: bytes)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for element in elements { try container.encode(element) }
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        var elements: [Element] = []
        while !container.isAtEnd { elements.append(try container.decode(Element.self)) }
        self.elements = elements
    }
}
