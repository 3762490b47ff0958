import MessagePack
import Synchronization

extension ProcessPool {
    /// The outputs of `task` on each input, in the inputs' order (Python's `map`).
    /// They come as an `AsyncSequence`, which throws at the first failure and ends
    /// the tasks not yet done; or all at once, blocking, with `wait()`.
    ///
    /// The inputs go to the workers in order, `chunkSize` at a time (one request and
    /// one reply for each chunk: for tiny tasks, fewer round trips), a window of them
    /// ahead of the consumer: a long sequence is not all encoded and queued up front,
    /// and a slow consumer holds back the inputs, not a heap of outputs. Leaving the
    /// loop early cancels what is still running.
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
    /// Iterate it once: its outputs are not kept for a second loop.
    public struct Outputs<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's output.
        public typealias Element = Output
        /// Any error: the first failure ends the sequence with it.
        public typealias Failure = any Error
        let consumer: _MapConsumer
        let decoder: MessagePackDecoder

        /// Gives the outputs one at a time, in the inputs' order.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let consumer: _MapConsumer
            let decoder: MessagePackDecoder
            /// Outputs taken from the map at once, and the next of them to give.
            var batch: [_MapFeed.Outcome] = []
            var position = 0
            var ended = false

            /// The next input's output, suspending until it has come; nil after the last.
            /// - Throws: The first failure, after which the map ends: a `ProcessPoolError`,
            ///   an input or output that does not encode or decode, or `CancellationError`
            ///   when the iterating task is cancelled (what runs is cancelled too).
            public mutating func next() async throws -> Output? {
                if position == batch.count {
                    guard !ended else { return nil }
                    let taken = batch.count
                    batch = []
                    position = 0
                    switch await consumer.feed.take(after: taken) {
                    case .success(let outcomes) where !outcomes.isEmpty: batch = outcomes
                    case .success:
                        ended = true
                        return nil
                    case .failure(let error):
                        ended = true
                        throw error
                    }
                }
                let outcome = batch[position]
                position += 1
                do {
                    return try decoder.decode(Output.self, from: outcome.result.get())
                } catch {
                    // An output that is not an `Output` ends the map, as a failed task does.
                    ended = true
                    batch = []
                    position = 0
                    consumer.feed.stop()
                    throw error
                }
            }
        }

        /// An iterator over the outputs.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(consumer: consumer, decoder: decoder)
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
    /// once: its outcomes are not kept for a second loop.
    public struct Completions<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's outcome, failures included.
        public typealias Element = Completion<Output>
        /// Never: a failure is a completion's `result`.
        public typealias Failure = Never
        let consumer: _MapConsumer
        let decoder: MessagePackDecoder

        /// Gives the outcomes one at a time, as the tasks finish.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let consumer: _MapConsumer
            let decoder: MessagePackDecoder
            var batch: [_MapFeed.Outcome] = []
            var position = 0
            var ended = false

            /// The next outcome to finish, suspending until one has; nil after the last,
            /// or once the iterating task is cancelled (what runs is cancelled too).
            public mutating func next() async -> Completion<Output>? {
                if position == batch.count {
                    guard !ended else { return nil }
                    let taken = batch.count
                    batch = []
                    position = 0
                    guard case .success(let outcomes) = await consumer.feed.take(after: taken), !outcomes.isEmpty else {
                        ended = true
                        return nil
                    }
                    batch = outcomes
                }
                let outcome = batch[position]
                position += 1
                let decoder = decoder
                return Completion(index: outcome.index, result: Result { try decoder.decode(Output.self, from: outcome.result.get()) })
            }
        }

        /// An iterator over the outcomes.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(consumer: consumer, decoder: decoder)
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
/// (the loop was left early, or the sequence dropped unread), the map is stopped
/// and what still runs is cancelled.
final class _MapConsumer: Sendable {
    let feed: _MapFeed
    init(_ feed: _MapFeed) { self.feed = feed }
    deinit { feed.stop() }
}

/// Feeds a map's inputs to the pool, a window ahead of the consumer, and hands their
/// outcomes (MessagePack) to the consumer, straight from the worker's reader: no
/// Swift task per input, and no generic code on that thread. The consumer takes
/// every outcome ready in one turn of the lock (`take`), not one at a time, and
/// says then how many it has used: the outcome of a tiny task costs no lock, no
/// wake-up and no stream of its own.
final class _MapFeed: Sendable {
    /// An input's output (MessagePack) or error. (For `map`, only outputs: its first
    /// failure ends it.)
    struct Outcome: Sendable {
        let index: Int
        let result: Result<[UInt8], any Error>
    }

    private struct State {
        /// Chunks given to the pool so far.
        var given = 0
        /// Inputs whose outcome the consumer has used: the window is counted from
        /// there, so a slow consumer holds back the inputs, not a heap of outputs.
        var consumed = 0
        /// A thread is giving chunks (`pump`): others leave it to that one.
        var giving = false
        /// The job of each chunk given and not yet finished.
        var jobs: [Int: UInt64] = [:]
        var finished = 0
        /// In order: outputs of chunks that finished before one ahead of them.
        var early: [Int: [Outcome]] = [:]
        var nextInOrder = 0
        /// Outcomes for the consumer, in the order it is to have them.
        var ready: [Outcome] = []
        /// The consumer, waiting for an outcome or the end.
        var waiter: UnsafeContinuation<Void, Never>?
        /// No outcome is to come: all came, a failure (`map`), or the consumer stopped.
        var ended = false
        /// What the consumer gets once it has the outcomes ready: the map's first
        /// failure, or `CancellationError` at once when its task was cancelled.
        var failure: (any Error)?
        var cancelled = false

        /// The waiting consumer, to resume once the lock is let go.
        mutating func takeWaiter() -> UnsafeContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    private let pool: ProcessPool
    private let task: String
    /// The MessagePack of the inputs in a range of them.
    private let encode: @Sendable (Range<Int>) throws -> [[UInt8]]
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
        self.encode = { range in try inputs[range].map { try encoder.encode($0) } }
        self.inputCount = inputs.count
        // No larger than the inputs: the window and the chunk count stay far from overflow.
        self.chunkSize = Swift.max(1, Swift.min(chunkSize, inputs.count))
        self.chunkCount = (inputs.count + self.chunkSize - 1) / self.chunkSize
        self.ordered = ordered
    }

    /// Inputs given and not yet used by the consumer, at most: enough to keep every
    /// worker's pipeline full several times over, so that a consumer woken late does
    /// not leave the workers idle (twice the pipelines gave 41,000 tiny tasks/s
    /// unordered, eight times 45,000).
    private var window: Int { chunkSize * Swift.max(64, 8 * pool.workerCount * ProcessPool.pipelineDepth) }

    func start() {
        guard chunkCount > 0 else { return state.withLock { $0.ended = true } }
        pump()
    }

    /// For the consumer, which has used the `consumed` outcomes it took last: every
    /// outcome ready now, waiting for one if there is none; an empty batch at the
    /// end, or the error the map ends with. Cancelling the waiting task stops the map.
    func take(after consumed: Int) async -> Result<[Outcome], any Error> {
        if consumed > 0 {
            state.withLock { $0.consumed += consumed }
            pump()  // the window has moved on
        }
        if _Concurrency.Task.isCancelled { stop(cancelled: true) }
        while true {
            let taken = state.withLock { state -> Result<[Outcome], any Error>? in
                if state.cancelled { return .failure(CancellationError()) }
                if !state.ready.isEmpty {
                    defer { state.ready = [] }
                    return .success(state.ready)
                }
                guard state.ended else { return nil }
                return state.failure.map { .failure($0) } ?? .success([])
            }
            if let taken { return taken }
            await withTaskCancellationHandler {
                await withUnsafeContinuation { (waiter: UnsafeContinuation<Void, Never>) in
                    let waits = state.withLock { state -> Bool in
                        guard state.ready.isEmpty, !state.ended else { return false }
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

    /// The consumer stopped (left the loop, or was cancelled), or an output could
    /// not be decoded: what runs is cancelled.
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
    /// at a time. It never stalls: the consumer reports what it used each time it
    /// takes, so when it waits, only outcomes still to come are counted as out.
    private func pump() {
        let (window, batch) = (window, batch)
        guard state.withLock({ state -> Bool in
            guard !state.giving else { return false }
            state.giving = true
            return true
        }) else { return }
        while let chunks = state.withLock({ state -> Range<Int>? in
            let left = chunkCount - state.given
            let out = state.given * chunkSize - state.consumed
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
                let inputs = try encode(range(of: chunk))
                submissions.append(.init(id: job, inputs: inputs) { outcome in self.finished(chunk, outcome) })
            } catch {
                pool.forget(job)
                finished(chunk, .failure(error))
            }
        }
        pool.enqueue(submissions, task, chunked: chunkSize > 1, timeout: pool.defaultTimeout)
    }

    /// A chunk's outcome, handed to the consumer (in order, for `map`).
    private func finished(_ chunk: Int, _ outcome: Result<ProcessPool.Outcomes, any Error>) {
        let first = range(of: chunk).lowerBound
        var outcomes: [Outcome]
        switch outcome {
        case .success(let results):
            outcomes = results.enumerated().map { Outcome(index: first + $0.offset, result: $0.element) }
        case .failure(let error):
            outcomes = range(of: chunk).map { Outcome(index: $0, result: .failure(error)) }
        }
        var cancelling: [UInt64] = []
        let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            guard !state.ended, state.jobs.removeValue(forKey: chunk) != nil else { return nil }
            state.finished += 1
            if ordered {
                if let failed = outcomes.firstIndex(where: { if case .failure = $0.result { true } else { false } }) {
                    guard case .failure(let error) = outcomes[failed].result else { return nil }
                    state.ended = true
                    state.failure = error
                    cancelling = Array(state.jobs.values)
                    return state.takeWaiter()
                }
                if chunk == state.nextInOrder {
                    state.ready += outcomes
                    state.nextInOrder += 1
                } else {
                    state.early[chunk] = outcomes
                }
                while let outcomes = state.early.removeValue(forKey: state.nextInOrder) {
                    state.ready += outcomes
                    state.nextInOrder += 1
                }
            } else {
                state.ready += outcomes
            }
            if state.finished == chunkCount { state.ended = true }
            return state.ready.isEmpty && !state.ended ? nil : state.takeWaiter()
        }
        waiter?.resume()
        for job in cancelling { pool.cancel(job) }
    }
}
