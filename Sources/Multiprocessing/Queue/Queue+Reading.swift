import CSystemShims
import Glibc
import MessagePack
import SystemPackage

/// How readers take frames. A reader holds the read lock, takes one frame and lets
/// go; decoding happens after. Frames come out of a read-ahead buffer in the
/// control block, which one `read()` fills with as many frames as the pipe holds:
/// the frames a reader does not take stay there for the next reader, of any
/// process, so they are neither lost with a dead reader nor kept from the others,
/// and `count` still counts them. A frame too large for the buffer is read
/// straight from the pipe into its payload.
///
/// Every step is committed to the read record (see `swiftmp_read_record`), so a
/// reader killed at any point leaves a record the next one can go on from: frames
/// before it were taken, the buffer holds what is left, and `skip` says what is
/// left in the pipe of a frame it had taken. A reader waiting for the rest of a
/// frame whose writer is gone ends it (`fillOutAbandonedFrame`).
extension Queue {
    /// Takes an item, waiting up to `timeout` for one (nil: as long as it takes).
    /// - Throws: `QueueError.empty` when none came in time; `.closed`; the decoder's
    ///   `DecodingError` (the item is taken all the same: on a `JoinableQueue`, mark
    ///   it done); `ConnectionError` for a frame over `maxFrameLength` (taken and
    ///   refused, likewise) or bytes that are not a frame.
    public func get(timeout: Duration? = nil) throws -> Element {
        guard !isClosed else { throw QueueError.closed }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let limit = maxFrameLength
        if try control.lock(control.readLock, timeout: timeout) == .timedOut { throw QueueError.empty }
        let payload: _Payload
        do {
            defer { control.unlock(control.readLock) }
            payload = try takeFrame(deadline: deadline, limit: limit)
        }
        guard payload.count >= 1 << 16 else { return try decoder.decode(Element.self, from: payload.bytes) }
        let shared = _SharedPayload(payload)
        return try decoder.decode(Element.self, from: shared.payload.bytes, owner: shared)
    }

    /// Takes an item if one is waiting now (Python's `get_nowait`).
    /// - Throws: `QueueError.empty` when the queue is empty.
    public func getNowait() throws -> Element {
        try get(timeout: .zero)
    }

    /// The largest frame that enters the pipe in one piece (with its header).
    private var wholeFrameLimit: Int { Int(PIPE_BUF) }

    /// Takes the next item's frame, with the read lock held.
    private func takeFrame(deadline: ContinuousClock.Instant?, limit: Int) throws -> _Payload {
        let buffer = control.readAhead
        var record = control.readRecord
        if record.start > record.end || Int(record.end) > buffer.count {
            // Not a record this code wrote (shared memory is anyone's): start over from the pipe.
            record.start = 0
            record.end = 0
        }
        control.commit(record)  // also brings `taken` up to date if a reader died just before doing so
        if record.skip > 0 {
            // A frame taken by a reader that died reading it, or one refused as too long.
            var nothing = _Payload()
            _ = try readRest(&record, into: &nothing, keeping: false)
        }
        while true {
            let unread = UnsafeRawBufferPointer(rebasing: buffer[Int(record.start)..<Int(record.end)])
            if let header = try _Frame.header(in: unread) {
                let number = record.taken &+ 1
                let inBuffer = unread.count - header.size  // payload bytes here (may exceed this frame's)
                let tooLong = header.length > limit
                if tooLong || header.length > inBuffer && header.length > wholeFrameLimit - header.size {
                    // Taken now; its rest comes straight from the pipe.
                    let here = min(inBuffer, header.length)
                    var payload = tooLong ? _Payload()
                        : _Payload(copying: UnsafeRawBufferPointer(rebasing: unread[header.size..<(header.size + here)]))
                    record.taken = number
                    record.skip = Int64(header.length - here)
                    record.start += UInt32(header.size + here)
                    commitTaking(&record)
                    if tooLong {
                        // Refused: the next reader skips its rest (this one may not wait for it).
                        throw ConnectionError(.frameTooLong, "a queue frame of \(header.length) bytes is over the limit of \(limit) bytes")
                    }
                    let whole = try readRest(&record, into: &payload, keeping: true)
                    if !whole { continue }  // a dead writer's frame, filled out with zeros
                    return payload
                }
                if header.length <= inBuffer {
                    let payload = _Payload(copying: UnsafeRawBufferPointer(rebasing: unread[header.size..<(header.size + header.length)]))
                    record.taken = number
                    record.start += UInt32(header.size + header.length)
                    commitTaking(&record)
                    return payload
                }
            }
            // More bytes are needed. Part of a frame here means the rest is already in
            // the pipe (a frame of at most PIPE_BUF bytes enters it in one piece), so
            // only a reader with nothing in hand waits, and only it keeps to the deadline.
            if record.start == record.end, let deadline, try !_pollReadable([reader], deadline: deadline)[0] {
                throw QueueError.empty
            }
            if Int(record.end) + wholeFrameLimit + 12 > buffer.count {
                // Move the part-frame to the front. It is shorter than the free space
                // before it, so the copy never overwrites what it copies: until the
                // record says otherwise, the old place is still whole.
                let part = Int(record.end - record.start)
                if part > 0 {
                    buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + Int(record.start), byteCount: part)
                }
                record.start = 0
                record.end = UInt32(part)
                control.commit(record)
            }
            let room = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(record.end)...])
            let got = try _readSome(reader, into: room)
            if got == 0 { throw QueueError.closed }  // every writer is gone: not while this process holds one
            record.end += UInt32(got)
            control.commit(record)
        }
    }

    /// Commits a frame as taken: its slot is free now.
    private func commitTaking(_ record: inout swiftmp_read_record) {
        if record.start == record.end {
            record.start = 0
            record.end = 0
        }
        control.commit(record)
        if maxsize > 0 { control.signal(control.notFull) }  // nobody waits for room in an unbounded queue
    }

    /// Reads the `record.skip` bytes still in the pipe of the frame just taken, into
    /// `payload` or nowhere, committing after every read so the next reader knows
    /// what is left if this one dies. Returns false when the frame's writer is gone
    /// with part of it unwritten: this reader then fills it out with zeros itself,
    /// reads them, and the frame is void.
    private func readRest(_ record: inout swiftmp_read_record, into payload: inout _Payload, keeping: Bool) throws -> Bool {
        var whole = true
        let scratch = keeping ? nil : UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
        defer { scratch?.deallocate() }
        while record.skip > 0 {
            // Wait in slices: between them, look for a writer that died mid-frame (once
            // found, this reader goes on filling out as soon as it has read its zeros).
            if try !_pollReadable([reader], deadline: .now + .milliseconds(whole ? 200 : 0))[0] {
                if try fillOutAbandonedFrame(missing: record.skip) { whole = false }
                continue
            }
            let want = Int(min(record.skip, 1 << 20))
            let got: Int
            if let room = scratch {
                got = try _readSome(reader, into: UnsafeMutableRawBufferPointer(rebasing: room[..<min(want, room.count)]))
            } else {
                got = try _readSome(reader, into: payload.reserve(want))
                payload.commit(got)
            }
            if got == 0 { throw QueueError.closed }
            record.skip -= Int64(got)
            control.commit(record)
        }
        // Read to its end: if a reader (this one, or one that died) filled it out, writers may
        // go on. (Only readers set that mark, one at a time: read without the write lock
        // it is a hint, looked at again with it.)
        if !whole || control.writeRecord.ended_by_reader != 0 { try finishFillingOut() }
        return whole
    }

    /// Called by a reader that waits for `missing` more bytes of the frame it took,
    /// with the pipe empty. A writer writes a frame whole with the write lock held,
    /// so if the lock is free and the pipe still empty, the frame's writer is gone
    /// (it died, or failed) and no one will write the rest. This reader alone knows
    /// exactly how much is missing: it writes that many zeros (as many as the pipe
    /// takes now), and the write record says a reader is ending the frame, so that
    /// writers wait, and the next reader goes on if this one dies. Returns whether
    /// it wrote any.
    private func fillOutAbandonedFrame(missing: Int64) throws -> Bool {
        guard let result = control.tryLock(control.writeLock), result != .timedOut else { return false }
        defer { control.unlock(control.writeLock) }
        guard try _bytesReadable(reader) == 0 else { return false }  // more came meanwhile
        var record = control.writeRecord
        if record.ended_by_reader == 0 {
            // The item is gone: its task is done (once, unless its writer forgot the frame
            // already, thinking none of it had reached the pipe).
            if record.total != 0 { control.finishTasks() }
            record.ended_by_reader = 1
        }
        record.total = max(1, missing)
        record.left = missing
        control.commit(record)
        let zeros = [UInt8](repeating: 0, count: Int(min(missing, 1 << 16)))
        var wrote: Int64 = 0
        while wrote < missing {
            let count = try zeros.withUnsafeBytes { try _writeSome(writer, UnsafeRawBufferPointer(rebasing: $0[..<Int(min(missing - wrote, Int64($0.count)))])) }
            if count == 0 { break }  // the pipe is full: read these first
            wrote += Int64(count)
            record.left = missing - wrote
            control.commit(record)
        }
        return wrote > 0
    }

    /// The frame a reader filled out is read to its end: writers may go on.
    private func finishFillingOut() throws {
        _ = try control.lock(control.writeLock, timeout: nil)
        defer { control.unlock(control.writeLock) }
        if control.writeRecord.ended_by_reader != 0 {
            control.commit(swiftmp_write_record(total: 0, left: 0, ended_by_reader: 0))
        }
    }
}
