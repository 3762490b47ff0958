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
/// with one duplex `Connection` to the pool, and runs one task at a time; the pool
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
///
/// A worker whose last task took under a millisecond is sent up to
/// `ProcessPool.pipelineDepth` tasks at once, so that it never waits for the pool
/// between short tasks; the pool still knows which one runs (a worker answers in
/// order), and the ones behind it, which never began, wait again for another
/// worker if it dies. A worker whose tasks take longer holds one at a time.
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
    /// The most tasks a worker holds at once, when its tasks are short.
    public static let pipelineDepth = 16
    /// The most request bytes a busy worker is sent ahead (an idle one takes a
    /// request of any size): well within a Unix socket's buffer (208 KiB here).
    static let pipelineBytes = 1 << 16
    /// A task under this (in nanoseconds, as the pool sees it) is short.
    static let shortTask: Int64 = 1_000_000
    /// How long a task cancelled while it waited in a worker may run before the
    /// worker is stopped (its caller was answered at once).
    static let cancelledAllowance: Duration = .milliseconds(100)
    private let executable: String
    /// For a worker program that is not a Swift one calling `bootstrap`: its
    /// arguments (it gets its connection as descriptor 3).
    private let arguments: [String]?
    private let initializer: Initializer?
    private let state = Mutex(State())
    let encoder = MessagePackEncoder()
    let decoder = MessagePackDecoder()

    /// A job's outcome: each input's output (MessagePack) or error, in order; or, for
    /// a chunk whose every input's task returned, the outputs as one MessagePack
    /// array (its count is checked where it is decoded).
    enum Outcomes {
        case each([Result<[UInt8], any Error>])
        case batch([UInt8])
    }
    /// Where a job's outcome goes; never called under the pool's lock.
    typealias Finish = @Sendable (Result<Outcomes, any Error>) -> Void

    /// A class: a job moves from queue to worker to table several times per task,
    /// and a struct of five counted references cost ten atomic operations a move.
    /// (@unchecked Sendable: its `var`s are read and written under the pool's lock,
    /// or by the one thread that took it out of the pool's tables under the lock.)
    private final class Job: @unchecked Sendable {
        let id: UInt64
        let task: String
        /// The `_PoolRequest` frame, made once.
        let request: [UInt8]
        /// A chunk's count of inputs; nil for one input.
        let batchCount: Int?
        let timeout: Duration?
        var triesLeft: Int
        let finish: Finish
        /// Why the pool itself ended the job's worker, if it did.
        var ending: Ending?
        /// Cancelled while it waited in a worker: its caller has been answered, and
        /// what comes of it is dropped.
        var answered = false

        init(id: UInt64, task: String, request: [UInt8], batchCount: Int?, timeout: Duration?, triesLeft: Int, finish: @escaping Finish) {
            (self.id, self.task, self.request, self.batchCount) = (id, task, request, batchCount)
            (self.timeout, self.triesLeft, self.finish) = (timeout, triesLeft, finish)
        }
    }

    private enum Ending { case timedOut, cancelled, stopped }

    private final class Worker: Sendable {
        let id: Int
        let child: ChildProcess
        let connection: Connection
        /// Requests given to this worker and not yet written, in the order given.
        private let outbox = Mutex(Outbox())
        private struct Outbox {
            var frames: [[UInt8]] = []
            var writing = false
        }

        init(id: Int, child: ChildProcess, connection: Connection) {
            (self.id, self.child, self.connection) = (id, child, connection)
        }

        /// Called under the pool's lock, in the order the jobs were given.
        func give(_ frame: [UInt8]) { outbox.withLock { $0.frames.append(frame) } }

        /// Writes what was given, in order. Threads that give at once do not wait on
        /// each other: the one writing takes what the others gave before it stops.
        /// - Returns: false if the worker cannot be written to.
        func flush() -> Bool {
            while true {
                let frames = outbox.withLock { outbox -> [[UInt8]] in
                    guard !outbox.writing, !outbox.frames.isEmpty else { return [] }
                    outbox.writing = true
                    defer { outbox.frames.removeAll() }
                    return outbox.frames
                }
                guard !frames.isEmpty else { return true }
                let written = (try? connection.sendFrames(frames)) != nil
                outbox.withLock { $0.writing = false }
                guard written else { return false }
            }
        }
    }

    /// A live worker, and what the pool knows of it.
    private struct Seat {
        let worker: Worker
        /// The jobs sent to it, in order: the first is the one running.
        var jobs: [UInt64] = []
        /// Their requests' bytes. Jobs go behind a running one only while these stay
        /// within `pipelineBytes`, which the socket's buffer holds: so a write to a
        /// busy worker never blocks. (A reader thread writes, and a blocked one would
        /// stop reading the replies its worker is blocked on writing.)
        var bytes = 0
        var finished = 0
        /// Its last task was short: it may hold `pipelineDepth` jobs.
        var short = false
        /// When its first job began, as the pool sees it (the send, or the reply before).
        var since: Int64 = 0
        /// When it was last given a job (a count): of two as loaded, the one given
        /// a job longer ago takes the next, so work spreads over the workers.
        var lastGiven: UInt64 = 0
        /// Being ended by the pool (a timeout, a cancellation, its quota): it takes no
        /// new job, even if a reply comes before the signal lands.
        var doomed = false
    }

    private struct State {
        /// The live workers, by id.
        var seats: [Int: Seat] = [:]
        /// Jobs waiting for a worker, in order.
        var pending = _FIFO<Job>()
        /// Jobs sent to a worker.
        var running: [UInt64: Job] = [:]
        /// Job ids given out and not yet queued, and whether they were cancelled meanwhile.
        var issued: [UInt64: Bool] = [:]
        /// Replacements being started: `shutdown` waits for them too.
        var spawning = 0
        /// Workers in a row that ended before finishing any task: the pool then
        /// waits longer before the next replacement (an initializer that always fails).
        var earlyDeaths = 0
        var nextWorker = 0
        var nextJob: UInt64 = 0
        var jobsGiven: UInt64 = 0
        /// Jobs that waited in a worker that died, given to another (for tests).
        var requeued = 0
        var closed = false
        /// `shutdown()` calls waiting for every job to end.
        var drainWaiters: [CheckedContinuation<Void, Never>] = []

        var hasWork: Bool { !pending.isEmpty || !running.isEmpty }

        /// The `shutdown()` calls to resume, once no job is left; they are resumed outside the lock.
        mutating func takeDrainWaiters() -> [CheckedContinuation<Void, Never>] {
            guard !hasWork else { return [] }
            defer { drainWaiters.removeAll() }
            return drainWaiters
        }

        /// The least loaded worker that may take jobs, the next of `size` bytes first,
        /// if any, and how many. A worker of short tasks takes more once it is down
        /// to half its depth, and then is filled: its requests go in one write, not
        /// one each.
        func seatWithRoom(quota: Int?, for size: Int) -> (id: Int, room: Int)? {
            var best: (id: Int, room: Int, load: Int, lastGiven: UInt64)?
            for (id, seat) in seats where !seat.doomed {
                guard seat.jobs.isEmpty || (seat.short && seat.jobs.count <= ProcessPool.pipelineDepth / 2
                    && seat.bytes + size <= ProcessPool.pipelineBytes) else { continue }
                var room = (seat.short ? ProcessPool.pipelineDepth : 1) - seat.jobs.count
                if let quota { room = Swift.min(room, quota - seat.finished - seat.jobs.count) }
                guard room > 0 else { continue }
                if let chosen = best, (chosen.load, chosen.lastGiven) <= (seat.jobs.count, seat.lastGiven) { continue }
                best = (id, room, seat.jobs.count, seat.lastGiven)
            }
            return best.map { ($0.id, $0.room) }
        }
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
                return state.seats.values.map(\.worker)
            }
            for worker in started { worker.connection.close() }
            throw error
        }
    }

    /// The number of cores.
    public static var defaultWorkerCount: Int { Swift.max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    // MARK: Calls

    /// Runs `task` on `input` in a worker and returns its output.
    /// - Parameters:
    ///   - task: The task, registered in the workers' `ChildProcess.bootstrap`.
    ///   - input: Its input, sent to the worker as MessagePack.
    ///   - timeout: How long the task may run (default: the pool's), counted from when it
    ///     begins in a worker, not while it waits for one; past it, the worker is killed
    ///     and the task fails `.timedOut`.
    /// - Throws: `ProcessPoolError` (`.taskFailed` with the thrown error's type and
    ///   description, `.workerDied`, `.timedOut`, `.shutDown`, `.unknownTask`);
    ///   `EncodingError`/`DecodingError` for the input and output;
    ///   `CancellationError` when the awaiting task is cancelled.
    public func run<Input, Output>(_ task: Task<Input, Output>, _ input: Input, timeout: Duration? = nil) async throws -> Output {
        let bytes = try encoder.encode(input)
        let id = newJobID()
        let outcomes = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcomes, any Error>) in
                enqueue([Submission(id: id, input: bytes, batchCount: nil) { continuation.resume(with: $0) }], task.name, timeout: timeout ?? defaultTimeout)
            }
        } onCancel: {
            cancel(id)
        }
        guard case .each(let results) = outcomes, results.count == 1 else {
            throw ProcessPoolError(.system, "a worker answered a single task's request with a chunk's reply")
        }
        return try decoder.decode(Output.self, from: results[0].get())
    }

    /// `run` for synchronous callers: blocks this thread (never call it from async code).
    public func run<Input, Output>(_ task: Task<Input, Output>, _ input: Input, timeout: Duration? = nil) throws -> Output {
        try _waitBlocking { try await self.run(task, input, timeout: timeout) }
    }

    // MARK: Shutting down

    /// Ends the pool: no task is taken any more. `drain` (the default): the tasks
    /// queued and running finish first. Otherwise they fail `.shutDown` and the
    /// workers are killed. Returns once every worker has ended.
    public func shutdown(drain: Bool = true) async {
        var failed: [Finish] = []
        var stopping: [Worker] = []
        let waitForDrain = state.withLock { state -> Bool in
            state.closed = true
            guard !drain else { return state.hasWork }
            while let job = state.pending.popFirst() { failed.append(job.finish) }
            for id in Array(state.running.keys) { state.running[id]?.ending = .stopped }
            stopping = state.seats.values.filter { !$0.jobs.isEmpty }.map(\.worker)
            return false
        }
        for finish in failed { finish(.failure(ProcessPoolError.shutDown)) }
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
            let (workers, spawning) = state.withLock { ($0.seats.values.map(\.worker), $0.spawning) }
            if workers.isEmpty && spawning == 0 { break }
            for worker in workers {
                worker.connection.close()
                _ = try? await worker.child.join()
            }
            await _Concurrency.Task.yield()
        }
    }

    /// Tasks that waited in a worker that died, or were retried, and were given to
    /// another worker (for tests).
    var requeuedTasks: Int { state.withLock { $0.requeued } }

    /// The live workers' pids (for tests).
    var workerProcessIDs: [Int32] { state.withLock { $0.seats.values.map(\.worker.child.pid) } }

    // MARK: Jobs

    /// A job id, for `enqueue` and `cancel`; `cancel` before `enqueue` makes the
    /// job refused when it comes.
    func newJobID() -> UInt64 {
        newJobIDs(1).lowerBound
    }

    /// `count` job ids at once, in one turn of the lock (a map's batch of chunks).
    func newJobIDs(_ count: Int) -> Range<UInt64> {
        state.withLock { state in
            let first = state.nextJob + 1
            state.nextJob += UInt64(count)
            for id in first..<first + UInt64(count) { state.issued[id] = false }
            return first..<first + UInt64(count)
        }
    }

    /// Gives back an id from `newJobID` that will not be queued.
    func forget(_ id: UInt64) {
        forget(id..<id + 1)
    }

    /// Gives back ids from `newJobIDs` that will not be queued, in one turn of the lock.
    func forget(_ ids: Range<UInt64>) {
        state.withLock { state in
            for id in ids { state.issued.removeValue(forKey: id) }
        }
    }

    /// A job for `enqueue`: its id (from `newJobID`), its input (MessagePack; for a
    /// chunk of `batchCount` inputs, one array of them) and where its outcome goes.
    struct Submission {
        let id: UInt64
        let input: [UInt8]
        let batchCount: Int?
        let finish: Finish
    }

    /// Queues jobs of one task, in order, and gives the workers what they have room
    /// for, all in one turn of the lock: a lock taken per job and again per dispatch,
    /// by the feeding thread and the threads reading replies at once, was where tiny
    /// tasks spent their time (spinning on it).
    func enqueue(_ submissions: [Submission], _ task: String, timeout: Duration?) {
        var jobs: [Job] = []
        var refused: [(Finish, any Error)] = []
        jobs.reserveCapacity(submissions.count)
        for submission in submissions {
            do {
                let request = try (submission.batchCount == nil
                    ? _PoolRequest(id: submission.id, task: task, input: submission.input)
                    : _PoolRequest(id: submission.id, task: task, batch: submission.input)).bytes()
                jobs.append(Job(
                    id: submission.id, task: task, request: request, batchCount: submission.batchCount,
                    timeout: timeout, triesLeft: retries, finish: submission.finish))
            } catch {
                forget(submission.id)
                refused.append((submission.finish, error))
            }
        }
        let dispatched = state.withLock { state -> Dispatched in
            for job in jobs {
                let cancelled = state.issued.removeValue(forKey: job.id) ?? false
                if state.closed {
                    refused.append((job.finish, ProcessPoolError.shutDown))
                } else if cancelled {
                    refused.append((job.finish, CancellationError()))
                } else {
                    state.pending.append(job)
                }
            }
            return dispatch(&state)
        }
        for (finish, error) in refused { finish(.failure(error)) }
        send(dispatched)
    }

    /// Cancels job `id`: a waiting one is dropped; the running one's worker is
    /// stopped; one waiting in a worker behind another is answered at once, and its
    /// worker stopped if it runs past `cancelledAllowance` once it begins.
    func cancel(_ id: UInt64) {
        var answered: Finish?
        let (waiting, running) = state.withLock { state -> (Job?, Worker?) in
            if state.issued[id] != nil {
                state.issued[id] = true
                return (nil, nil)
            }
            if let job = state.pending.remove(where: { $0.id == id }) { return (job, nil) }
            guard let job = state.running[id], !job.answered,
                  let seat = state.seats.first(where: { $0.value.jobs.contains(id) }) else { return (nil, nil) }
            if seat.value.jobs.first == id { return (nil, seat.value.worker) }
            state.running[id]?.answered = true
            state.running[id]?.ending = .cancelled
            answered = job.finish
            return (nil, nil)
        }
        waiting?.finish(.failure(CancellationError()))
        answered?(.failure(CancellationError()))
        if waiting != nil { wakeDrainWaiters() }
        if let running { end(id, on: running, because: .cancelled) }
    }

    /// A timer on a job that has just begun in a worker.
    private struct Timer {
        let job: UInt64
        let worker: Worker
        let after: Duration
        let ending: Ending

        init?(_ job: Job, on worker: Worker) {
            if job.answered {
                (self.job, self.worker, after, ending) = (job.id, worker, ProcessPool.cancelledAllowance, .cancelled)
            } else if let timeout = job.timeout {
                (self.job, self.worker, after, ending) = (job.id, worker, timeout, .timedOut)
            } else {
                return nil
            }
        }
    }

    private func start(_ timers: [Timer]) {
        for timer in timers {
            _Concurrency.Task { [weak self] in
                try? await _Concurrency.Task.sleep(for: timer.after)
                self?.end(timer.job, on: timer.worker, because: timer.ending)
            }
        }
    }

    /// What a dispatch gave out: the workers to write to, and the timers to start.
    private struct Dispatched {
        var workers: [Worker] = []
        var timers: [Timer] = []
    }

    /// Gives waiting jobs to the workers with room, the least loaded first.
    private func dispatch() {
        send(state.withLock { dispatch(&$0) })
    }

    /// Gives waiting jobs to the workers with room (under the lock); `send` then writes them.
    private func dispatch(_ state: inout State) -> Dispatched {
        var dispatched = Dispatched()
        guard !state.pending.isEmpty else { return dispatched }
        let now = _Deadline.now.nanoseconds
        // The seat is taken out while it changes, and put back: changed inside the
        // dictionary, its array of jobs was copied (the dictionary held it too).
        while let next = state.pending.first, let (id, room) = state.seatWithRoom(quota: tasksPerWorker, for: next.request.count),
              var seat = state.seats.removeValue(forKey: id) {
            for _ in 0..<room {
                guard let job = state.pending.first else { break }
                if seat.jobs.isEmpty {
                    seat.since = now
                    if let timer = Timer(job, on: seat.worker) { dispatched.timers.append(timer) }
                } else if seat.bytes + job.request.count > Self.pipelineBytes {
                    break
                }
                _ = state.pending.popFirst()
                seat.bytes += job.request.count
                seat.jobs.append(job.id)
                state.running[job.id] = job
                seat.worker.give(job.request)
            }
            state.jobsGiven += 1
            seat.lastGiven = state.jobsGiven
            state.seats[id] = seat
            dispatched.workers.append(seat.worker)
        }
        return dispatched
    }

    /// Writes what a dispatch gave (not under the lock).
    private func send(_ dispatched: Dispatched) {
        // One that cannot be spoken to is ended; its reader handles its jobs as a death.
        for worker in dispatched.workers where !worker.flush() { try? worker.child.kill() }
        start(dispatched.timers)
    }

    /// Ends the worker running job `id` (if it still does), saying why.
    private func end(_ id: UInt64, on worker: Worker, because ending: Ending) {
        let holds = state.withLock { state -> Bool in
            guard state.seats[worker.id]?.jobs.first == id else { return false }
            state.running[id]?.ending = ending
            state.seats[worker.id]?.doomed = true
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

    // MARK: The supervisor

    private func startWorker() throws {
        let (mine, theirs) = try Connection.pipe()
        defer { theirs.close() }  // the worker has its own copy
        mine.enableReadAhead()  // only this process reads it
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
            state.seats[worker.id] = Seat(worker: worker)
            return worker
        }
        do {
            try _startThread { self.read(worker) }
        } catch {
            _Concurrency.Task.detached { self.read(worker) }  // no thread to be had: on the pool's, rather than not at all
        }
        dispatch()
    }

    /// A worker's replies, until its connection ends; then it is replaced.
    /// Runs on a thread of its own per worker, blocked in `receive`: a reply then
    /// resumes its caller with one thread switch, where a wait through the reactor
    /// costs two more (a round trip measured 119 µs that way).
    private func read(_ worker: Worker) {
        while true {
            guard let bytes = try? worker.connection.receiveBytes(),
                  let reply = try? _PoolReply(frame: bytes) else { break }
            var retire = false
            var timers: [Timer] = []
            var dispatched = Dispatched()
            var drained: [CheckedContinuation<Void, Never>] = []
            // One turn of the lock for the reply, the drain waiters and the next jobs.
            let job = state.withLock { state -> Job?? in
                // Taken out while it changes, as in `dispatch`.
                guard var seat = state.seats.removeValue(forKey: worker.id) else { return nil }
                // A reply to no request of ours, or out of order: the worker is not speaking the protocol.
                guard seat.jobs.first == reply.id else {
                    state.seats[worker.id] = seat
                    return nil
                }
                seat.jobs.removeFirst()
                seat.bytes -= state.running[reply.id]?.request.count ?? 0
                seat.finished += 1
                let now = _Deadline.now.nanoseconds
                seat.short = now - seat.since < Self.shortTask
                seat.since = now
                state.earlyDeaths = 0
                if let quota = tasksPerWorker, seat.finished >= quota { seat.doomed = true }
                // A worker being ended for another job's sake (a timeout, a cancellation)
                // with jobs still on it is read to its end: the replies of those it ran
                // before the signal landed still count.
                retire = seat.doomed && seat.jobs.isEmpty
                if !seat.doomed, let next = seat.jobs.first, let job = state.running[next], let timer = Timer(job, on: worker) {
                    timers.append(timer)
                }
                state.seats[worker.id] = seat
                let job = state.running.removeValue(forKey: reply.id)
                drained = state.takeDrainWaiters()
                if !retire { dispatched = dispatch(&state) }
                return .some(job)
            }
            guard let job else {
                try? worker.child.kill()
                break
            }
            start(timers)
            if let job, !job.answered { job.finish(Self.outcomes(of: reply, batchCount: job.batchCount, worker: worker.id)) }
            for waiter in drained { waiter.resume() }
            if retire {
                worker.connection.close()  // it ends at end of file; replaced below
                break
            }
            send(dispatched)
        }
        died(worker)
    }

    /// A worker ended (killed, crashed, retired, or let go): its running job fails
    /// or is retried, the ones behind it wait again, and another worker takes its
    /// place unless the pool is done.
    private func died(_ worker: Worker) {
        worker.connection.close()
        let termination = try? worker.child.join()
        var failures: [(Finish, any Error)] = []
        let replace = state.withLock { state -> Bool in
            let seat = state.seats.removeValue(forKey: worker.id) ?? Seat(worker: worker)
            if seat.finished == 0 && seat.jobs.isEmpty { state.earlyDeaths += 1 }
            var again: [Job] = []
            for (position, id) in seat.jobs.enumerated() {
                guard let job = state.running.removeValue(forKey: id), !job.answered else { continue }
                switch job.ending {
                case .stopped?:
                    failures.append((job.finish, ProcessPoolError(.shutDown, "the pool was stopped while the task '\(job.task)' ran or waited", worker: worker.id)))
                case nil where position > 0 || seat.doomed:
                    // It never began, or its worker was ended for another job's sake: it
                    // waits again, as it was.
                    again.append(job)
                case .timedOut?:
                    failures.append((job.finish, ProcessPoolError(.timedOut, "the task '\(job.task)' ran past its timeout of \(job.timeout.map { "\($0)" } ?? "?"); worker \(worker.id) was killed", worker: worker.id)))
                case .cancelled?:
                    failures.append((job.finish, CancellationError()))
                case nil where job.triesLeft > 0:
                    job.triesLeft -= 1
                    again.append(job)  // first in line
                case nil:
                    let how = termination.map { "\($0)" } ?? "in a way that could not be learned"
                    failures.append((job.finish, ProcessPoolError(
                        .workerDied, "worker \(worker.id) (pid \(worker.child.pid)) running the task '\(job.task)' \(how)",
                        worker: worker.id, termination: termination)))
                }
            }
            state.requeued += again.count
            for job in again.reversed() { state.pending.prepend(job) }
            let replace = !state.closed || state.hasWork
            if replace { state.spawning += 1 }
            return replace
        }
        for (finish, error) in failures { finish(.failure(error)) }
        if replace {
            // Workers that keep dying before any task (an initializer that always
            // fails) are replaced ever more slowly, up to a second apart.
            let early = state.withLock { $0.earlyDeaths }
            if early > 1 { _sleep(until: _Deadline(after: .milliseconds(Swift.min(1000, 10 << Swift.min(early, 7))))) }
            var failed: [Finish] = []
            do {
                try startWorker()
            } catch {
                _writeStandardError("swift-multiprocessing: a pool worker could not be replaced: \(error)")
                // With no worker left, what waits would wait for ever: it fails.
                failed = state.withLock { state in
                    guard state.seats.isEmpty, state.spawning == 1 else { return [] }
                    var jobs: [Finish] = []
                    while let job = state.pending.popFirst() { jobs.append(job.finish) }
                    return jobs
                }
            }
            state.withLock { $0.spawning -= 1 }
            for finish in failed { finish(.failure(ProcessPoolError(.system, "no pool worker could be started"))) }
        }
        wakeDrainWaiters()
        dispatch()
    }

    /// What a reply says of each of its job's inputs. It must say one thing: an output
    /// or an error for one input; for a chunk, its outputs, its results, or an error
    /// (the worker could not read the batch, or has no such task) for each input.
    static func outcomes(of reply: _PoolReply, batchCount: Int?, worker: Int) -> Result<Outcomes, any Error> {
        let count = batchCount ?? 1
        func broken(_ answer: String) -> Result<Outcomes, any Error> {
            .failure(ProcessPoolError(.system, "worker \(worker) answered \(answer) for \(count) input\(count == 1 ? "" : "s")", worker: worker))
        }
        // Counted without an array: this runs for every reply.
        let said = (reply.outputs == nil ? 0 : 1) + (reply.results == nil ? 0 : 1)
            + (reply.outcome.output == nil ? 0 : 1) + (reply.outcome.error == nil ? 0 : 1)
        guard said == 1 else { return broken("\(said) of output, error, outputs and results") }
        switch (batchCount, reply.outputs, reply.results) {
        case (_?, let outputs?, _): return .success(.batch(outputs))
        case (_?, _, let results?):
            guard results.count == count else { return broken("\(results.count) results") }
            return .success(.each(results.map { outcome($0, worker: worker) }))
        case (_?, _, _):
            guard reply.outcome.error != nil else { return broken("one output, not a chunk's") }
            return .success(.each(Array(repeating: outcome(reply.outcome, worker: worker), count: count)))
        case (nil, nil, nil): return .success(.each([outcome(reply.outcome, worker: worker)]))
        case (nil, _, _): return broken("a chunk's outputs or results")
        }
    }

    /// One input's output, or its error as the caller sees it.
    private static func outcome(_ outcome: _PoolReply.Outcome, worker: Int) -> Result<[UInt8], any Error> {
        switch (outcome.output, outcome.error) {
        case (let output?, nil): return .success(output)
        case (nil, let failure?):
            return .failure(failure.type == "unknownTask"
                ? ProcessPoolError(.unknownTask, failure.description, worker: worker)
                : ProcessPoolError(.taskFailed, "\(failure.type): \(failure.description)", worker: worker, remoteType: failure.type))
        case (nil, nil): return .failure(ProcessPoolError(.system, "worker \(worker) sent neither an output nor an error", worker: worker))
        case (_?, _?): return .failure(ProcessPoolError(.system, "worker \(worker) sent both an output and an error", worker: worker))
        }
    }

    private func wakeDrainWaiters() {
        for waiter in state.withLock({ $0.takeDrainWaiters() }) { waiter.resume() }
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
