import CSystemShims
import Glibc
import SystemPackage

/// A queue's shared control block: a memfd segment, mapped MAP_SHARED, holding the
/// robust process-shared locks, the counters, the futex words processes wait on,
/// the readers' and writers' progress records and the read-ahead buffer
/// (`swiftmp_queue_control` in CSystemShims). Nothing is named in /dev/shm, so
/// nothing is left behind when a process is killed.
final class _ControlBlock: @unchecked Sendable {
    // @unchecked: the memory is shared with other processes on purpose. Counters
    // change only through atomic operations; records and the read-ahead buffer
    // only under their frame lock.
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
            guard try _fileSize(file) == Self.size else { throw Errno.invalidArgument }
            pointer = try _mapShared(file, size: Self.size).bindMemory(to: swiftmp_queue_control.self, capacity: 1)
        } catch {
            _close(file)
            throw error
        }
        guard pointer.pointee.magic == SWIFTMP_QUEUE_MAGIC, pointer.pointee.version == 2 else {
            _unmap(UnsafeMutableRawPointer(pointer), size: Self.size)
            _close(file)
            throw Errno.invalidArgument
        }
    }

    deinit {
        // Unmapped, never destroyed: a lock may be held by a process that died.
        _unmap(UnsafeMutableRawPointer(pointer), size: Self.size)
        _close(file)
    }

    // MARK: Locks

    enum LockResult { case acquired, ownerDied, timedOut }

    /// Locks one of the block's robust mutexes, for up to `timeout` (nil: forever).
    /// `.ownerDied`: the lock is held; the records say what the dead holder left.
    func lock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>, timeout: Duration?) throws(Errno) -> LockResult {
        var deadline = timeout.map(_monotonicDeadline(after:)) ?? timespec()
        return try result(timeout == nil ? swiftmp_robust_lock(mutex, nil) : swiftmp_robust_lock(mutex, &deadline))
    }

    /// Locks one of the block's robust mutexes if it is free now (nil: it is not).
    func tryLock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) -> LockResult? {
        let code = swiftmp_robust_trylock(mutex)
        return code == EBUSY ? nil : try? result(code)
    }

    private func result(_ code: CInt) throws(Errno) -> LockResult {
        switch code {
        case 0: return .acquired
        case EOWNERDEAD: return .ownerDied
        case ETIMEDOUT, EBUSY: return .timedOut
        default: throw Errno(rawValue: code)
        }
    }

    func unlock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        _ = swiftmp_unlock(mutex)
    }

    var writeLock: UnsafeMutablePointer<pthread_mutex_t> { field(\.write_lock) }
    var readLock: UnsafeMutablePointer<pthread_mutex_t> { field(\.read_lock) }

    // MARK: Counters

    var put: UnsafeMutablePointer<Int64> { field(\.put) }
    var taken: UnsafeMutablePointer<Int64> { field(\.taken) }
    var unfinished: UnsafeMutablePointer<Int64> { field(\.unfinished) }

    /// Items put and not yet taken (slots in use), in all processes.
    var count: Int64 {
        // `taken` first: it only grows, so a put between the two loads cannot make this negative.
        let taken = swiftmp_load64(taken)
        return max(0, swiftmp_load64(put) &- taken)
    }

    // MARK: Waiting

    /// A futex word that changes when an event happens, and the count of processes
    /// waiting for it (so the event costs a system call only when someone waits).
    struct Event {
        let sequence: UnsafeMutablePointer<UInt32>
        let waiters: UnsafeMutablePointer<UInt32>
    }

    var notFull: Event { Event(sequence: field(\.not_full_seq), waiters: field(\.not_full_waiters)) }
    var allDone: Event { Event(sequence: field(\.all_done_seq), waiters: field(\.all_done_waiters)) }

    /// Waits while `blocked()` is true, until `deadline` (CLOCK_MONOTONIC; nil:
    /// forever). Returns false if the time ran out with `blocked()` still true.
    func wait(for event: Event, until deadline: timespec?, while blocked: () -> Bool) throws(Errno) -> Bool {
        swiftmp_add32(event.waiters, 1)
        defer { swiftmp_add32(event.waiters, -1) }
        var stalled = false
        while true {
            // A second without a change: items a dead process left unwritten may hold
            // the slots or tasks waited for, and no one else frees them.
            if stalled {
                reclaimDeadWriters()
                stalled = false
            }
            // Read the word before checking: a change after the check makes the wait return at once.
            let seen = swiftmp_load32(event.sequence)
            guard blocked() else { return true }
            // At most a second at a time: a process killed between freeing a slot and
            // signalling it leaves no wake-up, so waiters look again now and then.
            var limit = _monotonicDeadline(after: .seconds(1))
            let capped = deadline.map { $0.tv_sec < limit.tv_sec || ($0.tv_sec == limit.tv_sec && $0.tv_nsec < limit.tv_nsec) } ?? false
            if capped { limit = deadline! }
            let result = swiftmp_futex_wait(event.sequence, seen, &limit)
            switch result {
            case 0, EINTR: continue
            case ETIMEDOUT where !capped: stalled = true
            case ETIMEDOUT: return !blocked()
            default: throw Errno(rawValue: result)
            }
        }
    }

    /// Signals `event` to every process waiting for it.
    func signal(_ event: Event) {
        swiftmp_add32(event.sequence, 1)
        if swiftmp_load32(event.waiters) > 0 { swiftmp_futex_wake_all(event.sequence) }
    }

    /// `count` tasks done (or their items gone): `join` wakes once none is left.
    func finishTasks(_ count: Int64 = 1) {
        if swiftmp_add64(unfinished, -count) <= 0 { signal(allDone) }
    }

    /// `count` items put that will never reach a reader (their frames were never
    /// written): their slots and tasks are freed.
    func forgetItems(_ count: Int64) {
        swiftmp_add64(put, -count)
        signal(notFull)
        finishTasks(count)
    }

    // MARK: Records

    var readRecord: swiftmp_read_record { swiftmp_read_record_current(pointer) }
    func commit(_ record: swiftmp_read_record) { swiftmp_read_record_commit(pointer, record) }
    var writeRecord: swiftmp_write_record { swiftmp_write_record_current(pointer) }
    func commit(_ record: swiftmp_write_record) { swiftmp_write_record_commit(pointer, record) }

    /// The read-ahead buffer (read lock).
    var readAhead: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: swiftmp_read_ahead(pointer), count: Int(SWIFTMP_READ_AHEAD))
    }

    // MARK: Frames waiting in a process

    /// This process's entry in the writers table, claimed if it has none; nil when
    /// the table is full of live processes (its waiting frames are then not counted:
    /// if it dies, their slots stay taken, as they would in Python's queue).
    func writerEntry() -> UnsafeMutablePointer<swiftmp_writer>? {
        if let mine = writerEntries.first(where: { swiftmp_load32s(Self.pid(of: $0)) == _processID && $0.pointee.start == _processStart }) {
            return mine
        }
        for attempt in 0..<2 {
            if attempt == 1 { reclaimDeadWriters() }  // full: free the entries of processes that are gone
            for entry in writerEntries where swiftmp_replace32s(Self.pid(of: entry), 0, -1) {
                // Claimed (-1 keeps others out) until the start time is set.
                swiftmp_store64(Self.start(of: entry), _processStart)
                swiftmp_store64(Self.pending(of: entry), 0)
                _ = swiftmp_replace32s(Self.pid(of: entry), -1, _processID)
                return entry
            }
        }
        return nil
    }

    /// Gives this process's entry back, when nothing of it waits: at exit, after the flush.
    func releaseWriterEntry(_ entry: UnsafeMutablePointer<swiftmp_writer>) {
        guard swiftmp_load64(Self.pending(of: entry)) == 0,
              swiftmp_replace32s(Self.pid(of: entry), _processID, -1) else { return }
        swiftmp_store64(Self.start(of: entry), 0)
        _ = swiftmp_replace32s(Self.pid(of: entry), -1, 0)
    }

    /// Frees the slots (and tasks) of frames that waited in a process that is gone:
    /// it was killed before its writer thread could write them. A process that has
    /// ended but is not yet reaped counts as gone.
    func reclaimDeadWriters() {
        for entry in writerEntries {
            let pid = swiftmp_load32s(Self.pid(of: entry))
            guard pid > 0, pid != _processID || swiftmp_load64(Self.start(of: entry)) != _processStart else { continue }
            let start = swiftmp_load64(Self.start(of: entry))
            guard _processStartTime(pid) != start else { continue }  // still running
            // One reclaimer wins the entry (-1 keeps claimers and other reclaimers out).
            guard swiftmp_replace32s(Self.pid(of: entry), pid, -1) else { continue }
            let lost = swiftmp_exchange64(Self.pending(of: entry), 0)
            swiftmp_store64(Self.start(of: entry), 0)
            _ = swiftmp_replace32s(Self.pid(of: entry), -1, 0)
            if lost > 0 { forgetItems(lost) }
        }
    }

    private var writerEntries: [UnsafeMutablePointer<swiftmp_writer>] {
        let table = swiftmp_writers(pointer)!
        return (0..<Int(SWIFTMP_WRITER_SLOTS)).map { table + $0 }
    }

    /// The number of frames waiting in the process of `entry`.
    static func pending(of entry: UnsafeMutablePointer<swiftmp_writer>) -> UnsafeMutablePointer<Int64> {
        (UnsafeMutableRawPointer(entry) + MemoryLayout<swiftmp_writer>.offset(of: \.pending)!).assumingMemoryBound(to: Int64.self)
    }

    private static func start(of entry: UnsafeMutablePointer<swiftmp_writer>) -> UnsafeMutablePointer<Int64> {
        (UnsafeMutableRawPointer(entry) + MemoryLayout<swiftmp_writer>.offset(of: \.start)!).assumingMemoryBound(to: Int64.self)
    }

    private static func pid(of entry: UnsafeMutablePointer<swiftmp_writer>) -> UnsafeMutablePointer<Int32> {
        (UnsafeMutableRawPointer(entry) + MemoryLayout<swiftmp_writer>.offset(of: \.pid)!).assumingMemoryBound(to: Int32.self)
    }

    private func field<T>(_ path: KeyPath<swiftmp_queue_control, T>) -> UnsafeMutablePointer<T> {
        (UnsafeMutableRawPointer(pointer) + MemoryLayout<swiftmp_queue_control>.offset(of: path)!)
            .assumingMemoryBound(to: T.self)
    }
}
