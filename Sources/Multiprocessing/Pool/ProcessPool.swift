import Dispatch
import Glibc
import MessagePack
import Synchronization
import SystemPackage

/// Typed tasks on worker processes: Python's `Pool` and `ProcessPoolExecutor`,
/// without their failure modes.
///
/// ```swift
/// let square = ProcessPool.Task("square") { (x: Int) in x * x }
/// try ChildProcess.bootstrap([square])               // in a worker: runs tasks, then exits
/// try await withProcessPool(workers: 4) { pool in
///     print(try await pool.run(square, 7))            // 49
///     for try await y in pool.map(square, 1...100) { print(y) }
/// }
/// ```
///
/// Each worker is a child process running this executable (or `executable`),
/// with one duplex `Connection` to the pool, and holds one task at a time; the pool
/// knows which. So a worker that dies mid-task (a signal, a crash in native code,
/// the OOM killer) fails that task alone, with `ProcessPoolError.workerDied`
/// naming the worker and how it ended, or retries it (`retries`); a new worker
/// takes its place and every other task goes on. A task past its timeout has its
/// worker killed and replaced, and fails `.timedOut`. Cancelling the Swift task
/// that awaits a pool task cancels it: a waiting one is dropped, a running one's
/// worker is stopped (SIGTERM, then SIGKILL after `gracePeriod`) and replaced.
/// No worker outlives the pool's process: each watches its parent through a pidfd
/// and exits the moment it ends, even in the middle of a task, and ends at end of
/// file on its connection.
public final class ProcessPool: Sendable {
    /// How many workers run at once.
    public let workerCount: Int
    /// Tasks a worker runs before it is replaced (nil: no limit; Python's `maxtasksperchild`).
    public let tasksPerWorker: Int?
    /// The timeout of a task that names none (nil: none).
    public let defaultTimeout: Duration?
    /// How many times a task whose worker died is run again before it fails.
    public let retries: Int
    /// How long a worker stopped for a cancelled task has between SIGTERM and SIGKILL.
    public let gracePeriod: Duration
    private let executable: String
    /// For a worker program that is not a Swift one calling `bootstrap`: its
    /// arguments (it gets its connection as descriptor 3).
    private let arguments: [String]?
    private let initializer: Initializer?
    private let state = Mutex(State())
    private let encoder = MessagePackEncoder()
    private let decoder = MessagePackDecoder()

    private struct Job {
        let id: UInt64
        let task: String
        /// The inputs' MessagePack: one, or a chunk of several sent as one request.
        let inputs: [[UInt8]]
        let chunked: Bool
        let timeout: Duration?
        var triesLeft: Int
        /// Resumed with each input's output or error, in order.
        let continuation: CheckedContinuation<[Result<[UInt8], any Error>], any Error>
        /// Why the pool itself ended the job's worker, if it did.
        var ending: Ending?
    }

    private enum Ending { case timedOut, cancelled, stopped }

    private final class Worker: Sendable {
        let id: Int
        let child: ChildProcess
        let connection: Connection
        init(id: Int, child: ChildProcess, connection: Connection) {
            (self.id, self.child, self.connection) = (id, child, connection)
        }
    }

    private struct State {
        var workers: [Int: Worker] = [:]
        var idle: [Int] = []
        /// Tasks each worker has finished.
        var finished: [Int: Int] = [:]
        /// Jobs waiting for a worker, in order.
        var pending = _FIFO<Job>()
        /// Jobs on a worker, and which job each busy worker holds.
        var running: [UInt64: Job] = [:]
        var busy: [Int: UInt64] = [:]
        /// Jobs cancelled before they were queued (the handler ran first).
        var cancelledEarly: Set<UInt64> = []
        /// Workers being ended by the pool (a timeout, a cancellation): they take no
        /// new job, even if their reply comes before the signal lands.
        var doomed: Set<Int> = []
        /// Replacements being started: `shutdown` waits for them too.
        var spawning = 0
        /// Workers in a row that ended before finishing any task: the pool then
        /// waits longer before the next replacement (an initializer that always fails).
        var earlyDeaths = 0
        var nextWorker = 0
        var nextJob: UInt64 = 0
        var closed = false
        /// `shutdown()` calls waiting for every job to end.
        var drainWaiters: [CheckedContinuation<Void, Never>] = []

        var hasWork: Bool { !pending.isEmpty || !running.isEmpty }
    }

    /// Starts `workers` worker processes.
    /// - Parameters:
    ///   - workers: How many (default: the number of cores).
    ///   - tasksPerWorker: Tasks a worker runs before it is replaced (nil: no limit).
    ///   - timeout: The timeout of tasks that name none (nil: none).
    ///   - retries: How many times a task whose worker died is run again (default 0).
    ///   - gracePeriod: Between SIGTERM and SIGKILL for a worker stopped for a cancelled task.
    ///   - initializer: What each new worker runs before its first task (Swift workers).
    ///   - executable: The workers' program, whose `main` calls `ChildProcess.bootstrap`
    ///     with the tasks (default: this executable).
    ///   - arguments: For any other worker program, such as a Python one serving its
    ///     functions with `Python/swift_multiprocessing_worker.py`
    ///     (`executable: "/usr/bin/env", arguments: ["python3", "tasks.py"]`): its
    ///     arguments. It gets its connection as descriptor 3.
    /// - Throws: `ProcessPoolError.system` if a worker cannot be started.
    public init(
        workers: Int = ProcessPool.defaultWorkerCount, tasksPerWorker: Int? = nil, timeout: Duration? = nil,
        retries: Int = 0, gracePeriod: Duration = .seconds(5), initializer: Initializer? = nil,
        executable: String = "/proc/self/exe", arguments: [String]? = nil
    ) throws {
        self.workerCount = Swift.max(1, workers)
        self.tasksPerWorker = tasksPerWorker.map { Swift.max(1, $0) }
        self.defaultTimeout = timeout
        self.retries = Swift.max(0, retries)
        self.gracePeriod = gracePeriod
        self.executable = executable
        self.arguments = arguments
        self.initializer = initializer
        do {
            for _ in 0..<workerCount { try startWorker() }
        } catch {
            // The ones started are let go; their readers end them, and replace none.
            let started = state.withLock { state in
                state.closed = true
                return Array(state.workers.values)
            }
            for worker in started { worker.connection.close() }
            throw error
        }
    }

    /// The number of cores.
    public static var defaultWorkerCount: Int { Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    // MARK: Calls

    /// Runs `task` on `input` in a worker and returns its output.
    /// - Throws: `ProcessPoolError` (`.taskFailed` with the thrown error's type and
    ///   description, `.workerDied`, `.timedOut`, `.shutDown`, `.unknownTask`);
    ///   `EncodingError`/`DecodingError` for the input and output;
    ///   `CancellationError` when the awaiting task is cancelled.
    public func run<Input, Output>(_ task: Task<Input, Output>, _ input: Input, timeout: Duration? = nil) async throws -> Output {
        let bytes = try encoder.encode(input)
        let outcomes = try await submit(task.name, [bytes], chunked: false, timeout: timeout ?? defaultTimeout)
        return try decoder.decode(Output.self, from: outcomes[0].get())
    }

    /// `run` for synchronous callers: blocks this thread (never call it from async code).
    public func run<Input, Output>(_ task: Task<Input, Output>, _ input: Input, timeout: Duration? = nil) throws -> Output {
        let result = _BlockingResult<Output>()
        let done = DispatchSemaphore(value: 0)
        _Concurrency.Task.detached {
            do { result.set(.success(try await self.run(task, input, timeout: timeout))) } catch { result.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try result.get()
    }

    /// Runs `task` on a chunk of inputs as one request: each input's output, or its error.
    private func runChunk<Input, Output>(_ task: Task<Input, Output>, _ inputs: ArraySlice<Input>) async throws -> [Result<Output, any Error>] {
        let bytes = try inputs.map { try encoder.encode($0) }
        let outcomes = try await submit(task.name, bytes, chunked: true, timeout: defaultTimeout)
        return outcomes.map { outcome in Result { try decoder.decode(Output.self, from: outcome.get()) } }
    }

    /// The outputs of `task` on each input, in the inputs' order (Python's `map`). It
    /// throws at the first failure, and ends the tasks not yet done. All inputs are
    /// queued at once; the workers take them in order, `chunkSize` at a time (one
    /// request and one reply for each chunk: for tiny tasks, fewer round trips).
    public func map<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> AsyncThrowingStream<Output, any Error> {
        let chunks = Self.chunks(of: Array(inputs), size: chunkSize)
        return AsyncThrowingStream { continuation in
            let producer = _Concurrency.Task {
                do {
                    try await withThrowingTaskGroup(of: (Int, [Output]).self) { group in
                        for (index, chunk) in chunks.enumerated() {
                            group.addTask {
                                guard chunk.count > 1 else { return (index, [try await self.run(task, chunk[chunk.startIndex])]) }
                                return (index, try await self.runChunk(task, chunk).map { try $0.get() })
                            }
                        }
                        var early: [Int: [Output]] = [:]
                        var next = 0
                        for try await (index, outputs) in group {
                            early[index] = outputs
                            while let outputs = early.removeValue(forKey: next) {
                                for output in outputs { continuation.yield(output) }
                                next += 1
                            }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in producer.cancel() }
        }
    }

    /// One input's outcome, from `mapUnordered`.
    public struct Completion<Output: Sendable>: Sendable {
        /// The input's position in the sequence given.
        public let index: Int
        /// Its output, or its error.
        public let result: Result<Output, any Error>
    }

    /// Each input's outcome as it finishes (Python's `imap_unordered`, with the
    /// failures as values: one failure ends nothing), `chunkSize` inputs to a request.
    public func mapUnordered<Input, Output>(
        _ task: Task<Input, Output>, _ inputs: some Sequence<Input>, chunkSize: Int = 1
    ) -> AsyncStream<Completion<Output>> {
        let chunks = Self.chunks(of: Array(inputs), size: chunkSize)
        return AsyncStream { continuation in
            let producer = _Concurrency.Task {
                await withTaskGroup(of: [Completion<Output>].self) { group in
                    for chunk in chunks {
                        group.addTask {
                            guard chunk.count > 1 else {
                                do {
                                    return [Completion(index: chunk.startIndex, result: .success(try await self.run(task, chunk[chunk.startIndex])))]
                                } catch {
                                    return [Completion(index: chunk.startIndex, result: .failure(error))]
                                }
                            }
                            do {
                                return try await self.runChunk(task, chunk).enumerated().map {
                                    Completion(index: chunk.startIndex + $0.offset, result: $0.element)
                                }
                            } catch {
                                return chunk.indices.map { Completion(index: $0, result: .failure(error)) }
                            }
                        }
                    }
                    for await completions in group {
                        for completion in completions { continuation.yield(completion) }
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in producer.cancel() }
        }
    }

    private static func chunks<Element>(of elements: [Element], size: Int) -> [ArraySlice<Element>] {
        let size = Swift.max(1, size)
        return stride(from: 0, to: elements.count, by: size).map { elements[$0..<Swift.min($0 + size, elements.count)] }
    }

    // MARK: Shutting down

    /// Ends the pool: no task is taken any more. `drain` (the default): the tasks
    /// queued and running finish first. Otherwise they fail `.shutDown` and the
    /// workers are killed. Returns once every worker has ended.
    public func shutdown(drain: Bool = true) async {
        var failed: [CheckedContinuation<[Result<[UInt8], any Error>], any Error>] = []
        var stopping: [Worker] = []
        let waitForDrain = state.withLock { state -> Bool in
            state.closed = true
            guard !drain else { return state.hasWork }
            while let job = state.pending.popFirst() { failed.append(job.continuation) }
            for (id, job) in state.running {
                state.running[id]?.ending = .stopped
                _ = job
            }
            stopping = state.busy.keys.compactMap { state.workers[$0] }
            return false
        }
        for continuation in failed { continuation.resume(throwing: ProcessPoolError.shutDown) }
        for worker in stopping { try? worker.child.kill() }
        if waitForDrain {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    guard state.hasWork else { return true }
                    state.drainWaiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        // End of file on each connection ends each worker; wait for all of them.
        while true {
            let (workers, spawning) = state.withLock { (Array($0.workers.values), $0.spawning) }
            if workers.isEmpty && spawning == 0 { break }
            for worker in workers {
                worker.connection.close()
                _ = try? await worker.child.join()
            }
            await _Concurrency.Task.yield()
        }
    }

    // MARK: The supervisor

    private func startWorker() throws {
        let (mine, theirs) = try Connection.pipe()
        defer { theirs.close() }  // the worker has its own copy
        let child: ChildProcess
        do {
            if let arguments {
                child = try ChildProcess.start(executable: executable, arguments: arguments, handing: [theirs])
            } else {
                child = try ChildProcess.start(
                    executable: executable, entry: Self.workerEntryName,
                    argument: WorkerStart(
                        connection: theirs, parent: getpid(),
                        initializer: initializer?.name, initializerArgument: initializer?.argument))
            }
        } catch {
            mine.close()
            throw ProcessPoolError(.system, "cannot start a worker: \(error)")
        }
        let worker = state.withLock { state -> Worker in
            state.nextWorker += 1
            let worker = Worker(id: state.nextWorker, child: child, connection: mine)
            state.workers[worker.id] = worker
            state.idle.append(worker.id)
            return worker
        }
        do {
            try _startThread { self.read(worker) }
        } catch {
            _Concurrency.Task.detached { self.read(worker) }  // no thread to be had: on the pool's, rather than not at all
        }
    }

    /// Queues a job and waits for its outputs.
    private func submit(_ task: String, _ inputs: [[UInt8]], chunked: Bool, timeout: Duration?) async throws -> [Result<[UInt8], any Error>] {
        let id = state.withLock { state -> UInt64 in
            state.nextJob += 1
            return state.nextJob
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Result<[UInt8], any Error>], any Error>) in
                let refusal = state.withLock { state -> (any Error)? in
                    if state.closed { return ProcessPoolError.shutDown }
                    if state.cancelledEarly.remove(id) != nil { return CancellationError() }
                    state.pending.append(Job(
                        id: id, task: task, inputs: inputs, chunked: chunked, timeout: timeout, triesLeft: retries,
                        continuation: continuation))
                    return nil
                }
                if let refusal { continuation.resume(throwing: refusal) } else { dispatch() }
            }
        } onCancel: {
            cancel(id)
        }
    }

    /// Gives waiting jobs to idle workers.
    private func dispatch() {
        var sends: [(Worker, Job)] = []
        state.withLock { state in
            while let worker = state.idle.first, !state.pending.isEmpty {
                state.idle.removeFirst()
                guard let holder = state.workers[worker], let job = state.pending.popFirst() else { continue }
                state.running[job.id] = job
                state.busy[worker] = job.id
                sends.append((holder, job))
            }
        }
        for (worker, job) in sends {
            do {
                try worker.connection.send(job.chunked
                    ? _PoolRequest(id: job.id, task: job.task, inputs: job.inputs)
                    : _PoolRequest(id: job.id, task: job.task, input: job.inputs[0]))
            } catch {
                // It cannot be spoken to: it is ended, and its reader handles the job as a death.
                try? worker.child.kill()
                continue
            }
            if let timeout = job.timeout {
                let id = job.id  // not the job: its inputs need not live as long as the timer
                _Concurrency.Task { [weak self] in
                    try? await _Concurrency.Task.sleep(for: timeout)
                    self?.end(id, on: worker, because: .timedOut)
                }
            }
        }
    }

    /// Ends the worker running job `id` (if it still does), saying why.
    private func end(_ id: UInt64, on worker: Worker, because ending: Ending) {
        let holds = state.withLock { state -> Bool in
            guard state.busy[worker.id] == id else { return false }
            state.running[id]?.ending = ending
            state.doomed.insert(worker.id)  // even if the job's reply beats the signal, no other job goes to it
            return true
        }
        guard holds else { return }
        if ending == .cancelled {
            // The scoped child's teardown: SIGTERM, the grace period, SIGKILL.
            let grace = gracePeriod
            _Concurrency.Task { await worker.child.stop(gracePeriod: grace) }
        } else {
            try? worker.child.kill()
        }
    }

    private func cancel(_ id: UInt64) {
        let (waiting, worker) = state.withLock { state -> (Job?, Worker?) in
            if let job = state.pending.remove(where: { $0.id == id }) { return (job, nil) }
            if let worker = state.busy.first(where: { $0.value == id })?.key { return (nil, state.workers[worker]) }
            if state.running[id] == nil { state.cancelledEarly.insert(id) }
            return (nil, nil)
        }
        waiting?.continuation.resume(throwing: CancellationError())
        if let worker { end(id, on: worker, because: .cancelled) }
    }

    /// A worker's replies, until its connection ends; then it is replaced.
    /// Runs on a thread of its own per worker, blocked in `receive`: a reply then
    /// resumes its caller with one thread switch, where a wait through the reactor
    /// costs two more (a round trip measured 119 µs that way).
    private func read(_ worker: Worker) {
        while true {
            guard let bytes = try? worker.connection.receiveBytes(),
                  let reply = try? decoder.decode(_PoolReply.self, from: bytes) else { break }
            var retire = false
            var confused = false
            let job = state.withLock { state -> Job? in
                guard state.busy[worker.id] == reply.id else {
                    confused = true  // a reply to no request of ours: the worker is not speaking the protocol
                    return nil
                }
                state.busy[worker.id] = nil
                state.finished[worker.id, default: 0] += 1
                state.earlyDeaths = 0
                if state.doomed.contains(worker.id) {
                    retire = true
                } else if let quota = tasksPerWorker, state.finished[worker.id, default: 0] >= quota {
                    retire = true
                } else {
                    state.idle.append(worker.id)
                }
                return state.running.removeValue(forKey: reply.id)
            }
            if confused {
                try? worker.child.kill()
                break
            }
            if let job {
                let outcomes = (reply.results ?? [_PoolReply.Outcome(output: reply.output, error: reply.error)]).map {
                    Self.outcome($0, worker: worker.id)
                }
                if outcomes.count == job.inputs.count {
                    job.continuation.resume(returning: outcomes)
                } else {
                    job.continuation.resume(throwing: ProcessPoolError(
                        .system, "worker \(worker.id) answered \(outcomes.count) results for \(job.inputs.count) inputs", worker: worker.id))
                }
            }
            wakeDrainWaiters()
            if retire {
                worker.connection.close()  // it ends at end of file; replaced below
                break
            }
            dispatch()
        }
        died(worker)
    }

    /// A worker ended (killed, crashed, retired, or let go): its job fails or is
    /// retried, and another worker takes its place unless the pool is done.
    private func died(_ worker: Worker) {
        worker.connection.close()
        let termination = try? worker.child.join()
        var failure: (CheckedContinuation<[Result<[UInt8], any Error>], any Error>, any Error)?
        let replace = state.withLock { state -> Bool in
            state.workers[worker.id] = nil
            state.doomed.remove(worker.id)
            if state.finished[worker.id, default: 0] == 0 && state.busy[worker.id] == nil { state.earlyDeaths += 1 }
            state.idle.removeAll { $0 == worker.id }
            state.finished[worker.id] = nil
            if let id = state.busy.removeValue(forKey: worker.id), var job = state.running.removeValue(forKey: id) {
                switch job.ending {
                case .timedOut?:
                    failure = (job.continuation, ProcessPoolError(.timedOut, "the task '\(job.task)' ran past its timeout of \(job.timeout.map { "\($0)" } ?? "?"); worker \(worker.id) was killed", worker: worker.id))
                case .cancelled?:
                    failure = (job.continuation, CancellationError())
                case .stopped?:
                    failure = (job.continuation, ProcessPoolError(.shutDown, "the pool was stopped while the task '\(job.task)' ran", worker: worker.id))
                case nil where job.triesLeft > 0:
                    job.triesLeft -= 1
                    state.pending.prepend(job)  // first in line
                case nil:
                    let how = termination.map { "\($0)" } ?? "in a way that could not be learned"
                    failure = (job.continuation, ProcessPoolError(
                        .workerDied, "worker \(worker.id) (pid \(worker.child.pid)) running the task '\(job.task)' \(how)",
                        worker: worker.id, termination: termination))
                }
            }
            let replace = !state.closed || state.hasWork
            if replace { state.spawning += 1 }
            return replace
        }
        if let (continuation, error) = failure { continuation.resume(throwing: error) }
        if replace {
            // Workers that keep dying before any task (an initializer that always
            // fails) are replaced ever more slowly, up to a second apart.
            let early = state.withLock { $0.earlyDeaths }
            if early > 1 { _sleep(until: _Deadline(after: .milliseconds(Swift.min(1000, 10 << Swift.min(early, 7))))) }
            var failed: [CheckedContinuation<[Result<[UInt8], any Error>], any Error>] = []
            do {
                try startWorker()
            } catch {
                _writeStandardError("swift-multiprocessing: a pool worker could not be replaced: \(error)")
                // With no worker left, what waits would wait for ever: it fails.
                failed = state.withLock { state in
                    guard state.workers.isEmpty, state.spawning == 1 else { return [] }
                    var jobs: [CheckedContinuation<[Result<[UInt8], any Error>], any Error>] = []
                    while let job = state.pending.popFirst() { jobs.append(job.continuation) }
                    return jobs
                }
            }
            state.withLock { $0.spawning -= 1 }
            for continuation in failed {
                continuation.resume(throwing: ProcessPoolError(.system, "no pool worker could be started"))
            }
        }
        wakeDrainWaiters()
        dispatch()
    }

    /// One input's output, or its error as the caller sees it.
    private static func outcome(_ outcome: _PoolReply.Outcome, worker: Int) -> Result<[UInt8], any Error> {
        if let output = outcome.output { return .success(output) }
        let failure = outcome.error ?? .init(type: "unknown", description: "the worker sent neither an output nor an error")
        return .failure(failure.type == "unknownTask"
            ? ProcessPoolError(.unknownTask, failure.description, worker: worker)
            : ProcessPoolError(.taskFailed, "\(failure.type): \(failure.description)", worker: worker, remoteType: failure.type))
    }

    private func wakeDrainWaiters() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.hasWork else { return [] }
            defer { state.drainWaiters.removeAll() }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Runs `body` with a new pool, then shuts it down: draining when `body` returns,
/// stopping (queued and running tasks fail, workers killed) when it throws.
public func withProcessPool<Result>(
    workers: Int = ProcessPool.defaultWorkerCount, tasksPerWorker: Int? = nil, timeout: Duration? = nil,
    retries: Int = 0, gracePeriod: Duration = .seconds(5), initializer: ProcessPool.Initializer? = nil,
    executable: String = "/proc/self/exe", arguments: [String]? = nil,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ProcessPool) async throws -> Result
) async throws -> Result {
    let pool = try ProcessPool(
        workers: workers, tasksPerWorker: tasksPerWorker, timeout: timeout, retries: retries,
        gracePeriod: gracePeriod, initializer: initializer, executable: executable, arguments: arguments)
    do {
        let result = try await body(pool)
        await pool.shutdown()
        return result
    } catch {
        await pool.shutdown(drain: false)
        throw error
    }
}

/// A blocking call's result, set by the task it waits for.
final class _BlockingResult<Value>: @unchecked Sendable {
    // @unchecked: set once before the semaphore is signalled, read after the wait.
    private var value: Result<Value, any Error>?
    func set(_ result: Result<Value, any Error>) { value = result }
    func get() throws -> Value { try value!.get() }
}
