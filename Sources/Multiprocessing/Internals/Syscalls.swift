import CSystemShims
import Glibc
import SystemPackage

// Every libc call the Multiprocessing module makes is here, as swift-system
// keeps its own in Internals/Syscalls.swift: each returns what the call said as a
// typed `Errno`, and retries EINTR where that is the right answer.

/// Runs a call that returns -1 and sets errno on failure, retrying EINTR.
@inline(__always)
func _retrying<T: FixedWidthInteger>(_ call: () -> T) throws(Errno) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno(rawValue: errno)
        if error != .interrupted { throw error }
    }
}

/// A pipe, both ends close-on-exec. The corresponding C function is `pipe2`.
func _pipe() throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [CInt] = [-1, -1]
    _ = try _retrying { swiftmp_pipe2(&fds, 0) }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// A connected pair of Unix stream sockets, close-on-exec. The corresponding C function is `socketpair`.
func _socketPair() throws(Errno) -> (FileDescriptor, FileDescriptor) {
    var fds: [CInt] = [-1, -1]
    _ = try _retrying { socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &fds) }
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

/// Grows a pipe to at most `size` bytes (the kernel caps it at
/// /proc/sys/fs/pipe-max-size), returning the size it has.
/// The corresponding C call is `fcntl(fd, F_SETPIPE_SZ, size)`.
func _growPipe(_ fd: FileDescriptor, to size: Int) -> Int {
    var want = size
    while want >= 4096 {
        let result = swiftmp_set_pipe_size(fd.rawValue, CInt(clamping: want))
        if result >= 0 { return Int(result) }
        want /= 2  // EPERM over the system's limit: try smaller
    }
    return Int(swiftmp_get_pipe_size(fd.rawValue))
}

/// Bytes waiting to be read. The corresponding C call is `ioctl(fd, FIONREAD)`.
func _bytesReadable(_ fd: FileDescriptor) throws(Errno) -> Int {
    Int(try _retrying { swiftmp_bytes_readable(fd.rawValue) })
}

/// Reads exactly `count` bytes into `buffer`, or fewer only at end of file.
/// - Returns: The bytes read: `count`, or less when the other end closed.
func _readFully(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    var done = 0
    while done < buffer.count {
        let n = try _retrying { read(fd.rawValue, buffer.baseAddress! + done, buffer.count - done) }
        if n == 0 { break }
        done += n
    }
    return done
}

/// Writes all of `buffer`. The corresponding C function is `write`.
func _writeFully(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(Errno) {
    var done = 0
    while done < buffer.count {
        done += try _retrying { write(fd.rawValue, buffer.baseAddress! + done, buffer.count - done) }
    }
}

/// Which of `fds` are readable (data, end of file or an error waiting), waiting
/// until one is or the deadline passes (`nil`: forever).
/// The corresponding C function is `poll`; EINTR restarts it with the time left.
func _pollReadable(_ fds: [FileDescriptor], deadline: ContinuousClock.Instant?) throws(Errno) -> [Bool] {
    var entries = fds.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
    while true {
        var timeout: CInt = -1
        if let deadline {
            let left = deadline - .now
            timeout = left <= .zero ? 0 : CInt(clamping: (left.components.seconds * 1000) + (left.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        }
        let result = poll(&entries, nfds_t(entries.count), timeout)
        if result >= 0 { return entries.map { $0.revents != 0 } }
        let error = Errno(rawValue: errno)
        if error != .interrupted { throw error }
    }
}

/// Closes a descriptor. EINTR is not retried: on Linux the descriptor is gone either way.
func _close(_ fd: FileDescriptor) {
    _ = Glibc.close(fd.rawValue)
}

/// Writing to a pipe whose reader is gone raises SIGPIPE, which ends the process;
/// as Python does at start-up, it is ignored, so the write fails with EPIPE instead.
let _ignoreSIGPIPE: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

/// Writes all of `bytes` (`withUnsafeBytes` does not carry a typed error through).
func _writeFully(_ fd: FileDescriptor, _ bytes: [UInt8]) throws(Errno) {
    var failure: Errno?
    bytes.withUnsafeBytes { raw in
        do throws(Errno) { try _writeFully(fd, raw) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Reads `count` bytes, or fewer at end of file.
func _readFully(_ fd: FileDescriptor, count: Int) throws(Errno) -> [UInt8] {
    var failure: Errno?
    var got = 0
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
        do throws(Errno) { got = try _readFully(fd, into: raw) } catch { failure = error }
    }
    if let failure { throw failure }
    if got < count { bytes.removeLast(count - got) }
    return bytes
}
