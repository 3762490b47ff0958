import Glibc
import MessagePack
import SystemPackage

extension ProcessPool {
    /// A function a pool's workers run, registered by name in `ChildProcess.bootstrap`
    /// beside the entries, with a typed input and output (any `Codable` values).
    ///
    /// ```swift
    /// let thumbnail = ProcessPool.Task("thumbnail") { (image: Image) throws -> Thumbnail in … }
    /// try ChildProcess.bootstrap([thumbnail])
    /// ```
    public struct Task<Input: Codable & Sendable, Output: Codable & Sendable>: ChildProcessEntry, _PoolTaskBody {
        /// The name the pool sends its workers to say which task to run.
        public let name: String
        let body: @Sendable (Input) throws -> Output

        /// A task whose body is Swift, run in this program's workers.
        /// - Parameters:
        ///   - name: How the pool names the task to its workers; unique in a program.
        ///   - body: The work, run in a worker process. What it throws reaches the
        ///     caller as `ProcessPoolError.taskFailed`, with the error's type and description.
        public init(_ name: String, _ body: @escaping @Sendable (Input) throws -> Output) {
            self.name = name
            self.body = body
        }

        /// A task whose body another worker program has: a Python worker
        /// (`Python/swift_multiprocessing_worker.py`) that serves a function by this
        /// name. Its types say what goes in and what comes back.
        public init(_ name: String) {
            self.init(name) { _ in
                throw ProcessPoolError(.unknownTask, "'\(name)' runs in another worker program, not in this one")
            }
        }

        /// A task is not a child's entry of its own: a pool's workers run it.
        public func _run(argument: [UInt8], handles: _HandleTable) throws {
            throw ProcessPoolError(.unknownTask, "'\(name)' is a pool task: a ProcessPool's workers run it, not ChildProcess.start")
        }

        func perform(_ input: [UInt8], _ coders: (MessagePackEncoder, MessagePackDecoder)) throws -> [UInt8] {
            try coders.0.encode(body(coders.1.decode(Input.self, from: input)))
        }

        func perform(batch: [UInt8], into reply: inout _PoolReply, _ coders: (MessagePackEncoder, MessagePackDecoder)) {
            // The chunk is decoded and its outputs encoded as one array each: a Codable
            // call per input, each way, was most of a chunked map's cost per input.
            let inputs: [Input]
            do {
                inputs = try _PoolBatch.decode(from: batch, with: coders.1)
            } catch {
                reply.outcome.error = .init(error)
                return
            }
            let results = inputs.map { input in Result { try body(input) } }
            if let outputs = try? results.map({ try $0.get() }), let bytes = try? _PoolBatch.encode(outputs, with: coders.0) {
                reply.outputs = bytes
                return
            }
            // A failure (or an output that cannot be encoded) is that input's alone.
            reply.results = results.map { result in
                do {
                    return .init(output: try coders.0.encode(result.get()))
                } catch {
                    return .init(error: .init(error))
                }
            }
        }
    }

    /// The entry name a worker is started with; `bootstrap` runs the worker loop for it.
    static let workerEntryName = "swift-multiprocessing.pool-worker"

    /// What a worker is started with: its connection to the pool, and the pool's pid
    /// (a worker whose parent is no longer that process ends).
    struct WorkerStart: Codable, Sendable {
        var connection: Connection
        var parent: Int32
        /// The entry to run once before the first task, and its argument's MessagePack.
        var initializer: String?
        var initializerArgument: [UInt8]?
    }

    /// What each new worker runs once, before its first task (Python's `initializer`
    /// and `initargs`): a `ChildProcess.Entry` registered in `bootstrap` with the
    /// tasks, and its argument. The argument is MessagePack made here, so it cannot
    /// hold connections or queues. If it throws, the worker exits with code 1 and
    /// the pool starts another.
    public struct Initializer: Sendable {
        let name: String
        let argument: [UInt8]

        /// Each new worker runs `entry` with `argument` before its first task.
        /// - Parameters:
        ///   - entry: An entry registered in the workers' `ChildProcess.bootstrap`.
        ///   - argument: Its argument, encoded once, here.
        /// - Throws: The encoder's `EncodingError` for an argument that cannot be encoded
        ///   (one holding a connection or a queue, say).
        public init<Argument>(_ entry: ChildProcess.Entry<Argument>, _ argument: Argument) throws {
            self.name = entry.name
            self.argument = try MessagePackEncoder().encode(argument)
        }
    }

    /// The worker: takes requests from its connection one at a time, runs the task
    /// named, and sends back its output or its error, until end of file (the pool
    /// closed the connection, or ended). A thread of its own waits on a pidfd of the
    /// parent and exits the process when the parent ends, even mid-task, so no
    /// worker outlives the pool's process. (Not PR_SET_PDEATHSIG: that fires when
    /// the parent's *thread* that spawned the worker ends, and the pool spawns from
    /// threads of Swift's pool, which come and go.)
    static func runWorker(_ start: WorkerStart, tasks: [any ChildProcessEntry]) -> Never {
        watchParent(start.parent)
        // Not inherited by what a task may start: a grandchild holding it would keep
        // the pool from seeing this worker's end.
        _setCloseOnExec(start.connection.fileDescriptor)
        start.connection.enableReadAhead()  // only this process reads it
        if let name = start.initializer {
            guard let entry = tasks.first(where: { $0.name == name }) else {
                _writeStandardError("swift-multiprocessing: no entry named '\(name)' to initialize a pool worker")
                _exit(code: 2)
            }
            do {
                try entry._run(argument: start.initializerArgument ?? [], handles: _HandleTable(childDescriptors: []))
            } catch {
                _writeStandardError("swift-multiprocessing: a pool worker's initializer '\(name)' failed: \(error)")
                _exit(code: 1)
            }
        }
        let bodies = tasks.compactMap { $0 as? any _PoolTaskBody }
        let coders = (MessagePackEncoder(), MessagePackDecoder())  // one pair for every task, not a pair each
        while true {
            let request: _PoolRequest
            do { request = try _PoolRequest(frame: start.connection.receiveBytes()) } catch { _exit(code: 0) }
            var reply = _PoolReply(id: request.id)
            if let task = bodies.first(where: { $0.name == request.task }) {
                if let batch = request.batch {
                    task.perform(batch: batch, into: &reply, coders)
                } else {
                    do {
                        reply.outcome.output = try task.perform(request.input ?? [], coders)
                    } catch {
                        reply.outcome.error = .init(error)
                    }
                }
            } else {
                reply.outcome.error = .init(type: "unknownTask", description: "this worker has no task named '\(request.task)' (tasks: \(bodies.map(\.name)))")
            }
            do { try start.connection.sendBytes(reply.bytes()) } catch { _exit(code: 0) }
        }
    }
}

extension ProcessPool {
    /// Exits this process when `parent` ends: a thread waits on a pidfd of it. If the
    /// parent is already gone (its pidfd cannot be had, or this process was
    /// re-parented), exits now.
    static func watchParent(_ parent: Int32) {
        guard let handle = try? _pidDescriptor(parent), getppid() == parent else { _exit(code: 0) }
        do throws(Errno) {
            try _startThread {
                while (try? _pollReadable([handle], deadline: nil))?.first != true {}
                _exit(code: 0)
            }
        } catch {
            _exit(code: 0)  // a worker that cannot watch must not run unwatched
        }
    }
}

/// A pool task, seen by the worker loop without its types.
protocol _PoolTaskBody: Sendable {
    var name: String { get }
    /// The output's MessagePack for the input's, with the worker's encoder and decoder.
    func perform(_ input: [UInt8], _ coders: (MessagePackEncoder, MessagePackDecoder)) throws -> [UInt8]
    /// A chunk's reply for its inputs (one MessagePack array of them): every output
    /// as one array when every input's task returned, else each input's outcome; or
    /// an error alone when the batch cannot be read.
    func perform(batch: [UInt8], into reply: inout _PoolReply, _ coders: (MessagePackEncoder, MessagePackDecoder))
}
