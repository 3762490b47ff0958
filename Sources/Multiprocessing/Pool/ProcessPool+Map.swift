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
    public func map<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> Outputs<Output> {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let feed = _MapFeed(pool: self, task: task, inputs: Array(inputs), chunkSize: chunkSize, sink: .ordered(continuation))
        feed.start()
        return Outputs(stream: stream, feed: feed, decoder: decoder)
    }

    /// Each input's outcome as it finishes (Python's `imap_unordered`, with the
    /// failures as values: one failure ends nothing), `chunkSize` inputs to a
    /// request; as an `AsyncSequence`, or all at once, blocking, with `wait()`.
    public func mapUnordered<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> Completions<Output> {
        let (stream, continuation) = AsyncStream<_MapFeed.Outcome>.makeStream()
        let feed = _MapFeed(pool: self, task: task, inputs: Array(inputs), chunkSize: chunkSize, sink: .unordered(continuation))
        feed.start()
        return Completions(stream: stream, feed: feed, decoder: decoder)
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
    public struct Outputs<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's output.
        public typealias Element = Output
        /// Any error: the first failure ends the sequence with it.
        public typealias Failure = any Error
        let stream: AsyncThrowingStream<[UInt8], any Error>
        let feed: _MapFeed
        let decoder: MessagePackDecoder

        /// Gives the outputs one at a time, in the inputs' order.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var outputs: AsyncThrowingStream<[UInt8], any Error>.Iterator
            let feed: _MapFeed
            let decoder: MessagePackDecoder
            var failed = false
            var unreported = 0

            /// The next input's output, suspending until it has come; nil after the last.
            /// - Throws: The first failure in the inputs' order, after which the map ends: a
            ///   `ProcessPoolError`, or an input or output that does not encode or decode.
            public mutating func next() async throws -> Output? {
                guard !failed, let bytes = try await outputs.next() else { return nil }
                feed.took(&unreported)
                do {
                    return try decoder.decode(Output.self, from: bytes)
                } catch {
                    // An output that is not an `Output` ends the map, as a failed task does.
                    failed = true
                    feed.stop()
                    throw error
                }
            }
        }

        /// An iterator over the outputs.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(outputs: stream.makeAsyncIterator(), feed: feed, decoder: decoder)
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

    /// What `mapUnordered` gives: each input's outcome as it finishes.
    public struct Completions<Output: Codable & Sendable>: AsyncSequence, Sendable {
        /// Each input's outcome, failures included.
        public typealias Element = Completion<Output>
        /// Never: a failure is a completion's `result`.
        public typealias Failure = Never
        let stream: AsyncStream<_MapFeed.Outcome>
        let feed: _MapFeed
        let decoder: MessagePackDecoder

        /// Gives the outcomes one at a time, as the tasks finish.
        public struct AsyncIterator: AsyncIteratorProtocol {
            var outcomes: AsyncStream<_MapFeed.Outcome>.Iterator
            let feed: _MapFeed
            let decoder: MessagePackDecoder
            var unreported = 0

            /// The next outcome to finish, suspending until one has; nil after the last.
            public mutating func next() async -> Completion<Output>? {
                guard let outcome = await outcomes.next() else { return nil }
                feed.took(&unreported)
                let decoder = decoder
                return Completion(index: outcome.index, result: Result { try decoder.decode(Output.self, from: outcome.result.get()) })
            }
        }

        /// An iterator over the outcomes.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(outcomes: stream.makeAsyncIterator(), feed: feed, decoder: decoder)
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

/// Feeds a map's inputs to the pool, a window ahead of the consumer (one in as the
/// consumer takes one out), and their outcomes (MessagePack) to the map's stream,
/// straight from the worker's reader: no Swift task per input, and no generic code
/// on that thread.
final class _MapFeed: Sendable {
    /// An input's output (MessagePack) or error, for `mapUnordered`.
    struct Outcome: Sendable {
        let index: Int
        let result: Result<[UInt8], any Error>
    }

    enum Sink: Sendable {
        /// In order; the first failure ends the map.
        case ordered(AsyncThrowingStream<[UInt8], any Error>.Continuation)
        /// As they come, failures as values.
        case unordered(AsyncStream<Outcome>.Continuation)
    }

    private struct State {
        /// Chunks given to the pool so far.
        var given = 0
        /// Inputs whose outcome the consumer has taken: the window is counted from
        /// there, so a slow consumer holds back the inputs, not a heap of outputs.
        var consumed = 0
        /// A thread is giving chunks (`pump`): others leave it to that one.
        var giving = false
        /// The job of each chunk given and not yet finished.
        var jobs: [Int: UInt64] = [:]
        var finished = 0
        /// In order: outputs of chunks that finished before one ahead of them.
        var early: [Int: [[UInt8]]] = [:]
        var nextToYield = 0
        /// Ended: all came, the first failure (in order), or the consumer stopped.
        var ended = false
    }

    private let pool: ProcessPool
    private let task: String
    /// The MessagePack of the inputs in a range of them.
    private let encode: @Sendable (Range<Int>) throws -> [[UInt8]]
    private let inputCount: Int
    private let chunkSize: Int
    private let chunkCount: Int
    private let sink: Sink
    private let state = Mutex(State())

    init<Input, Output>(pool: ProcessPool, task: ProcessPool.Task<Input, Output>, inputs: [Input], chunkSize: Int, sink: Sink) {
        self.pool = pool
        self.task = task.name
        let encoder = pool.encoder
        self.encode = { range in try inputs[range].map { try encoder.encode($0) } }
        self.inputCount = inputs.count
        // No larger than the inputs: the window and the chunk count stay far from overflow.
        self.chunkSize = Swift.max(1, Swift.min(chunkSize, inputs.count))
        self.chunkCount = (inputs.count + self.chunkSize - 1) / self.chunkSize
        self.sink = sink
        // What keeps a map from stalling with outcomes unreported (`reportEvery`).
        assert(window - batch * self.chunkSize > Self.reportEvery)
    }

    /// Inputs given and not yet taken by the consumer, at most: enough to keep every
    /// worker's pipeline full several times over, so that a consumer woken late does
    /// not leave the workers idle (twice the pipelines gave 41,000 tiny tasks/s
    /// unordered, eight times 45,000).
    private var window: Int { chunkSize * Swift.max(64, 8 * pool.workerCount * ProcessPool.pipelineDepth) }

    func start() {
        switch sink {
        case .ordered(let continuation): continuation.onTermination = { _ in self.stop() }
        case .unordered(let continuation): continuation.onTermination = { _ in self.stop() }
        }
        guard chunkCount > 0 else { return end(nil) }
        pump()
    }

    /// The consumer says how many outcomes it took every this many (a lock each
    /// time). None is held back for it: when `pump` waits for room for a batch, more
    /// than the window less a batch (at least 56 inputs, see `init`) are out, so
    /// more than `reportEvery` outcomes are still to come, and with them a report.
    static let reportEvery = 16

    /// The consumer took one more outcome; it counts them in `unreported` and reports
    /// them every `reportEvery`.
    func took(_ unreported: inout Int) {
        unreported += 1
        if unreported == Self.reportEvery {
            consumed(unreported)
            unreported = 0
        }
    }

    /// The consumer took `count` outcomes: the window moves on.
    private func consumed(_ count: Int) {
        state.withLock { $0.consumed += count }
        pump()
    }

    /// The consumer stopped (left the loop, or was cancelled), or an output could
    /// not be decoded: what runs is cancelled.
    func stop() {
        let jobs = state.withLock { state -> [UInt64] in
            guard !state.ended else { return [] }
            state.ended = true
            return Array(state.jobs.values)
        }
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
    /// at a time.
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

    /// A chunk's outcome, yielded (in order, for `map`).
    private func finished(_ chunk: Int, _ outcome: Result<ProcessPool.Outcomes, any Error>) {
        let results: [Result<[UInt8], any Error>]
        switch outcome {
        case .success(let outputs): results = outputs
        case .failure(let error): results = Array(repeating: .failure(error), count: range(of: chunk).count)
        }
        var ending: (any Error)?? = nil  // .some(nil): all came; .some(error): the map fails
        var cancelling: [UInt64] = []
        state.withLock { state in
            guard !state.ended, state.jobs.removeValue(forKey: chunk) != nil else { return }
            state.finished += 1
            switch sink {
            case .ordered(let continuation):
                var outputs: [[UInt8]] = []
                for result in results {
                    switch result {
                    case .success(let output): outputs.append(output)
                    case .failure(let error):
                        state.ended = true
                        cancelling = Array(state.jobs.values)
                        ending = .some(error)
                        return
                    }
                }
                state.early[chunk] = outputs
                while let outputs = state.early.removeValue(forKey: state.nextToYield) {
                    for output in outputs { continuation.yield(output) }
                    state.nextToYield += 1
                }
            case .unordered(let continuation):
                let first = range(of: chunk).lowerBound
                for (offset, result) in results.enumerated() {
                    continuation.yield(Outcome(index: first + offset, result: result))
                }
            }
            if state.finished == chunkCount {
                state.ended = true
                ending = .some(nil)
            }
        }
        // Not under the lock: finishing the stream calls `onTermination`, which takes it.
        if let ending { end(ending) }
        for job in cancelling { pool.cancel(job) }
    }

    private func end(_ error: (any Error)?) {
        switch sink {
        case .ordered(let continuation): continuation.finish(throwing: error)
        case .unordered(let continuation): continuation.finish()
        }
    }
}
