import CSystemShims
import Glibc
import SystemPackage

/// A robust, process-shared `pthread_mutex_t` at a fixed address in shared memory
/// (operated through its pointer, as swift-nio's `LockOperations`). When a holder
/// is killed, the next locker is told so (`.ownerDied`) instead of waiting forever,
/// and holds the lock: it repairs what the dead holder left before going on.
/// The lock is never destroyed: a process that died may still be its owner.
struct _RobustLock {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    enum Outcome { case acquired, ownerDied }

    /// Locks, waiting until `deadline` (nil: as long as it takes).
    /// - Returns: nil when the deadline passed first.
    func lock(until deadline: _Deadline?) throws(Errno) -> Outcome? {
        guard var time = deadline?.timespec else { return try outcome(swiftmp_robust_lock(mutex, nil)) }
        return try outcome(swiftmp_robust_lock(mutex, &time))
    }

    /// Locks if the lock is free now; nil if it is not.
    func tryLock() throws(Errno) -> Outcome? {
        try outcome(swiftmp_robust_trylock(mutex))
    }

    func unlock() {
        let result = swiftmp_unlock(mutex)
        precondition(result == 0, "unlocking a queue lock this thread does not hold")
    }

    private func outcome(_ code: CInt) throws(Errno) -> Outcome? {
        switch code {
        case 0: return .acquired
        case EOWNERDEAD: return .ownerDied
        case ETIMEDOUT, EBUSY: return nil
        default: throw Errno(rawValue: code)
        }
    }
}
