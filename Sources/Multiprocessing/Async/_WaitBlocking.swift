import Dispatch

/// Runs `body` on Swift's pool and blocks this thread until it ends: the blocking
/// forms of async calls, the pool's and DurableQueue's (never call them from async code).
package func _waitBlocking<Value: Sendable>(_ body: @escaping @Sendable () async throws -> Value) throws -> Value {
    let result = _BlockingResult<Value>()
    let done = DispatchSemaphore(value: 0)
    _Concurrency.Task.detached {
        do { result.set(.success(try await body())) } catch { result.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    return try result.get()
}

/// A blocking call's result, set by the task it waits for.
private final class _BlockingResult<Value: Sendable>: @unchecked Sendable {
    // @unchecked: set once before the semaphore is signalled, read after the wait.
    private var value: Result<Value, any Error>?
    func set(_ result: Result<Value, any Error>) { value = result }
    func get() throws -> Value { try value!.get() }
}
