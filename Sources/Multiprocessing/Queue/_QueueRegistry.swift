import Glibc
import Synchronization

/// What the exit flush needs of a queue of any element type.
protocol _FlushableQueue: AnyObject, Sendable {
    func flush(timeout: Duration?) -> Bool
    var pendingCount: Int { get }
    func releaseWriterEntry()
}

/// The queues of this process, so that their unwritten items are written before
/// it exits, or reported if they cannot be.
enum _QueueRegistry {
    private struct Entry: @unchecked Sendable {
        // @unchecked: a weak reference to a Sendable queue, read under the registry's lock.
        weak var queue: (any _FlushableQueue)?
    }

    private static let queues = Mutex<[ObjectIdentifier: Entry]>([:])

    static func add(_ queue: any _FlushableQueue) {
        queues.withLock { queues in
            queues = queues.filter { $0.value.queue != nil }
            queues[ObjectIdentifier(queue)] = Entry(queue: queue)
        }
    }

    /// How long the exit flush waits for readers to make room for unwritten items.
    static let exitTimeout: Duration = .seconds(30)

    /// Writes every queue's unwritten items, waiting up to `timeout` in all; says
    /// on stderr what could not be written. Never waits longer than `timeout`.
    static func flushAll(timeout: Duration) {
        let live = queues.withLock { $0.values.compactMap(\.queue) }
        let deadline = _Deadline(after: timeout)
        for queue in live {
            guard queue.pendingCount > 0 else {
                queue.releaseWriterEntry()
                continue
            }
            if queue.flush(timeout: deadline.remaining) {
                queue.releaseWriterEntry()
            } else {
                _writeStandardError("""
                    swift-multiprocessing: \(queue.pendingCount) item(s) put on a queue were not written before \
                    this process exited: no process made room for them within \(timeout).
                    """)
            }
        }
    }
}

/// Registered once: at exit (a child's, after its entry; a program's, when main
/// returns), queues write what they still hold, within `_QueueRegistry.exitTimeout`.
let _flushAtExit: Void = {
    atexit { _QueueRegistry.flushAll(timeout: _QueueRegistry.exitTimeout) }
}()
