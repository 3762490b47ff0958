import Dispatch

/// Nanoseconds on the monotonic clock (CLOCK_MONOTONIC on Linux).
@inline(__always) func now() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

/// One thing to time: an operation returning a number that is folded into a sink,
/// so its work cannot be thrown away.
struct Operation {
    var name: String
    /// How many values one call handles (10,000 for the array cases): times are per value.
    var valuesPerCall: Int
    var body: () throws -> Int

    /// Calls per batch, so that one batch lasts about `target` nanoseconds.
    var callsPerBatch = 1
    var samples: [Double] = []  // ns per value, one per batch

    init(_ name: String, valuesPerCall: Int = 1, _ body: @escaping () throws -> Int) {
        self.name = name
        self.valuesPerCall = valuesPerCall
        self.body = body
    }

    var median: Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}

/// Warms up, then runs the operations' batches interleaved (batch 1 of each, batch 2
/// of each, ...), so that a burst of load from elsewhere on the machine hits every
/// column of a row alike rather than one of them.
struct Harness {
    var batches = 15
    var batchNanoseconds: UInt64 = 50_000_000
    var warmUpNanoseconds: UInt64 = 100_000_000
    /// Everything the operations returned, printed at the end.
    private(set) var sink = 0

    @inline(never)
    mutating func runBatch(_ body: () throws -> Int, calls: Int) rethrows -> UInt64 {
        var local = 0
        let start = now()
        for _ in 0..<calls { local &+= try body() }
        let elapsed = now() - start
        sink &+= local
        return elapsed
    }

    mutating func measure(_ operations: inout [Operation]) throws {
        // Warm up (caches, allocator, lazily bound symbols) and calibrate each operation.
        for index in operations.indices {
            var calls = 1
            var spent: UInt64 = 0
            var elapsed: UInt64 = 0
            while spent < warmUpNanoseconds {
                elapsed = try runBatch(operations[index].body, calls: calls)
                spent += elapsed
                if elapsed < warmUpNanoseconds / 4 { calls *= 2 }
            }
            let perCall = max(1, Double(elapsed) / Double(calls))
            operations[index].callsPerBatch = max(1, Int((Double(batchNanoseconds) / perCall).rounded()))
        }
        for _ in 0..<batches {
            for index in operations.indices {
                let op = operations[index]
                let elapsed = try runBatch(op.body, calls: op.callsPerBatch)
                operations[index].samples.append(Double(elapsed) / Double(op.callsPerBatch * op.valuesPerCall))
            }
        }
    }
}
