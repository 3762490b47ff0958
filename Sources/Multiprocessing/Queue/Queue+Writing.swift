import CSystemShims
import Dispatch
import Glibc
import MessagePack
import Synchronization
import SystemPackage

/// How writers put frames in the pipe. `put` encodes in the caller, takes a slot,
/// and writes the frame at once when it can do so without waiting; otherwise the
/// frame joins this process's pending list, which a writer thread writes out in
/// order, as many frames per `write()` as fit in PIPE_BUF bytes.
///
/// A write of at most PIPE_BUF bytes enters the pipe whole or not at all, so only
/// a larger frame can be left half-written by a writer that dies. Its progress is
/// committed to the write record (see `swiftmp_write_record`) after every write.
/// The next writer forgets a frame of which nothing reached the pipe; one that did
/// reach it is ended by the reader waiting for its rest, which alone knows exactly
/// how much is missing (see `Queue+Reading`), and writers wait until it has.
extension Queue {
    /// Puts an item, waiting up to `timeout` for a free slot (nil: as long as it takes).
    /// - Throws: `QueueError.full` when no slot freed in time; `.closed`; the
    ///   encoder's `EncodingError` (nothing is put then).
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        guard !isClosed else { throw QueueError.closed }
        let frame = try makeFrame(item)
        try takeSlot(timeout: timeout)
        enqueue(frame)
    }

    /// Puts an item if a slot is free now (Python's `put_nowait`).
    /// - Throws: `QueueError.full` when the queue is full.
    public func putNowait(_ item: Element) throws {
        try put(item, timeout: .zero)
    }

    /// The item's frame: header and MessagePack payload in one array. A large one
    /// goes into the array of a large frame already written, if there is one: its
    /// memory is warm, where a fresh allocation costs a page fault per 4 KiB.
    private func makeFrame(_ item: Element) throws -> [UInt8] {
        try encoder.withEncoded(item) { payload in
            let headerSize = _Frame.headerSize(forLength: payload.count)
            if payload.count >= Self.largeFrame, var frame = local.withLock({ $0.spareFrames.popLast() }) {
                frame.removeAll(keepingCapacity: true)
                frame.append(contentsOf: repeatElement(0, count: headerSize))
                frame.withUnsafeMutableBytes { _Frame.writeHeader(forLength: payload.count, to: $0.baseAddress!) }
                frame.append(contentsOf: payload)
                return frame
            }
            return [UInt8](unsafeUninitializedCapacity: headerSize + payload.count) { buffer, count in
                let start = UnsafeMutableRawPointer(buffer.baseAddress!)
                _Frame.writeHeader(forLength: payload.count, to: start)
                if let bytes = payload.baseAddress { (start + headerSize).copyMemory(from: bytes, byteCount: payload.count) }
                count = headerSize + payload.count
            }
        }
    }

    /// Frames from this size on are kept for reuse once written (at most two).
    static var largeFrame: Int { 1 << 16 }

    private func takeSlot(timeout: Duration?) throws {
        // The task is counted before the item can be taken, so a quick taskDone never finds it missing.
        swiftmp_add64(control.unfinished, 1)
        guard maxsize > 0 else {
            swiftmp_add64(control.put, 1)
            return
        }
        let limit = Int64(maxsize)
        var deadline: timespec?
        while true {
            let taken = swiftmp_load64(control.taken)
            let put = swiftmp_load64(control.put)
            if put &- taken < limit {
                if swiftmp_replace64(control.put, put, put &+ 1) { return }
                continue  // another put took a slot meanwhile
            }
            var freed = false
            if timeout != .zero {
                if deadline == nil, let timeout { deadline = _monotonicDeadline(after: timeout) }
                do {
                    freed = try control.wait(for: control.notFull, until: deadline) { control.count >= limit }
                } catch {
                    control.finishTasks()
                    throw error
                }
            }
            if !freed {
                control.finishTasks()
                throw QueueError.full
            }
        }
    }

    /// Items ahead of readers above which `put` gathers frames for one write instead
    /// of writing each at once: readers then have that much to do before they could
    /// miss a frame that waits, so gathering costs them no waiting.
    private var backlogForGathering: Int64 { 64 }

    /// How long gathered frames wait for more before the writer thread writes them anyway.
    private var gatheringTime: DispatchTimeInterval { .microseconds(200) }

    /// Writes the frame now when nothing of this process is waiting, readers are not
    /// far behind, and the pipe has room. Otherwise the frame goes behind the others
    /// for the writer thread, which is started at once, or once PIPE_BUF bytes are
    /// gathered or `gatheringTime` has passed when readers have plenty to do.
    private func enqueue(_ frame: [UInt8]) {
        drained.enter()
        let written = local.withLock { state -> Int in
            let gathering = control.count > backlogForGathering
            if state.pendingStart == state.pending.count && !state.writing && !gathering && writeNow(frame) { return 1 }
            // Counted in the control block too, so that if this process is killed before
            // they are written, another can free their slots. The entry is looked for
            // only when nothing waits, so the frames waiting are all counted, or none.
            if state.writerEntry == nil && state.pendingStart == state.pending.count {
                state.writerEntry = control.writerEntry()
            }
            state.pending.append(frame)
            state.pendingBytes += frame.count
            if let entry = state.writerEntry { swiftmp_add64(_ControlBlock.pending(of: entry), 1) }
            if state.writing { return 0 }
            if gathering && state.pendingBytes >= Int(PIPE_BUF) {
                // Enough gathered for one write: this thread makes it if it can without
                // waiting (no hand-over to the writer thread, which would compete with
                // the readers for the CPU).
                let count = writeGathered(&state)
                if count > 0 { return count }
            }
            if !gathering || state.pendingBytes >= Int(PIPE_BUF) {
                state.writing = true
                writerQueue.async { self.drain() }  // holds the queue until its frames are written
            } else if !state.startScheduled {
                state.startScheduled = true
                writerQueue.asyncAfter(deadline: .now() + gatheringTime) { self.startWriting() }
            }
            return 0
        }
        for _ in 0..<written { drained.leave() }
    }

    /// The first pending frames, as many as fit in PIPE_BUF bytes, written in one
    /// write if the write lock is free and the pipe has room now (with `local` held);
    /// returns how many (0: none, nothing written).
    private func writeGathered(_ state: inout LocalState) -> Int {
        var batch: [UInt8] = []
        let count = state.gatherSmallFrames(into: &batch)
        guard count > 0, let lock = control.tryLock(control.writeLock), lock != .timedOut else { return 0 }
        defer { control.unlock(control.writeLock) }
        guard control.writeRecord.total == 0 else { return 0 }  // for the writer thread to deal with
        // Uncounted just before the write (recounted if nothing was written): killed in
        // between, their slots stay taken, never freed twice.
        if let entry = state.writerEntry { swiftmp_add64(_ControlBlock.pending(of: entry), -Int64(count)) }
        let wrote = batch.withUnsafeBytes { (try? _writeSome(writer, $0)) ?? 0 }
        guard wrote == batch.count else {  // at most PIPE_BUF: all or nothing
            if let entry = state.writerEntry { swiftmp_add64(_ControlBlock.pending(of: entry), Int64(count)) }
            return 0
        }
        state.removeWritten(count)
        return count
    }

    /// Starts the writer thread for frames waiting, unless it is running.
    func startWriting() {
        local.withLock { state in
            state.startScheduled = false
            guard !state.writing, state.pendingStart < state.pending.count else { return }
            state.writing = true
            writerQueue.async { self.drain() }
        }
    }

    /// The frame, written now if it is at most PIPE_BUF bytes, the write lock is
    /// free and the pipe has room; false (nothing written) otherwise. This never waits.
    private func writeNow(_ frame: [UInt8]) -> Bool {
        guard frame.count <= Int(PIPE_BUF), let lock = control.tryLock(control.writeLock), lock != .timedOut else { return false }
        defer { control.unlock(control.writeLock) }
        // A frame left unfinished is for the writer thread to deal with: it may have to wait.
        guard control.writeRecord.total == 0 else { return false }
        let wrote = frame.withUnsafeBytes { (try? _writeSome(writer, $0)) ?? 0 }
        return wrote == frame.count  // at most PIPE_BUF: all or nothing
    }

    /// The writer thread: writes this process's pending frames, in order, as few
    /// `write()`s as it can.
    func drain() {
        var batch: [UInt8] = []
        while true {
            // The next frames: one larger than PIPE_BUF, or as many smaller ones as fit in it.
            let next = local.withLock { state -> (count: Int, large: [UInt8]?, entry: UnsafeMutablePointer<swiftmp_writer>?)? in
                guard state.pendingStart < state.pending.count else {
                    state.pending.removeAll(keepingCapacity: true)
                    state.pendingStart = 0
                    state.writing = false
                    return nil
                }
                let first = state.pending[state.pendingStart]
                if first.count > Int(PIPE_BUF) { return (1, first, state.writerEntry) }
                return (state.gatherSmallFrames(into: &batch), nil, state.writerEntry)
            }
            guard var next else { return }
            let entry = next.entry
            do {
                guard try write(next.large, orBatch: batch, of: next.count, countedIn: entry) else {
                    // Part of a dead writer's frame is in the pipe: a reader ends it. Until
                    // then nothing may follow it; the frames stay pending, and this looks again.
                    _sleep(.milliseconds(20))
                    continue
                }
            } catch {
                // The write lock could not be taken: nothing of them reached the pipe.
                if let entry { swiftmp_add64(_ControlBlock.pending(of: entry), -Int64(next.count)) }
                dropped(next.count, because: error)
            }
            next.large = nil  // the pending list's reference is then the only one: reusable without a copy
            local.withLock { $0.removeWritten(next.count) }
            for _ in 0..<next.count { drained.leave() }
        }
    }

    /// Writes the next frames with the write lock held: one large frame, or a batch of
    /// `count` small ones. They stop being counted as waiting in the control block
    /// (`entry`) just before they are written: killed in between, their slots stay
    /// taken (as in Python's queue), never freed twice. Returns false, writing
    /// nothing, while a dead writer's frame is unfinished in the pipe.
    private func write(_ large: [UInt8]?, orBatch batch: [UInt8], of count: Int, countedIn entry: UnsafeMutablePointer<swiftmp_writer>?) throws -> Bool {
        _ = try control.lock(control.writeLock, timeout: nil)
        defer { control.unlock(control.writeLock) }
        if control.writeRecord.total != 0 && !forgetUnwrittenFrame() { return false }
        if let entry { swiftmp_add64(_ControlBlock.pending(of: entry), -Int64(count)) }
        do {
            if let large { try writeLarge(large) } else { try writeWhole(batch) }
        } catch {
            // A large frame begun stays unfinished in the write record: forgotten by the
            // next writer if none of it reached the pipe, ended by a reader otherwise.
            if large != nil {
                _writeStandardError("swift-multiprocessing: a queue item could not be written (\(error)); it is dropped.")
            } else {
                dropped(count, because: error)  // one write, all or nothing: nothing was
            }
        }
        return true
    }

    /// Frames of which nothing reached the pipe, and never will: said on stderr, and
    /// their slots and tasks freed.
    private func dropped(_ count: Int, because error: any Error) {
        _writeStandardError("swift-multiprocessing: \(count) queue item(s) could not be written (\(error)); they are dropped.")
        control.forgetItems(Int64(count))
    }

    /// Writes whole frames, at most PIPE_BUF bytes in all, with the write lock held:
    /// one write, all or nothing, once the pipe has room.
    private func writeWhole(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { bytes in
            while try _writeSome(writer, bytes) == 0 {
                _ = try _pollWritable(writer, deadline: nil)
            }
        }
    }

    /// Writes one frame larger than PIPE_BUF with the write lock held, committing
    /// its progress after every write. The first write holds the header and is
    /// PIPE_BUF bytes, so the header enters the pipe whole.
    private func writeLarge(_ frame: [UInt8]) throws {
        var record = swiftmp_write_record(total: Int64(frame.count), left: Int64(frame.count), ended_by_reader: 0)
        control.commit(record)
        try frame.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let end = offset == 0 ? Int(PIPE_BUF) : bytes.count
                let wrote = try _writeSome(writer, UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                if wrote == 0 {
                    _ = try _pollWritable(writer, deadline: nil)
                    continue
                }
                offset += wrote
                record.left = Int64(bytes.count - offset)
                control.commit(record)
            }
        }
        record.total = 0
        control.commit(record)
    }

    /// A frame its writer left unfinished (it died, or failed), found by the next
    /// writer with the write lock held. If none of it reached the pipe it is forgotten:
    /// its item is gone, so its slot and task are freed; returns true. Otherwise
    /// returns false: a reader ends it (only a reader knows what it is missing).
    private func forgetUnwrittenFrame() -> Bool {
        let record = control.writeRecord
        // Values from shared memory: any process could have written them.
        guard record.ended_by_reader == 0, record.total <= 0 || record.left >= record.total else { return false }
        // Recorded first: a process killed after this leaks a slot at worst, never frees one twice.
        control.commit(swiftmp_write_record(total: 0, left: 0, ended_by_reader: 0))
        control.forgetItems(1)
        return true
    }
}
