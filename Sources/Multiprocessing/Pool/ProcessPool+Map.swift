import MessagePack
import Synchronization

extension ProcessPool {
    /// The outputs of `task` on each input, in the inputs' order (Python's `map`).
    /// They come as an `AsyncSequence`, which throws at the first failure and ends
    /// the tasks not yet done; or all at once, blocking, with `wait()`.
    ///
    /// The inputs go to the workers in order, `chunkSize` at a time (one request and
    /// one reply for each chunk, each one MessagePack array: for tiny tasks, fewer
    /// round trips and coder calls), a window of them ahead of the consumer: a long
    /// sequence is not all encoded and queued up front, and a slow consumer holds
    /// back the inputs, not a heap of outputs. A chunk is one task to the pool: its
    /// timeout counts for the whole chunk, a worker that dies in it fails (or
    /// retries) all its inputs, and so does an input or output that does not decode. Leaving the loop early, cancelling the iterating
    /// task, or dropping the sequence unread cancels what is still running.
    @inlinable
    public func map<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> Outputs<Output> {
        // The inputs are copied here, where their sequence's type is known: copied
        // in this module, through its protocol, an element cost more than a tiny task.
        _map(task, Array(inputs), chunkSize: chunkSize)
    }

    @usableFromInline
    func _map<Input, Output>(_ task: Task<Input, Output>, _ inputs: [Input], chunkSize: Int) -> Outputs<Output> {
        let feed = _MapFeed(pool: self, task: task, inputs: inputs, chunkSize: chunkSize, ordered: true)
        feed.start()
        return Outputs(consumer: _MapConsumer(feed), decoder: decoder)
    }

    /// Each input's outcome as it finishes (Python's `imap_unordered`, with the
    /// failures as values: one failure ends nothing), `chunkSize` inputs to a
    /// request; as an `AsyncSequence`, or all at once, blocking, with `wait()`.
    @inlinable
    public func mapUnordered<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> Completions<Output> {
        _mapUnordered(task, Array(inputs), chunkSize: chunkSize)  // copied here, as in `map`
    }

    @usableFromInline
    func _mapUnordered<Input, Output>(_ task: Task<Input, Output>, _ inputs: [Input], chunkSize: Int) -> Completions<Output> {
        let feed = _MapFeed(pool: self, task: task, inputs: inputs, chunkSize: chunkSize, ordered: false)
        feed.start()
        return Completions(consumer: _MapConsumer(feed), decoder: decoder)
    }

    /// One input's outcome, from `mapUnordered`.
    public struct Completion<Output: Sendable>: Sendable {
        /// The input's position in the sequence given.
        public let index: Int
        /// Its output, or its error.
        public let result: Result<Output, any Error>
    }

    /// What `map` gives: the outputs in the inputs' order. (The outputs are decoded
    /// here, by the consumer, not by the thread that reads the workers' replies.)
    /// Iterate it once, from one task: its outputs are not kept for a second loop.
    public struct Outputs<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's output.
        public typealias Element = Output
        /// Any error: the first failure ends the sequence with it.
        public typealias Failure = any Error
        let consumer: _MapConsumer
        let decoder: MessagePackDecoder

        /// Gives the outputs one at a time, in the inputs' order.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var outcomes: _MapOutcomes
            let decoder: MessagePackDecoder
            /// The outputs of a chunk decoded at once, and the next of them to give.
            var chunk: [Output] = []
            var inChunk = 0

            /// The next input's output, suspending until it has come; nil after the last.
            /// - Throws: The first failure, after which the map ends: a `ProcessPoolError`,
            ///   an input or output that does not encode or decode, or `CancellationError`
            ///   once the iterating task is cancelled (what runs is cancelled too).
            public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(any Error) -> Output? {
                while true {
                    // (A cancelled task's chunk is dropped: `outcomes.next` then ends the map.)
                    if inChunk < chunk.count, !_Concurrency.Task.isCancelled {
                        defer { inChunk += 1 }
                        return chunk[inChunk]
                    }
                    (chunk, inChunk) = ([], 0)
                    guard let outcome = try await outcomes.next(throwing: true) else { return nil }
                    do {
                        let bytes = try outcome.result.get()
                        guard let count = outcome.chunk else { return try decoder.decode(Output.self, from: bytes) }
                        chunk = try _MapOutcomes.outputs(of: bytes, count: count, decoder)
                        inChunk = 0
                    } catch {
                        // An output that is not an `Output` ends the map, as a failed task does.
                        (chunk, inChunk) = ([], 0)
                        outcomes.stop()
                        throw error
                    }
                }
            }

            /// As `next(isolation:)`.
            public mutating func next() async throws -> Output? {
                try await next(isolation: nil)
            }
        }

        /// An iterator over the outputs.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(outcomes: _MapOutcomes(consumer), decoder: decoder)
        }

        /// Every output, once all have come; blocks this thread (Python's
        /// `Pool.map`). Never call it from async code: iterate instead.
        /// - Throws: the first failure, as iterating does.
        public func wait() throws -> [Output] {
            try _waitBlocking { [self] in
                var outputs: [Output] = []
                for try await output in self { outputs.append(output) }
                return outputs
            }
        }
    }

    /// What `mapUnordered` gives: each input's outcome as it finishes. Iterate it
    /// once, from one task: its outcomes are not kept for a second loop.
    public struct Completions<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's outcome, failures included.
        public typealias Element = Completion<Output>
        /// Never: a failure is a completion's `result`.
        public typealias Failure = Never
        let consumer: _MapConsumer
        let decoder: MessagePackDecoder

        /// Gives the outcomes one at a time, as the tasks finish.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var outcomes: _MapOutcomes
            let decoder: MessagePackDecoder
            /// The outcomes of a chunk decoded at once, the index of its first, and the next to give.
            var chunk: [Result<Output, any Error>] = []
            var chunkStart = 0
            var inChunk = 0

            /// The next outcome to finish, suspending until one has; nil after the last,
            /// or once the iterating task is cancelled (what runs is cancelled too).
            public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async -> Completion<Output>? {
                while true {
                    if inChunk < chunk.count, !_Concurrency.Task.isCancelled {
                        defer { inChunk += 1 }
                        return Completion(index: chunkStart + inChunk, result: chunk[inChunk])
                    }
                    (chunk, inChunk) = ([], 0)
                    guard let outcome = try? await outcomes.next(throwing: false) else { return nil }
                    let decoder = decoder
                    guard let count = outcome.chunk else {
                        return Completion(index: outcome.index, result: Result { try decoder.decode(Output.self, from: outcome.result.get()) })
                    }
                    // One chunk's outputs, all there (its failures come one by one): an
                    // array that does not decode fails each of its inputs.
                    do {
                        let outputs: [Output] = try _MapOutcomes.outputs(of: outcome.result.get(), count: count, decoder)
                        chunk = outputs.map { .success($0) }
                    } catch {
                        chunk = Array(repeating: .failure(error), count: count)
                    }
                    (chunkStart, inChunk) = (outcome.index, 0)
                }
            }

            /// As `next(isolation:)`.
            public mutating func next() async -> Completion<Output>? {
                await next(isolation: nil)
            }
        }

        /// An iterator over the outcomes.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(outcomes: _MapOutcomes(consumer), decoder: decoder)
        }

        /// Every outcome, in the order they finished, once all have; blocks this
        /// thread. Never call it from async code: iterate instead.
        public func wait() -> [Completion<Output>] {
            // Nothing in it throws: the failures are values.
            (try? _waitBlocking { [self] in
                var completions: [Completion<Output>] = []
                for await completion in self { completions.append(completion) }
                return completions
            }) ?? []
        }
    }
}

/// A map's consumer side, held by its sequence and iterators: once none holds it
/// (the loop was left early and the sequence is held nowhere else, or it was
/// dropped unread), the map is stopped and what still runs is cancelled.
final class _MapConsumer: Sendable {
    let feed: _MapFeed
    init(_ feed: _MapFeed) { self.feed = feed }
    deinit { feed.stop() }
}

/// An iterator's side of a map's feed, not generic: the batch of outcomes it took at
/// once, and the next of them to give.
struct _MapOutcomes {
    let consumer: _MapConsumer
    var batch: [_MapFeed.Outcome] = []
    var position = 0
    var ended = false

    init(_ consumer: _MapConsumer) { self.consumer = consumer }

    /// The next outcome, waiting for one if none is at hand; nil at the end, and
    /// (`throwing` false) once the task is cancelled.
    /// - Throws: (`throwing`) the map's failure, or `CancellationError` once the
    ///   iterating task is cancelled, checked at each outcome.
    mutating func next(throwing: Bool) async throws -> _MapFeed.Outcome? {
        if _Concurrency.Task.isCancelled, !ended {
            (batch, position, ended) = ([], 0, true)
            consumer.feed.stop(cancelled: true)
            if throwing { throw CancellationError() }
            return nil
        }
        if position == batch.count {
            guard !ended else { return nil }
            (batch, position) = ([], 0)
            switch await consumer.feed.take() {
            case .success(let outcomes) where !outcomes.isEmpty: batch = outcomes
            case .success:
                ended = true
                return nil
            case .failure(let error):
                ended = true
                if throwing { throw error }
                return nil
            }
        }
        defer { position += 1 }
        return batch[position]
    }

    /// The consumer could not use an outcome: the map ends.
    mutating func stop() {
        (batch, position, ended) = ([], 0, true)
        consumer.feed.stop()
    }

    /// A chunk's outputs, decoded as one array: as many as its inputs, or a thrown error.
    static func outputs<Output: Codable>(of bytes: [UInt8], count: Int, _ decoder: MessagePackDecoder) throws -> [Output] {
        let outputs = try _PoolBatch<Output>.decode(from: bytes, with: decoder)
        guard outputs.count == count else {
            throw ProcessPoolError(.system, "a worker answered \(outputs.count) outputs for a chunk of \(count) inputs")
        }
        return outputs
    }
}

/// Feeds a map's inputs to the pool, a window ahead of the consumer, and hands their
/// outcomes (MessagePack) to the consumer, straight from the worker's reader: no
/// Swift task per input, and no generic code on that thread. The consumer takes
/// every outcome ready in one turn of the lock (`take`), not one at a time: the
/// outcome of a tiny task costs no lock, no wake-up and no stream of its own.
final class _MapFeed: Sendable {
    /// An input's output (MessagePack) or error; or, for a chunk (`chunk` inputs from
    /// `index` on), its outputs as one MessagePack array. (For `map`, only outputs:
    /// its first failure ends it.)
    struct Outcome: Sendable {
        let index: Int
        let chunk: Int?
        let result: Result<[UInt8], any Error>
    }

    private struct State {
        /// Chunks given to the pool so far.
        var given = 0
        /// Inputs whose outcome the consumer has taken: the window is counted from
        /// there, so a slow consumer holds back the inputs, not a heap of outputs.
        var handedOut = 0
        /// A thread is giving chunks (`pump`): others leave it to that one.
        var giving = false
        /// The job of each chunk given and not yet finished.
        var jobs: [Int: UInt64] = [:]
        var finished = 0
        /// In order: outcomes of chunks that finished before one ahead of them.
        var early: [Int: [Outcome]] = [:]
        var nextInOrder = 0
        /// Outcomes for the consumer, in the order it is to have them, and their inputs.
        var ready: [Outcome] = []
        var readyInputs = 0
        /// The consumer, waiting for an outcome or the end.
        var waiter: UnsafeContinuation<Void, Never>?
        /// No outcome is to come: all came, a failure (`map`), or the consumer stopped.
        var ended = false
        /// `map`'s first failure: the consumer gets it once it has the outcomes ready.
        var failure: (any Error)?
        /// The consumer's task was cancelled: it gets `CancellationError` at once.
        var cancelled = false

        /// The waiting consumer, to resume once the lock is let go.
        mutating func takeWaiter() -> UnsafeContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    private let pool: ProcessPool
    private let task: String
    /// The MessagePack of the inputs in a range of them: one input's, or (a chunk) one array of them.
    private let encode: @Sendable (Range<Int>) throws -> [UInt8]
    private let inputCount: Int
    private let chunkSize: Int
    private let chunkCount: Int
    /// `map`: in order, and the first failure ends it. `mapUnordered`: as they
    /// come, failures as values.
    private let ordered: Bool
    private let state = Mutex(State())

    init<Input, Output>(pool: ProcessPool, task: ProcessPool.Task<Input, Output>, inputs: [Input], chunkSize: Int, ordered: Bool) {
        self.pool = pool
        self.task = task.name
        let encoder = pool.encoder
        // No larger than the inputs: the window and the chunk count stay far from overflow.
        self.chunkSize = Swift.max(1, Swift.min(chunkSize, inputs.count))
        // A chunk is one MessagePack array, encoded (and decoded, and its outputs too)
        // in one call: a call per input, each way, was most of its cost per input.
        if self.chunkSize > 1 {
            self.encode = { range in try _PoolBatch.encode(Array(inputs[range]), with: encoder) }
        } else {
            self.encode = { range in try encoder.encode(inputs[range.lowerBound]) }
        }
        self.inputCount = inputs.count
        self.chunkCount = (inputs.count + self.chunkSize - 1) / self.chunkSize
        self.ordered = ordered
    }

    /// Inputs given and not yet handed to the consumer, at most: enough to keep every
    /// worker's pipeline full several times over, so that a consumer woken late does
    /// not leave the workers idle (twice the pipelines gave 41,000 tiny tasks/s
    /// unordered, eight times 45,000).
    private var window: Int { chunkSize * Swift.max(64, 8 * pool.workerCount * ProcessPool.pipelineDepth) }

    func start() {
        guard chunkCount > 0 else { return state.withLock { $0.ended = true } }
        pump()
    }

    /// For the consumer: every outcome ready now, waiting for one if there is none;
    /// an empty batch at the end, or the error the map ends with. What it takes
    /// leaves the window, and more inputs go out. One consumer at a time.
    func take() async -> Result<[Outcome], any Error> {
        while true {
            let (taken, handed) = state.withLock { state -> (Result<[Outcome], any Error>?, Bool) in
                if state.cancelled { return (.failure(CancellationError()), false) }
                if !state.ready.isEmpty {
                    defer { (state.ready, state.readyInputs) = ([], 0) }
                    state.handedOut += state.readyInputs
                    return (.success(state.ready), true)
                }
                guard state.ended else { return (nil, false) }
                return (state.failure.map { .failure($0) } ?? .success([]), false)
            }
            if handed { pump() }
            if let taken { return taken }
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
                    let waits = state.withLock { state -> Bool in
                        guard state.ready.isEmpty, !state.ended else { return false }
                        precondition(state.waiter == nil, "a ProcessPool map's outputs iterated by two tasks at once")
                        state.waiter = waiter
                        return true
                    }
                    if !waits { waiter.resume() }
                }
            } onCancel: {
                stop(cancelled: true)
            }
        }
    }

    /// The consumer stopped (left the loop, dropped the sequence, or was cancelled),
    /// or an output could not be decoded: what runs is cancelled.
    func stop(cancelled: Bool = false) {
        let (jobs, waiter) = state.withLock { state -> ([UInt64], UnsafeContinuation<Void, Never>?) in
            if cancelled { state.cancelled = true }
            let waiter = state.takeWaiter()
            guard !state.ended else { return ([], waiter) }
            state.ended = true
            return (Array(state.jobs.values), waiter)
        }
        waiter?.resume()
        for job in jobs { pool.cancel(job) }
    }

    private func range(of chunk: Int) -> Range<Int> {
        chunk * chunkSize..<Swift.min(inputCount, (chunk + 1) * chunkSize)
    }

    /// Chunks given at once: an eighth of the window. Each batch is one turn of the
    /// pool's lock and one write per worker, where a chunk at a time cost a dozen
    /// turns of contended locks per tiny task.
    private var batch: Int { Swift.max(1, window / chunkSize / 8) }

    /// Gives chunks to the pool, a batch at a time, while the window has room for a
    /// whole batch (or for all that is left): in a loop, never by recursion (a pool that
    /// refuses a job at once calls `finished` on this very stack), and on one thread
    /// at a time. It never stalls: what is out is given, or finishes into `ready`,
    /// where the consumer's next `take` moves the window on.
    private func pump() {
        let (window, batch) = (window, batch)
        guard state.withLock({ state -> Bool in
            guard !state.giving else { return false }
            state.giving = true
            return true
        }) else { return }
        while let chunks = state.withLock({ state -> Range<Int>? in
            let left = chunkCount - state.given
            let out = Swift.min(inputCount, state.given * chunkSize) - state.handedOut
            let room = Swift.max(0, (window - out + chunkSize - 1) / chunkSize)
            let count = Swift.min(room, left, batch)
            guard !state.ended, count > 0, count >= Swift.min(batch, left) else {
                state.giving = false
                return nil
            }
            state.given += count
            return state.given - count..<state.given
        }) {
            give(chunks)
        }
    }

    private func give(_ chunks: Range<Int>) {
        let jobs = pool.newJobIDs(chunks.count)
        guard state.withLock({ state -> Bool in
            guard !state.ended else { return false }
            for (chunk, job) in zip(chunks, jobs) { state.jobs[chunk] = job }
            return true
        }) else {
            return pool.forget(jobs)
        }
        var submissions: [ProcessPool.Submission] = []
        submissions.reserveCapacity(chunks.count)
        for (chunk, job) in zip(chunks, jobs) {
            do {
                let input = try encode(range(of: chunk))
                submissions.append(.init(id: job, input: input, batchCount: chunkSize > 1 ? range(of: chunk).count : nil) { outcome in
                    self.finished(chunk, outcome)
                })
            } catch {
                pool.forget(job)
                finished(chunk, .failure(error))
            }
        }
        pool.enqueue(submissions, task, timeout: pool.defaultTimeout)
    }

    /// A chunk's outcome, handed to the consumer (in order, for `map`).
    private func finished(_ chunk: Int, _ outcome: Result<ProcessPool.Outcomes, any Error>) {
        let inputs = range(of: chunk)
        var outcomes: [Outcome]
        var failure: (any Error)?
        switch outcome {
        case .success(.batch(let outputs)):
            outcomes = [Outcome(index: inputs.lowerBound, chunk: inputs.count, result: .success(outputs))]
        case .success(.each(let results)):
            outcomes = zip(inputs, results).map { Outcome(index: $0, chunk: nil, result: $1) }
            // (Only `map` ends at a failure; `mapUnordered` hands each over as it is.)
            if ordered { for case .failure(let error) in results { failure = error; break } }
        case .failure(let error):
            outcomes = inputs.map { Outcome(index: $0, chunk: nil, result: .failure(error)) }
            failure = error
        }
        var cancelling: [UInt64] = []
        let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            guard !state.ended, state.jobs.removeValue(forKey: chunk) != nil else { return nil }
            state.finished += 1
            if ordered {
                if let failure {
                    state.ended = true
                    state.failure = failure
                    cancelling = Array(state.jobs.values)
                    return state.takeWaiter()
                }
                if chunk == state.nextInOrder {
                    state.ready += outcomes
                    state.readyInputs += inputs.count
                    state.nextInOrder += 1
                } else {
                    state.early[chunk] = outcomes
                }
                while let outcomes = state.early.removeValue(forKey: state.nextInOrder) {
                    state.ready += outcomes
                    state.readyInputs += range(of: state.nextInOrder).count
                    state.nextInOrder += 1
                }
            } else {
                state.ready += outcomes
                state.readyInputs += inputs.count
            }
            if state.finished == chunkCount { state.ended = true }
            return state.ready.isEmpty && !state.ended ? nil : state.takeWaiter()
        }
        waiter?.resume()
        for job in cancelling { pool.cancel(job) }
    }
}
