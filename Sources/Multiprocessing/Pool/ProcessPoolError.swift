/// Why a pool task did not give its output.
public struct ProcessPoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The code's name, such as `workerDied`.
        public var description: String { name }
        /// The worker running the task ended (a signal, `exit`): `worker` and `termination` say which and how.
        public static let workerDied = Code(name: "workerDied")
        /// The task ran past its timeout; its worker was killed and replaced.
        public static let timedOut = Code(name: "timedOut")
        /// The task threw in the worker: `remoteType` and the description are the error's.
        public static let taskFailed = Code(name: "taskFailed")
        /// The pool was shut down before the task ran, or stopped while it ran.
        public static let shutDown = Code(name: "shutDown")
        /// The worker has no task of that name (its `bootstrap` did not register it).
        public static let unknownTask = Code(name: "unknownTask")
        /// A worker could not be started or spoken to.
        public static let system = Code(name: "system")
    }

    /// What went wrong: compare it, `error.code == .workerDied`, or catch by it,
    /// `catch ProcessPoolError.workerDied`.
    public let code: Code
    /// The worker (numbered from 1 as the pool starts them) that ran the task, if one did.
    public let worker: Int?
    /// How that worker ended, for `.workerDied`.
    public let termination: ChildProcess.Termination?
    /// The type of the error thrown in the worker, for `.taskFailed` (`String(reflecting:)`).
    public let remoteType: String?
    let detail: String

    init(_ code: Code, _ detail: String, worker: Int? = nil, termination: ChildProcess.Termination? = nil, remoteType: String? = nil) {
        (self.code, self.detail, self.worker, self.termination, self.remoteType) = (code, detail, worker, termination, remoteType)
    }

    /// A `.timedOut` error, to catch any: `catch ProcessPoolError.timedOut { … }`.
    public static let timedOut = ProcessPoolError(.timedOut, "the task ran past its timeout")
    /// A `.shutDown` error, to catch any: `catch ProcessPoolError.shutDown { … }`.
    public static let shutDown = ProcessPoolError(.shutDown, "the pool is shut down")
    /// A `.workerDied` error, to catch any: `catch ProcessPoolError.workerDied { … }`.
    public static let workerDied = ProcessPoolError(.workerDied, "the worker died")
    /// A `.taskFailed` error, to catch any: `catch ProcessPoolError.taskFailed { … }`.
    public static let taskFailed = ProcessPoolError(.taskFailed, "the task threw")
    /// An `.unknownTask` error, to catch any: `catch ProcessPoolError.unknownTask { … }`.
    public static let unknownTask = ProcessPoolError(.unknownTask, "no worker has the task")
    /// A `.system` error, to catch any: `catch ProcessPoolError.system { … }`.
    public static let system = ProcessPoolError(.system, "the pool or a worker failed")

    /// Errors compare by their code: `#expect(throws: ProcessPoolError.timedOut)` matches any `.timedOut`.
    public static func == (a: ProcessPoolError, b: ProcessPoolError) -> Bool { a.code == b.code }
    /// Hashes the code alone, as `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
    /// `catch ProcessPoolError.timedOut { … }` catches any `.timedOut`.
    public static func ~= (pattern: ProcessPoolError, error: any Error) -> Bool {
        (error as? ProcessPoolError)?.code == pattern.code
    }

    /// `Process pool error (<code>): <what happened>`.
    public var description: String { "Process pool error (\(code)): \(detail)" }
}
