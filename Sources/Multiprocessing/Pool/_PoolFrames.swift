import MessagePack

// The frames of the pool's worker protocol (see the README's protocol table), made
// and read as MessagePack values, not through Codable: the pool makes and reads one
// of each per task, and a Codable coder's fixed cost per call (a boxed container,
// runtime lookups of generic types) was the larger part of the pool's own work.

/// Pool → worker: run `task` on `input` (its MessagePack bytes), as request `id`;
/// or on each of `inputs`, a chunk. One frame on the worker's connection, a map
/// {"id", "task", "input"} or {"id", "task", "inputs"}.
struct _PoolRequest: Sendable {
    var id: UInt64
    var task: String
    var input: [UInt8]?
    var inputs: [[UInt8]]?

    init(id: UInt64, task: String, input: [UInt8]) { (self.id, self.task, self.input) = (id, task, input) }
    init(id: UInt64, task: String, inputs: [[UInt8]]) { (self.id, self.task, self.inputs) = (id, task, inputs) }

    /// Its frame.
    func bytes() throws -> [UInt8] {
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = [("id", .uint(id)), ("task", .string(task))]
        if let input { pairs.append(("input", .binary(input))) }
        if let inputs { pairs.append(("inputs", .array(inputs.map { .binary($0) }))) }
        return try MessagePackValue.map(pairs).bytes()
    }

    /// Reads a frame; throws for one that breaks the protocol.
    init(frame: [UInt8]) throws {
        var id: UInt64?, task: String?, input: [UInt8]?, inputs: [[UInt8]]?
        try _PoolFrame.forEachField(of: MessagePackValue(bytes: frame), "a request") { name, value in
            switch name {
            case "id": id = try _PoolFrame.id(value)
            case "task":
                guard case .string(let name) = value else { throw _PoolFrame.violation("a request's task is not a string") }
                task = name
            case "input": input = try _PoolFrame.binary(value, "a request's input")
            case "inputs":
                guard case .array(let each) = value else { throw _PoolFrame.violation("a request's inputs are not an array") }
                inputs = try each.map { try _PoolFrame.binary($0, "a request's input") }
            default: break
            }
        }
        guard let id, let task else { throw _PoolFrame.violation("a request lacks its id or task") }
        (self.id, self.task, self.input, self.inputs) = (id, task, input, inputs)
    }
}

/// Worker → pool: request `id`'s output (MessagePack bytes) or its error, its
/// `outcome` (the frame's "output" or "error" field); for a chunk, `results`, one
/// outcome per input in order.
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
    var results: [Outcome]?

    init(id: UInt64) { self.id = id }

    /// Its frame.
    func bytes() throws -> [UInt8] {
        var pairs: [(key: MessagePackValue, value: MessagePackValue)] = [("id", .uint(id))]
        pairs += outcome.pairs
        if let results { pairs.append(("results", .array(results.map { .map($0.pairs) }))) }
        return try MessagePackValue.map(pairs).bytes()
    }

    /// Reads a frame; throws for one that breaks the protocol.
    init(frame: [UInt8]) throws {
        var id: UInt64?, outcome = Outcome(), results: [Outcome]?
        try _PoolFrame.forEachField(of: MessagePackValue(bytes: frame), "a reply") { name, value in
            switch name {
            case "id": id = try _PoolFrame.id(value)
            case "results":
                guard case .array(let each) = value else { throw _PoolFrame.violation("a reply's results are not an array") }
                results = try each.map { result in
                    var outcome = Outcome()
                    try _PoolFrame.forEachField(of: result, "a result") { try outcome.read($0, $1) }
                    return outcome
                }
            default: try outcome.read(name, value)
            }
        }
        guard let id else { throw _PoolFrame.violation("a reply has no id") }
        (self.id, self.outcome, self.results) = (id, outcome, results)
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
    mutating func read(_ name: String, _ value: MessagePackValue) throws {
        switch name {
        case "output": output = try _PoolFrame.binary(value, "an output")
        case "error":
            var type: String?, description: String?
            try _PoolFrame.forEachField(of: value, "an error") { name, value in
                guard case .string(let text) = value else { return }
                if name == "type" { type = text } else if name == "description" { description = text }
            }
            guard let type, let description else { throw _PoolFrame.violation("an error lacks its type or description") }
            error = .init(type: type, description: description)
        default: break
        }
    }
}

/// Reading the frames' fields: a nil value is an absent field (as Python sends None).
enum _PoolFrame {
    static func forEachField(of value: MessagePackValue, _ what: String, _ body: (String, MessagePackValue) throws -> Void) throws {
        guard case .map(let pairs) = value else { throw violation("\(what) is not a map") }
        // Fields this side does not know, whatever their key, are left alone.
        for (key, value) in pairs where value != .nil {
            guard case .string(let name) = key else { continue }
            try body(name, value)
        }
    }

    static func id(_ value: MessagePackValue) throws -> UInt64 {
        switch value {
        case .uint(let id): return id
        case .int(let id) where id >= 0: return UInt64(id)
        default: throw violation("a frame's id is missing or not a non-negative integer")
        }
    }

    static func binary(_ value: MessagePackValue, _ what: String) throws -> [UInt8] {
        guard case .binary(let bytes) = value else { throw violation("\(what) is not binary") }
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
