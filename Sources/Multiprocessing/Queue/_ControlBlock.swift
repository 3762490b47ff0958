import CSystemShims
import Glibc
import SystemPackage

/// A queue's shared control block: a memfd segment, mapped MAP_SHARED, holding the
/// robust process-shared locks, the counters and the futex words processes wait on
/// (`swiftmp_queue_control` in CSystemShims). Nothing is named in /dev/shm, so
/// nothing is left behind when a process is killed.
final class _ControlBlock: @unchecked Sendable {
    // @unchecked: the memory is shared with other processes on purpose; every
    // access to its fields happens under `state_lock` (or a frame lock, for the
    // progress records), through `pointer`.
    let file: FileDescriptor
    let pointer: UnsafeMutablePointer<swiftmp_queue_control>
    private static let size = MemoryLayout<swiftmp_queue_control>.size

    /// A new block for a queue holding at most `maxsize` items (0: no limit).
    init(maxsize: Int) throws(Errno) {
        file = FileDescriptor(rawValue: try _retrying { swiftmp_memfd_create("swift-multiprocessing-queue") })
        do throws(Errno) {
            try _setSize(file, Self.size)
            pointer = try _mapShared(file, size: Self.size).bindMemory(to: swiftmp_queue_control.self, capacity: 1)
        } catch {
            _close(file)
            throw error
        }
        let result = swiftmp_queue_control_init(pointer, Int64(maxsize))
        if result != 0 {
            _unmap(UnsafeMutableRawPointer(pointer), size: Self.size)
            _close(file)
            throw Errno(rawValue: result)
        }
    }

    /// The block another process made, from its descriptor (which this object then owns).
    init(attaching file: FileDescriptor) throws(Errno) {
        self.file = file
        do throws(Errno) {
            pointer = try _mapShared(file, size: Self.size).bindMemory(to: swiftmp_queue_control.self, capacity: 1)
        } catch {
            _close(file)
            throw error
        }
        guard pointer.pointee.magic == SWIFTMP_QUEUE_MAGIC else {
            _unmap(UnsafeMutableRawPointer(pointer), size: Self.size)
            _close(file)
            throw Errno.invalidArgument
        }
    }

    deinit {
        // Unmapped, never destroyed: see `_unmap`.
        _unmap(UnsafeMutableRawPointer(pointer), size: Self.size)
        _close(file)
    }

    enum LockResult { case acquired, ownerDied, timedOut }

    /// Locks one of the block's robust mutexes, until `deadline` (nil: forever).
    /// `.ownerDied`: the lock is held, and the caller repairs what the dead holder left.
    func lock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>, deadline: Duration?) throws(Errno) -> LockResult {
        var limit = deadline.map(_monotonicDeadline(after:)) ?? timespec()
        let result = deadline == nil ? swiftmp_robust_lock(mutex, nil) : swiftmp_robust_lock(mutex, &limit)
        switch result {
        case 0: return .acquired
        case EOWNERDEAD: return .ownerDied
        case ETIMEDOUT: return .timedOut
        default: throw Errno(rawValue: result)
        }
    }

    func unlock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        _ = swiftmp_unlock(mutex)
    }

    /// Waits for `word` to change, with `state_lock` held on entry and on return
    /// (it is released while waiting), until `deadline` (a CLOCK_MONOTONIC time;
    /// nil: forever). False when the time ran out. The caller checks its condition again.
    func wait(_ word: UnsafeMutablePointer<UInt32>, until deadline: timespec?) throws(Errno) -> Bool {
        let seen = word.pointee
        unlock(state)
        var limit = deadline ?? timespec()
        let result = deadline == nil ? swiftmp_futex_wait(word, seen, nil) : swiftmp_futex_wait(word, seen, &limit)
        _ = try lock(state, deadline: nil)
        switch result {
        case 0, EINTR: return true
        case ETIMEDOUT: return false
        default: throw Errno(rawValue: result)
        }
    }

    /// Wakes every process waiting for `word`, with `state_lock` held.
    func broadcast(_ word: UnsafeMutablePointer<UInt32>) {
        word.pointee &+= 1
        swiftmp_futex_wake_all(word)
    }

    var writeLock: UnsafeMutablePointer<pthread_mutex_t> { field(\.write_lock) }
    var readLock: UnsafeMutablePointer<pthread_mutex_t> { field(\.read_lock) }
    var state: UnsafeMutablePointer<pthread_mutex_t> { field(\.state_lock) }
    var notFull: UnsafeMutablePointer<UInt32> { field(\.not_full_seq) }
    var allDone: UnsafeMutablePointer<UInt32> { field(\.all_done_seq) }

    private func field<T>(_ path: KeyPath<swiftmp_queue_control, T>) -> UnsafeMutablePointer<T> {
        (UnsafeMutableRawPointer(pointer) + MemoryLayout<swiftmp_queue_control>.offset(of: path)!)
            .assumingMemoryBound(to: T.self)
    }

    /// Runs `body` on the fields with `state_lock` held.
    func withState<R>(_ body: (UnsafeMutablePointer<swiftmp_queue_control>) throws -> R) throws -> R {
        _ = try lock(state, deadline: nil)  // a dead holder left no partial update: each is a few stores
        defer { unlock(state) }
        return try body(pointer)
    }
}
