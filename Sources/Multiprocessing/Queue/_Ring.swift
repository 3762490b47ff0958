import CSystemShims
import Glibc
import SystemPackage

/// A queue's frames, in a ring of bytes in shared memory, and the one owner of
/// the protocol that keeps it whole when a process is killed at any instruction.
///
/// The segment is a memfd mapped MAP_SHARED by every process holding the queue
/// (nothing is named in /dev/shm): the control block (`swiftmp_ring_control`),
/// then `capacity` bytes of ring. Indices grow for ever (64-bit) and name a byte
/// as `index % capacity`. The ring holds records, 8-byte aligned: an 8-byte header
/// (length, kind) and the bytes. An item is one `whole` record, or, when it is
/// larger than the free space, a `first` record (which also holds the item's
/// length), `middle` ones and a `last`, streamed as room frees.
///
/// Three robust locks, each guarding its own fields, each never held while waiting
/// for another process, except as said:
/// - the slots lock: the count of items put (`reserved`) and each putting
///   process's share (the writers table). Held for a few stores.
/// - the write lock: `write_index`, and each process's count of items in the ring.
///   Held while a streamed item waits for room.
/// - the read lock: `read_index` and the counts of items taken and lost. Held
///   while waiting for an item.
///
/// Every change under a lock is: copy what is new (ring bytes, or nothing), write
/// an *intent* (what the counters will be, keyed by the commit's value), then one
/// store that commits (the index, or the slots sequence), then the counters the
/// intent names. A holder killed before the commit store changed nothing anyone
/// sees; killed after it, the next holder (told `.ownerDied` by the lock) finds
/// the intent's key equal to the committed value and sets the counters itself.
/// So a writer killed mid-copy leaves nothing half-written visible, and a reader
/// killed before its commit has taken nothing: the next reader gets the same item.
///
/// Two states outlive their process, as bit 0 of an index: a streamed item whose
/// writer died (`write_index` bit 0 with the write lock free: only a live writer
/// holds it through an item) is ended by the next holder of the write lock with an
/// `abort` record, which readers take as "that item is lost"; and an item whose
/// reader died, or refused it, is skipped to its end by the next reader
/// (`read_index` bit 0). Each costs that one item.
///
/// Waits are futexes on the other side's index word (or a word of their own), with
/// a short spin first and a system call only when someone sleeps (`_SharedEvent`).
final class _Ring: @unchecked Sendable {
    // @unchecked: the memory is shared with other processes on purpose; every
    // field is changed under its lock or with atomic instructions, as said above.

    let file: FileDescriptor
    /// Readable (an eventfd) when an item may be waiting, for those who poll.
    let readiness: FileDescriptor
    let capacity: UInt64
    let maxsize: Int64
    private let control: UnsafeMutablePointer<swiftmp_ring_control>
    private let data: UnsafeMutableRawPointer
    private let mappedSize: Int
    // The other side's fields as last seen by this process: they only grow, so an
    // old value is a safe underestimate, loaded again (taking the other side's cache
    // line) only when it is not enough.
    /// `read_index`, seen by a writer (write lock held).
    private var seenReadIndex: UInt64 = 0
    /// `write_index`, seen by a reader (read lock held).
    private var seenWriteIndex: UInt64 = 0
    /// `taken`, seen by a putter (slots lock held).
    private var seenTaken: Int64 = 0

    /// The default ring size: large enough that 1 MiB items stream whole, small
    /// enough for many queues (pages are committed only as the ring reaches them).
    static let defaultCapacity = 16 << 20
    static let capacityRange = (64 << 10)...(1 << 34)

    // MARK: Making and attaching

    /// A new segment with a ring of `capacity` bytes (rounded up to a power of two).
    init(capacity requested: Int, maxsize: Int) throws(QueueError) {
        let capacity = UInt64(1) << UInt64(64 - (UInt64(Self.clamp(requested)) - 1).leadingZeroBitCount)
        let offset = (MemoryLayout<swiftmp_ring_control>.size + 4095) & ~4095
        let size = offset + Int(capacity)
        let file: FileDescriptor
        let readiness: FileDescriptor
        let base: UnsafeMutableRawPointer
        do throws(Errno) {
            file = try _sealableMemoryFile(named: "swift-multiprocessing-queue")
            do throws(Errno) {
                try _setSize(file, size)
                try _sealSize(file)  // a process holding the queue cannot shrink it under the others
                readiness = try _eventDescriptor()
            } catch {
                _close(file)
                throw error
            }
            do throws(Errno) {
                base = try _mapShared(file, size: size)
            } catch {
                _close(file)
                _close(readiness)
                throw error
            }
        } catch {
            throw .system(error, "making the queue's shared memory")
        }
        let control = base.bindMemory(to: swiftmp_ring_control.self, capacity: 1)
        let result = swiftmp_ring_control_init(control, capacity, UInt64(offset), Int64(maxsize))
        guard result == 0 else {
            _unmap(base, size: size)
            _close(file)
            _close(readiness)
            throw .system(Errno(rawValue: result), "making the queue's locks")
        }
        (self.file, self.readiness, self.control, self.mappedSize) = (file, readiness, control, size)
        (self.capacity, self.maxsize, self.data) = (capacity, Int64(maxsize), base + offset)
    }

    /// The segment another process made, from its descriptors (which this object then owns).
    init(attaching file: FileDescriptor, readiness: FileDescriptor) throws(QueueError) {
        func fail(_ detail: String) -> QueueError {
            _close(file)
            _close(readiness)
            return QueueError(.corrupted, detail)
        }
        let size: Int
        let base: UnsafeMutableRawPointer
        do throws(Errno) {
            size = try _fileSize(file)
            base = try _mapShared(file, size: max(size, 1))
        } catch {
            _close(file)
            _close(readiness)
            throw .system(error, "mapping a queue's shared memory")
        }
        guard size >= MemoryLayout<swiftmp_ring_control>.size else {
            _unmap(base, size: max(size, 1))
            throw fail("a queue's shared memory is too small")
        }
        let control = base.bindMemory(to: swiftmp_ring_control.self, capacity: 1)
        let header = control.pointee
        guard header.magic == SWIFTMP_RING_MAGIC, header.version == SWIFTMP_RING_VERSION,
              header.capacity.nonzeroBitCount == 1, header.data_offset >= MemoryLayout<swiftmp_ring_control>.size,
              header.data_offset + header.capacity == UInt64(size)
        else {
            _unmap(base, size: size)
            throw fail("a queue's shared memory is not one this library made")
        }
        (self.file, self.readiness, self.control, self.mappedSize) = (file, readiness, control, size)
        (self.capacity, self.maxsize, self.data) = (header.capacity, header.maxsize, base + Int(header.data_offset))
    }

    deinit {
        // Unmapped, never destroyed: a lock may be held by a process that died.
        _unmap(UnsafeMutableRawPointer(control), size: mappedSize)
        _close(file)
        _close(readiness)
    }

    private static func clamp(_ capacity: Int) -> Int {
        min(max(capacity, capacityRange.lowerBound), capacityRange.upperBound)
    }

    // MARK: Fields

    private func field<T>(_ path: WritableKeyPath<swiftmp_ring_control, T>) -> UnsafeMutablePointer<T> {
        (UnsafeMutableRawPointer(control) + MemoryLayout<swiftmp_ring_control>.offset(of: path)!).assumingMemoryBound(to: T.self)
    }

    private var slotsLock: _RobustLock { _RobustLock(mutex: field(\.slots_lock)) }
    private var writeLock: _RobustLock { _RobustLock(mutex: field(\.write_lock)) }
    private var readLock: _RobustLock { _RobustLock(mutex: field(\.read_lock)) }
    private var slotsSequence: _SharedAtomic<UInt64> { _SharedAtomic(at: field(\.slots_seq)) }
    private var reserved: _SharedAtomic<Int64> { _SharedAtomic(at: field(\.reserved)) }
    private var done: _SharedAtomic<Int64> { _SharedAtomic(at: field(\.done)) }
    private var writeIndex: _SharedAtomic<UInt64> { _SharedAtomic(at: field(\.write_index)) }
    private var readIndex: _SharedAtomic<UInt64> { _SharedAtomic(at: field(\.read_index)) }
    private var taken: _SharedAtomic<Int64> { _SharedAtomic(at: field(\.taken)) }
    private var lost: _SharedAtomic<Int64> { _SharedAtomic(at: field(\.lost)) }
    private var pollers: _SharedAtomic<UInt32> { _SharedAtomic(at: field(\.pollers)) }
    private var slotPollers: _SharedAtomic<UInt32> { _SharedAtomic(at: field(\.slot_pollers)) }

    /// A record was published: `write_index` changed.
    private var dataArrived: _SharedEvent { _SharedEvent(word: writeIndex.lowWord, waiters: _SharedAtomic(at: field(\.data_waiters))) }
    /// Ring bytes were freed: `read_index` changed.
    private var spaceFreed: _SharedEvent { _SharedEvent(word: readIndex.lowWord, waiters: _SharedAtomic(at: field(\.space_waiters))) }
    /// A slot may be free.
    private var slotFreed: _SharedEvent { _SharedEvent(word: field(\.slot_event), waiters: _SharedAtomic(at: field(\.slot_waiters))) }
    /// Every task may be done.
    private var allDone: _SharedEvent { _SharedEvent(word: field(\.done_event), waiters: _SharedAtomic(at: field(\.done_waiters))) }

    private func writer(_ entry: Int32) -> UnsafeMutablePointer<swiftmp_writer> {
        swiftmp_ring_writers(control) + Int(entry)
    }

    /// Spins before sleeping on a futex: a wake-up costs two system calls and a
    /// trip through the scheduler, and the other side is often a few hundred ns away.
    private static let spins = 2000

    // MARK: Counts

    /// Items put and not yet taken, in all processes (items waiting in a process's
    /// writer thread included).
    var count: Int64 {
        let taken = taken.load()  // first: it only grows, so a put between the loads cannot make this negative
        return max(0, reserved.load() &- taken)
    }

    /// Items put and not yet marked done (or lost).
    var unfinished: Int64 {
        let done = done.load()
        let lost = lost.load()
        return max(0, reserved.load() &- lost &- done)
    }

    /// Whether a record waits in the ring (another reader may take it first).
    var hasData: Bool { (writeIndex.load() & ~7) != (readIndex.load() & ~7) }

    // MARK: Slots (the slots lock)

    /// Takes a slot for one item put by the process of `entry` (nil: a process with
    /// no entry, whose items are not freed if it dies), waiting until `deadline`
    /// while the queue holds `maxsize` items. Returns false if none freed in time.
    func reserve(for entry: Int32?, until deadline: _Deadline?) throws(QueueError) -> Bool {
        while true {
            let got = try withSlotsLock { () -> Bool in
                let now = reserved.load()
                if maxsize > 0 && now &- seenTaken >= maxsize {
                    seenTaken = taken.load()
                    if now &- seenTaken >= maxsize { return false }
                }
                _crashPoint(.beforeReserving)
                let entry = held(entry)
                commitSlots(reserved: now &+ 1, entry: entry, entryReserved: entry.map { writer($0).pointee.reserved &+ 1 } ?? 0)
                return true
            }
            if got { return true }
            if let deadline, deadline.hasPassed { return false }
            // Waiting for a reader; a second without one, look for dead putters whose
            // unwritten items hold slots no reader will free.
            let freed = try waiting { () throws(Errno) in
                try slotFreed.wait(until: deadline, onStall: repairAfterDeadHolders) { count >= maxsize }
            }
            if !freed { return false }
        }
    }

    /// Gives back the slot of an item that will never enter the ring (its write failed).
    func forget(for entry: Int32?) throws(QueueError) {
        try withSlotsLock {
            let entryValue = entry.map { writer($0).pointee.reserved &- 1 } ?? 0
            commitSlots(reserved: reserved.load() &- 1, entry: entry, entryReserved: entryValue)
        }
        itemsLeft()
    }

    /// The slots lock held, with what a dead holder left finished first.
    private func withSlotsLock<T>(_ body: () throws(QueueError) -> T) throws(QueueError) -> T {
        let outcome = try system("locking a queue") { () throws(Errno) in try slotsLock.lock(until: nil) }
        defer { slotsLock.unlock() }
        if outcome == .ownerDied {
            let intent = control.pointee.slots_intent
            if slotsSequence.load() == intent.key { applySlots(intent) }
        }
        return try body()
    }

    private func commitSlots(reserved value: Int64, entry: Int32?, entryReserved: Int64, freeEntry: Bool = false) {
        let key = slotsSequence.load() &+ 1
        swiftmp_intent_write(field(\.slots_intent), key, value, 0, entry ?? -1, freeEntry ? 1 : 0, entryReserved)
        _crashPoint(.slotsIntentWritten)
        slotsSequence.store(key)
        _crashPoint(.slotsCommitted)
        applySlots(control.pointee.slots_intent)
    }

    private func applySlots(_ intent: swiftmp_intent) {
        reserved.store(intent.counter)
        guard intent.entry >= 0, intent.entry < SWIFTMP_WRITER_SLOTS else { return }
        let entry = writer(intent.entry)
        _SharedAtomic(at: &entry.pointee.reserved).store(intent.entry_value)
        if intent.free_entry != 0 { setEntry(entry, pid: 0, start: 0) }
    }

    /// Gives an entry of the writers table to a process (pid 0: to none), its
    /// counts zero. The pid last: killed before it, a claimed entry is still free,
    /// and a freed one still counts nothing.
    private func setEntry(_ entry: UnsafeMutablePointer<swiftmp_writer>, pid: Int32, start: Int64) {
        _SharedAtomic(at: &entry.pointee.reserved).store(0)
        _SharedAtomic(at: &entry.pointee.published).store(0)
        _SharedAtomic(at: &entry.pointee.start).store(start)
        _SharedAtomic(at: &entry.pointee.pid).store(pid)
    }

    /// Items left the queue without a reader (forgotten, lost): wakes putters and joiners.
    private func itemsLeft() {
        slotFreed.signal(changingWord: true)
        if unfinished == 0 { allDone.signal(changingWord: true) }
        signalPollers(forSlots: true)
    }

    // MARK: The writers table

    /// A free entry of the writers table, claimed for one `Queue` object of this
    /// process (two objects on one ring each have their own); nil when the table is
    /// full of live processes.
    func claimEntry() throws(QueueError) -> Int32? {
        for attempt in 0..<2 {
            if attempt == 1 { reclaimDeadWriters() }
            let found = try withSlotsLock { () -> Int32? in
                guard let free = (0..<SWIFTMP_WRITER_SLOTS).first(where: { _SharedAtomic(at: &writer($0).pointee.pid).load() == 0 }) else { return nil }
                // A commit first, so that the last intent (which may free this very entry)
                // can no longer be finished by a holder after one that dies here.
                commitSlots(reserved: reserved.load(), entry: nil, entryReserved: 0)
                setEntry(writer(free), pid: _processID, start: _processStart)
                return free
            }
            if let found { return found }
        }
        return nil
    }

    /// Gives this process's entry back at exit, once all its items are in the ring.
    /// (If the write lock is busy, it stays: a later reclaim frees it, having nothing to free.)
    func releaseEntry(_ index: Int32) {
        _ = try? withSlotsLock {
            try? withWriteLock(waiting: false) { () throws(QueueError) in
                let entry = writer(index)
                guard entry.pointee.pid == _processID, entry.pointee.reserved == entry.pointee.published else { return }
                free(index, lettingGo: 0)
            }
        }
    }

    /// Frees the slots (and tasks) of items that waited in a process that is gone:
    /// it was killed before its writer thread could put them in the ring. A process
    /// that has ended but is not yet reaped counts as gone.
    func reclaimDeadWriters() {
        for index in 0..<SWIFTMP_WRITER_SLOTS {
            let entry = writer(index)
            let pid = _SharedAtomic(at: &entry.pointee.pid).load()
            let start = _SharedAtomic(at: &entry.pointee.start).load()
            guard pid > 0, pid != _processID || start != _processStart, _processIsGone(pid, start: start) else { continue }
            // Both locks: `reserved` is the slots lock's, `published` the write lock's. The
            // write lock may be held through a long item: then this waits for a later stall.
            var freed: Int64 = 0
            _ = try? withSlotsLock {
                try? withWriteLock(waiting: false) { () throws(QueueError) in
                    guard entry.pointee.pid == pid, entry.pointee.start == start else { return }
                    freed = max(0, entry.pointee.reserved &- entry.pointee.published)
                    free(index, lettingGo: freed)
                }
            }
            if freed > 0 { itemsLeft() }
        }
    }

    /// Frees an entry, with both locks held, and the slots of `items` of its that
    /// never entered the ring. The write intent stops naming it: a writer killed
    /// later must not have its count set from an intent of the entry's last owner.
    private func free(_ index: Int32, lettingGo items: Int64) {
        // First: killed after the free's commit, the intent must already not name it.
        // (With the write lock held, a dead holder's intent has been finished.)
        let intent = field(\.write_intent)
        if intent.pointee.entry == index { _SharedAtomic(at: &intent.pointee.entry).store(-1) }
        commitSlots(reserved: reserved.load() &- items, entry: index, entryReserved: writer(index).pointee.published, freeEntry: true)
    }

    /// `entry`, if this process still holds it (it may have given it back at exit
    /// while another thread was putting): else nil, and the item is not counted in it.
    private func held(_ entry: Int32?) -> Int32? {
        guard let entry, _SharedAtomic(at: &writer(entry).pointee.pid).load() == _processID else { return nil }
        return entry
    }

    // MARK: Writing (the write lock)

    /// Puts one item's bytes in the ring, counted in the share of `entry`.
    /// `waiting: false`: only if the write lock is free and the whole item fits now;
    /// returns false, having written nothing, otherwise. `waiting: true`: waits for
    /// the lock and for room, streaming an item larger than the free space in
    /// records as room frees; returns true.
    func publish(_ bytes: UnsafeRawBufferPointer, for entry: Int32?, waiting: Bool) throws(QueueError) -> Bool {
        try withWriteLock(waiting: waiting) { () throws(QueueError) -> Bool in
            var position = writeIndex.load()
            if position & 1 != 0 {
                // A dead writer's item is open (it can only be ended with room for a record).
                guard waiting else { return false }
                try waitForSpace(Self.headerSize, from: position)
                endAbandonedItem()
                position = writeIndex.load()
            }
            let whole = Self.recordSize(bytes.count)
            if whole > free(from: position, readTo: seenReadIndex) { seenReadIndex = readIndex.load() & ~7 }
            if bytes.count <= Self.maxRecordLength && whole <= free(from: position, readTo: seenReadIndex) {
                writeRecord(.whole, at: position, bytes)
                commitWrite(position &+ whole, entry: entry)
                return true
            }
            guard waiting else { return false }
            try stream(bytes, from: position, for: entry)
            return true
        } ?? false
    }

    /// Streams an item larger than the free space: a `first` record with its length,
    /// then `middle` ones and a `last`, each committed as it is written (bit 0 of the
    /// write index says an item is open), each waiting for a quarter of the ring
    /// (or what is left of the item) to be free.
    private func stream(_ bytes: UnsafeRawBufferPointer, from start: UInt64, for entry: Int32?) throws(QueueError) {
        var position = start
        var offset = 0
        while offset < bytes.count || offset == 0 {
            let first = offset == 0
            let prefix = first ? 8 : 0
            let needed = Self.recordSize(bytes.count - offset + prefix)
            let free: UInt64
            do {
                free = try waitForSpace(min(needed, max(capacity / 4, 64)), from: position)
            } catch where !first {
                // The item is in the ring, counted, and open: the next writer ends it, and
                // its reader counts it lost. Its slot is not given back twice.
                _writeStandardError("swift-multiprocessing: a queue item could not be written to its end (\(error)); it is lost.")
                return
            }
            if first && bytes.count <= Self.maxRecordLength && Self.recordSize(bytes.count) <= free {
                writeRecord(.whole, at: position, bytes)
                commitWrite(position &+ Self.recordSize(bytes.count), entry: entry)
                return
            }
            let room = min(Int(free - Self.headerSize), Self.maxRecordLength) - prefix
            let length = min(bytes.count - offset, room & ~7)
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
            let kind: RecordKind = first ? .first : (offset + length == bytes.count ? .last : .middle)
            writeRecord(kind, at: position, chunk, total: first ? UInt64(bytes.count) : nil)
            position &+= Self.recordSize(length + prefix)
            offset += length
            commitWrite(position | (kind == .last ? 0 : 1), entry: first ? entry : nil)
            _crashPoint(.streamed)
        }
    }

    /// The bytes free in the ring for a writer at `position`, with the reader at
    /// `read` (0 if `read` is an old value from before the ring last filled).
    @inline(__always)
    private func free(from position: UInt64, readTo read: UInt64) -> UInt64 {
        let used = (position & ~7) &- read
        return used >= capacity ? 0 : capacity &- used
    }

    /// Waits, with the write lock held, until `bytes` of the ring are free; returns how many are.
    @discardableResult
    private func waitForSpace(_ bytes: UInt64, from position: UInt64) throws(QueueError) -> UInt64 {
        let position = position & ~7
        var available: UInt64 { free(from: position, readTo: readIndex.load() & ~7) }
        if available >= bytes { return available }
        _ = try waiting { () throws(Errno) in try spaceFreed.wait(until: nil, spins: Self.spins) { available < bytes } }
        return available
    }

    /// The write lock held, with a dead holder's commit finished and its open item
    /// ended first (if there is room for that). nil: `waiting` is false and the lock is busy.
    private func withWriteLock<T>(waiting: Bool, _ body: () throws(QueueError) -> T) throws(QueueError) -> T? {
        let outcome = try system("locking a queue") { () throws(Errno) in
            waiting ? try writeLock.lock(until: nil) : try writeLock.tryLock()
        }
        guard let outcome else { return nil }
        defer { writeLock.unlock() }
        if outcome == .ownerDied {
            let intent = control.pointee.write_intent
            if writeIndex.load() == intent.key { applyWrite(intent) }
        }
        if writeIndex.load() & 1 != 0 { endAbandonedItem() }
        return try body()
    }

    /// Ends the open item of a writer that is gone (with the write lock held, an
    /// item is open only if its writer died) with an `abort` record, if there is room.
    private func endAbandonedItem() {
        let position = writeIndex.load()
        guard position & 1 != 0 else { return }
        let start = position & ~7
        guard free(from: start, readTo: readIndex.load() & ~7) >= Self.headerSize else { return }
        writeRecord(.abort, at: start, UnsafeRawBufferPointer(start: nil, count: 0))
        commitWrite(start &+ Self.headerSize, entry: nil)
    }

    /// Commits records written up to `index` (bit 0: an item is still open); a
    /// first record counts one more item in the ring for `entry`.
    @inline(__always)
    private func commitWrite(_ index: UInt64, entry: Int32?) {
        let entry = held(entry)
        let entryValue = entry.map { writer($0).pointee.published &+ 1 } ?? 0
        swiftmp_intent_write(field(\.write_intent), index, 0, 0, entry ?? -1, 0, entryValue)
        _crashPoint(.writeIntentWritten)
        writeIndex.store(index)
        _crashPoint(.writeCommitted)
        applyWrite(control.pointee.write_intent)
        dataArrived.signal(changingWord: false)
        signalPollers(forSlots: false)
    }

    private func applyWrite(_ intent: swiftmp_intent) {
        guard intent.entry >= 0, intent.entry < SWIFTMP_WRITER_SLOTS else { return }
        _SharedAtomic(at: &writer(intent.entry).pointee.published).store(intent.entry_value)
    }

    /// Called by a reader waiting for the rest of an item: if the write lock is free
    /// and the item still open, its writer is gone; it is ended here (the ring is
    /// empty, so there is room).
    private func endAbandonedItemIfUnlocked() {
        _ = try? withWriteLock(waiting: false) {}
    }

    // MARK: Reading (the read lock)

    /// Takes the next item's bytes, copied out of the ring, waiting until `deadline`
    /// (nil: as long as it takes) for one to start. An item begun is read to its
    /// end whatever the deadline: its writer is alive, or the item gets ended.
    /// - Throws: `.empty` when no item came in time; `.frameTooLong` for an item
    ///   over `limit` bytes (taken and refused: the next reader skips its rest).
    func take(until deadline: _Deadline?, limit: Int) throws(QueueError) -> _Payload {
        let outcome = try system("locking a queue") { () throws(Errno) in try readLock.lock(until: deadline) }
        guard let outcome else { throw .empty }
        defer {
            readLock.unlock()
            // An async getter that found this lock busy tried and suspended: if items
            // remain, it hears of them now instead of at its next tick.
            if hasData { signalPollers(forSlots: false) }
        }
        if outcome == .ownerDied { finishDeadReader() }
        var payload = _Payload()
        var assembling = false
        var total: UInt64 = 0
        while true {
            let index = readIndex.load()
            let position = index & ~7
            let skipping = index & 1 != 0
            var end = try waitForData(from: position, until: assembling || skipping ? nil : deadline, inItem: assembling || skipping)
            let header = data.loadUnaligned(fromByteOffset: Int(position & (capacity - 1)), as: UInt64.self)
            let length = UInt64(UInt32(truncatingIfNeeded: header))
            let size = Self.recordSize(Int(length))
            if size > end &- position {
                seenWriteIndex = writeIndex.loadAcquiring() & ~7  // what was seen may end before this record
                end = seenWriteIndex
            }
            guard let kind = RecordKind(rawValue: UInt32(truncatingIfNeeded: header >> 32)), length < capacity, size <= end &- position else {
                throw QueueError(.corrupted, "a queue record at \(position) has the header \(String(header, radix: 16))")
            }
            let next = position &+ size
            switch kind {
            case .whole:
                guard !assembling, !skipping else { throw corrupted(kind, at: position) }
                if length > limit {
                    commitRead(next, taken: 1)
                    throw tooLong(length, limit)
                }
                copyOut(from: position &+ Self.headerSize, count: Int(length), into: &payload)
                _crashPoint(.readCopied)
                commitRead(next, taken: 1)
                return payload
            case .first:
                guard !assembling, !skipping, length >= 8 else { throw corrupted(kind, at: position) }
                total = data.loadUnaligned(fromByteOffset: Int((position &+ Self.headerSize) & (capacity - 1)), as: UInt64.self)
                if total > limit {
                    commitRead(next | 1, taken: 1)
                    throw tooLong(total, limit)
                }
                copyOut(from: position &+ Self.headerSize &+ 8, count: Int(length) - 8, into: &payload)
                assembling = true
                commitRead(next | 1, taken: 1)
            case .middle, .last:
                guard assembling || skipping else { throw corrupted(kind, at: position) }
                if assembling { copyOut(from: position &+ Self.headerSize, count: Int(length), into: &payload) }
                _crashPoint(.readCopied)
                commitRead(kind == .last ? next : next | 1, taken: 0)
                if kind == .last && assembling {
                    guard payload.count == total else { throw QueueError(.corrupted, "a streamed queue item of \(total) bytes arrived as \(payload.count)") }
                    return payload
                }
            case .abort:
                guard assembling || skipping, length == 0 else { throw corrupted(kind, at: position) }
                commitRead(next, taken: 0, lost: assembling ? 1 : 0)
                if assembling {
                    payload = _Payload()
                    assembling = false
                }
            }
        }
    }

    /// Waits, with the read lock held, until a record begins at `position`;
    /// returns where the published records end. In an item, a writer that stays
    /// silent is checked on every 100 ms (it may have died); between items, every
    /// second, putters that died with items unwritten are let go (so `count` is exact).
    private func waitForData(from position: UInt64, until deadline: _Deadline?, inItem: Bool) throws(QueueError) -> UInt64 {
        if seenWriteIndex &- position <= capacity && seenWriteIndex != position { return seenWriteIndex }
        // Sequentially consistent: a poller raises its count, then looks here; a
        // writer stores the index, then looks at the count (each side sees the other).
        var end: UInt64 { writeIndex.load() & ~7 }
        seenWriteIndex = end
        if seenWriteIndex != position { return seenWriteIndex }
        defer { seenWriteIndex = end }
        // In an item, with everything published read and no item open (bit 0 of the
        // write index): its rest can never come. Only bytes this library did not
        // write (a record claiming to begin an item) lead here; waiting would be for ever.
        var cannotEnd: Bool { inItem && writeIndex.load() & 1 == 0 && end == position }
        // A try (a deadline already passed, as the async forms' attempts give): no spin, no system call.
        if !inItem, let deadline, deadline.hasPassed { throw .empty }
        let arrived = try waiting { () throws(Errno) in
            try dataArrived.wait(
                until: deadline, spins: Self.spins, slice: inItem ? .milliseconds(100) : .seconds(1),
                onStall: inItem ? endAbandonedItemIfUnlocked : reclaimDeadWriters
            ) { end == position && !cannotEnd }
        }
        if cannotEnd { throw QueueError(.corrupted, "a queue item begun at \(position) can never end: no item is being written") }
        guard arrived else { throw .empty }
        return end
    }

    /// Commits records read up to `index` (bit 0: skip to the item's end), with
    /// `taken` items more taken and `lost` more lost.
    @inline(__always)
    private func commitRead(_ index: UInt64, taken added: Int64, lost addedLost: Int64 = 0) {
        let newTaken = taken.load() &+ added
        let newLost = lost.load() &+ addedLost
        swiftmp_intent_write(field(\.read_intent), index, newTaken, newLost, -1, 0, 0)
        _crashPoint(.readIntentWritten)
        readIndex.store(index)
        _crashPoint(.readCommitted)
        applyRead(control.pointee.read_intent)
        spaceFreed.signal(changingWord: false)
        if added > 0 && maxsize > 0 { slotFreed.signal(changingWord: true) }
        if addedLost > 0 && unfinished == 0 { allDone.signal(changingWord: true) }
        if (added > 0 && maxsize > 0) || addedLost > 0 { signalPollers(forSlots: true) }
    }

    /// Finishes what a reader killed holding the read lock committed (the lock held).
    private func finishDeadReader() {
        let intent = control.pointee.read_intent
        guard readIndex.load() == intent.key else { return }
        applyRead(intent)
        itemsLeft()
    }

    /// Finishes what holders killed with a lock left undone, for a process that has
    /// waited a second for a slot or for tasks: the next reader or writer may be far
    /// off. Then lets go of the items of putters that died.
    func repairAfterDeadHolders() {
        if let outcome = try? readLock.tryLock() {
            if outcome == .ownerDied { finishDeadReader() }
            readLock.unlock()
        }
        _ = try? withSlotsLock {}
        _ = try? withWriteLock(waiting: false) {}
        reclaimDeadWriters()
    }

    private func applyRead(_ intent: swiftmp_intent) {
        taken.store(intent.counter)
        lost.store(intent.lost)
    }

    // MARK: Tasks

    /// One more task done; false when every task was done already.
    func finishTask() -> Bool {
        while true {
            let now = done.load()
            if reserved.load() &- lost.load() &- now <= 0 { return false }
            if done.compareExchange(expected: now, desired: now &+ 1) {
                if unfinished == 0 {
                    allDone.signal(changingWord: true)
                    signalPollers(forSlots: true)
                }
                return true
            }
        }
    }

    /// Waits until every task is done, or `deadline`. Returns whether they are.
    func waitUntilAllDone(until deadline: _Deadline?) throws(QueueError) -> Bool {
        try waiting { () throws(Errno) in try allDone.wait(until: deadline, onStall: repairAfterDeadHolders) { unfinished > 0 } }
    }

    // MARK: Readiness

    /// Signals the readiness eventfd if anyone waits on it: for items (`pollers`:
    /// a writer published, a reader left items behind) or for a slot or the last
    /// task done (`slotPollers`: async putters and joiners).
    private func signalPollers(forSlots: Bool) {
        if (forSlots ? slotPollers : pollers).load() > 0 { _signalEventDescriptor(readiness) }
    }

    /// Raises the count of those waiting on the readiness eventfd for items
    /// (`forSlots` false) or for slots and tasks done (true), until `endPolling`.
    func beginPolling(forSlots: Bool) {
        (forSlots ? slotPollers : pollers).add(1)
    }

    func endPolling(forSlots: Bool) {
        (forSlots ? slotPollers : pollers).add(UInt32.max)  // -1
    }

    /// Waits until a record may be in the ring, or `deadline`, without a lock: the
    /// readiness eventfd is signalled while anyone waits this way. (For `poll`,
    /// epoll and the async forms: an item may still be taken by another reader first.)
    func waitUntilReadable(until deadline: _Deadline?) throws(QueueError) -> Bool {
        pollers.add(1)
        defer { pollers.add(UInt32.max) }
        while true {
            if hasData { return true }
            let ready = try system("waiting on a queue") { () throws(Errno) in try _pollReadable([readiness], deadline: deadline)[0] }
            if !ready { return hasData }
            // Reset only by one who saw no data after the signal: a poller that finds
            // an item leaves it readable for the others. One that drains a signal meant
            // for an item it then sees passes it on, for pollers it woke for nothing.
            if !hasData {
                _drainEventDescriptor(readiness)
                if hasData { _signalEventDescriptor(readiness) }
            }
        }
    }

    // MARK: Records

    enum RecordKind: UInt32 {
        // A tag in the high bits, so stray bytes are not taken for a record.
        case whole = 0x5246_0001, first, middle, last, abort
    }

    /// The longest record: its length must fit the header's 32 bits; a longer item streams.
    private static let maxRecordLength = 1 << 30
    private static let headerSize: UInt64 = 8

    /// The bytes a record of `length` takes: its header and its bytes, 8-aligned
    /// (so a header never wraps around the ring's end).
    @inline(__always)
    static func recordSize(_ length: Int) -> UInt64 { UInt64(8 + ((length + 7) & ~7)) }

    private func writeRecord(_ kind: RecordKind, at position: UInt64, _ bytes: UnsafeRawBufferPointer, total: UInt64? = nil) {
        let length = bytes.count + (total == nil ? 0 : 8)
        let header = UInt64(kind.rawValue) << 32 | UInt64(length)
        var at = position & ~7
        data.storeBytes(of: header, toByteOffset: Int(at & (capacity - 1)), as: UInt64.self)
        at &+= Self.headerSize
        if let total {
            data.storeBytes(of: total, toByteOffset: Int(at & (capacity - 1)), as: UInt64.self)
            at &+= 8
        }
        _crashPoint(.writeHeaderCopied)
        copyIn(bytes, at: at)
        _crashPoint(.writeCopied)
    }

    /// Copies `bytes` into the ring at `position`, in two pieces where it wraps.
    @inline(__always)
    private func copyIn(_ bytes: UnsafeRawBufferPointer, at position: UInt64) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        let offset = Int(position & (capacity - 1))
        let first = min(bytes.count, Int(capacity) - offset)
        (data + offset).copyMemory(from: source, byteCount: first)
        if first < bytes.count { data.copyMemory(from: source + first, byteCount: bytes.count - first) }
    }

    /// Appends `count` ring bytes from `position` to `payload`, in two pieces where it wraps.
    @inline(__always)
    private func copyOut(from position: UInt64, count: Int, into payload: inout _Payload) {
        guard count > 0 else { return }
        let offset = Int(position & (capacity - 1))
        let first = min(count, Int(capacity) - offset)
        payload.append(UnsafeRawBufferPointer(start: data + offset, count: first))
        if first < count { payload.append(UnsafeRawBufferPointer(start: data, count: count - first)) }
    }

    private func corrupted(_ kind: RecordKind, at position: UInt64) -> QueueError {
        QueueError(.corrupted, "a queue record of kind \(kind) at \(position) where none can be")
    }

    private func tooLong(_ length: UInt64, _ limit: Int) -> QueueError {
        QueueError(.frameTooLong, "a queue item of \(length) bytes is over the limit of \(limit) bytes")
    }

    /// A wait's system error, as a QueueError.
    private func waiting<T>(_ body: () throws(Errno) -> T) throws(QueueError) -> T {
        try system("waiting on a queue", body)
    }

    /// A system call's error, as a QueueError saying what was being done.
    private func system<T>(_ doing: String, _ body: () throws(Errno) -> T) throws(QueueError) -> T {
        do throws(Errno) { return try body() } catch { throw .system(error, doing) }
    }
}
