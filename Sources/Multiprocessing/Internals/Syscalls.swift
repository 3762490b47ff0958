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

/// Reads what is there, up to `buffer.count` bytes, waiting for at least one
/// (0: end of file). The corresponding C function is `read`.
func _read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try _retrying { read(fd.rawValue, buffer.baseAddress, buffer.count) }
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
func _pollReadable(_ fds: [FileDescriptor], deadline: _Deadline?) throws(Errno) -> [Bool] {
    var entries = fds.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
    while true {
        let result = poll(&entries, nfds_t(entries.count), deadline?.millisecondsLeft ?? -1)
        if result >= 0 { return entries.map { $0.revents != 0 } }
        let error = Errno(rawValue: errno)
        if error != .interrupted { throw error }
    }
}

/// Whether `fd` is ready now to be read or written, as asked; an error or a hang-up counts
/// as ready (the next read or write reports it). The corresponding C function is `poll`,
/// without waiting; EINTR counts as not ready (the caller looks again).
package func _isReady(_ fd: CInt, readable: Bool, writable: Bool) -> Bool {
    var entry = pollfd(fd: fd, events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0)
    return poll(&entry, 1, 0) > 0
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

/// Reads `count` bytes, or fewer at end of file. The memory for `count` is taken
/// at once: `count` is a size this process chose, never a length the input states
/// (a frame's payload is read by `Connection`, into memory that grows as it arrives).
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

/// An anonymous in-memory file holding `bytes`, positioned at its start: how a
/// child receives its start arguments. The corresponding C function is `memfd_create`.
func _memoryFile(named name: String, holding bytes: [UInt8]) throws(Errno) -> FileDescriptor {
    let fd = FileDescriptor(rawValue: try _retrying { swiftmp_memfd_create(name) })
    do throws(Errno) {
        try _writeFully(fd, bytes)
        _ = try _retrying { lseek(fd.rawValue, 0, SEEK_SET) }
    } catch {
        _close(fd)
        throw error
    }
    return fd
}

/// A close-on-exec copy of `fd` numbered `minimum` or above.
/// The corresponding C call is `fcntl(fd, F_DUPFD_CLOEXEC, minimum)`.
func _duplicate(_ fd: FileDescriptor, atLeast minimum: CInt) throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, minimum) })
}

/// Reads a descriptor to its end.
func _readToEnd(_ fd: FileDescriptor) throws(Errno) -> [UInt8] {
    var result: [UInt8] = []
    while true {
        let chunk = try _readFully(fd, count: 1 << 16)
        result += chunk
        if chunk.count < 1 << 16 { return result }
    }
}

/// Starts `path` with `arguments` and this process's environment. In the child,
/// descriptor `source` is copied to `target` for each pair (in order), every
/// descriptor from `closeFrom` on is closed, no signal is blocked and every
/// signal's action is the default. The corresponding C function is `posix_spawn`.
func _posixSpawn(path: String, arguments: [String], copying pairs: [(source: CInt, target: CInt)], closeFrom: CInt) throws(Errno) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (source, target) in pairs {
        let result = posix_spawn_file_actions_adddup2(&actions, source, target)
        if result != 0 { throw Errno(rawValue: result) }
    }
    let result = swiftmp_spawn_addclosefrom(&actions, closeFrom)
    if result != 0 { throw Errno(rawValue: result) }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    var all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var pid: pid_t = 0
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
    if spawned != 0 { throw Errno(rawValue: spawned) }
    return pid
}

/// Writes out what stdio holds for every stream. The corresponding C function is `fflush(NULL)`.
func _flushStandardStreams() {
    fflush(nil)
}

/// How a child ended, if it has: `nil` while it runs (with `block: false`).
/// The corresponding C function is `waitpid`.
func _reap(_ pid: pid_t, block: Bool) throws(Errno) -> CInt? {
    var status: CInt = 0
    let result = try _retrying { waitpid(pid, &status, block ? 0 : WNOHANG) }
    return result == 0 ? nil : status
}

/// Sends a signal. The corresponding C function is `kill`.
func _signal(_ pid: pid_t, _ signal: CInt) throws(Errno) {
    _ = try _retrying { Glibc.kill(pid, signal) }
}

/// Sends a signal to the process a pidfd names (ESRCH once it has been reaped).
/// The corresponding C function is `pidfd_send_signal`.
func _signal(pidDescriptor: FileDescriptor, _ signal: CInt) throws(Errno) {
    _ = try _retrying { swiftmp_pidfd_send_signal(pidDescriptor.rawValue, signal) }
}

/// Opens a file for reading, close-on-exec. The corresponding C function is `open`.
func _openReadOnly(_ path: String) throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { open(path, O_RDONLY | O_CLOEXEC) })
}

/// This process's id. The corresponding C function is `getpid`.
func _currentProcessID() -> pid_t { getpid() }

/// Sleeps until `deadline`. The corresponding C function is `clock_nanosleep`
/// (CLOCK_MONOTONIC, TIMER_ABSTIME: EINTR sleeps on to the same moment).
func _sleep(until deadline: _Deadline) {
    var time = deadline.timespec
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &time, nil) == EINTR {}
}

/// Ends this process at once with `code` (used by a child after its entry ran;
/// `exit` flushes stdio first).
func _exit(code: CInt) -> Never {
    fflush(nil)
    exit(code)
}

// MARK: Shared memory, for a queue's control block

/// An anonymous in-memory file whose size can be sealed, close-on-exec, empty.
/// The corresponding C function is `memfd_create` (MFD_ALLOW_SEALING).
func _sealableMemoryFile(named name: String) throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { swiftmp_memfd_create_sealable(name) })
}

/// Fixes a memfd's size for good, so no process holding it can shrink it under
/// the others' mappings. The corresponding C call is `fcntl(F_ADD_SEALS)`.
func _sealSize(_ fd: FileDescriptor) throws(Errno) {
    _ = try _retrying { swiftmp_seal_size(fd.rawValue) }
}

/// Sets the size of a file (a memfd). The corresponding C function is `ftruncate`.
func _setSize(_ fd: FileDescriptor, _ size: Int) throws(Errno) {
    _ = try _retrying { ftruncate(fd.rawValue, off_t(size)) }
}

/// The size of a file. The corresponding C function is `fstat`.
func _fileSize(_ fd: FileDescriptor) throws(Errno) -> Int {
    var status = stat()
    _ = try _retrying { fstat(fd.rawValue, &status) }
    return Int(status.st_size)
}

/// Maps `size` bytes of `fd` shared with every process that maps it.
/// The corresponding C function is `mmap` (PROT_READ | PROT_WRITE, MAP_SHARED).
func _mapShared(_ fd: FileDescriptor, size: Int) throws(Errno) -> UnsafeMutableRawPointer {
    let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
    guard let address, address != MAP_FAILED else { throw Errno(rawValue: errno) }
    return address
}

/// Unmaps a mapping. (A queue's locks are never destroyed: one may be held by a
/// process that died. Unmapping is enough.)
func _unmap(_ address: UnsafeMutableRawPointer, size: Int) {
    _ = munmap(address, size)
}

/// A counter descriptor that `poll` sees readable while it is not zero: how a
/// queue tells pollers that an item may be there. Non-blocking, close-on-exec.
/// The corresponding C function is `eventfd`.
func _eventDescriptor() throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { swiftmp_eventfd() })
}

/// Adds 1 to an eventfd's counter (it is then readable). The corresponding C function is `write`.
func _signalEventDescriptor(_ fd: FileDescriptor) {
    var one: UInt64 = 1
    _ = try? _retrying { write(fd.rawValue, &one, 8) }  // EAGAIN: the counter is at its maximum, readable already
}

/// Resets an eventfd's counter to 0 (unreadable). The corresponding C function is `read`.
func _drainEventDescriptor(_ fd: FileDescriptor) {
    var value: UInt64 = 0
    _ = try? _retrying { read(fd.rawValue, &value, 8) }  // EAGAIN: it was 0
}

// MARK: Readiness (the async forms' one waiting thread, _Reactor)

/// An epoll instance, close-on-exec. The corresponding C function is `epoll_create1`.
func _epollCreate() throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { swiftmp_epoll_create() })
}

/// Adds, changes or removes `fd` in an epoll instance. The corresponding C function is `epoll_ctl`.
func _epollControl(_ epoll: FileDescriptor, _ operation: _EpollOperation, _ fd: FileDescriptor, events: UInt32, data: UInt64) throws(Errno) {
    _ = try _retrying { swiftmp_epoll_ctl(epoll.rawValue, operation.rawValue, fd.rawValue, events, data) }
}

enum _EpollOperation: CInt { case add = 0, modify = 1, remove = 2 }

/// Waits up to `milliseconds` (-1: as long as it takes) for entries of an epoll
/// instance to be ready: their events and data. EINTR is an empty answer. The
/// corresponding C function is `epoll_wait`.
func _epollWait(_ epoll: FileDescriptor, milliseconds: CInt) throws(Errno) -> [(events: UInt32, data: UInt64)] {
    var events = [UInt32](repeating: 0, count: 64)
    var data = [UInt64](repeating: 0, count: 64)
    let count = swiftmp_epoll_wait(epoll.rawValue, &events, &data, 64, milliseconds)
    if count < 0 {
        let error = Errno(rawValue: errno)
        if error == .interrupted { return [] }
        throw error
    }
    return (0..<Int(count)).map { (events[$0], data[$0]) }
}

/// A descriptor readable once process `pid` has ended. The corresponding C function is `pidfd_open`.
func _pidDescriptor(_ pid: pid_t) throws(Errno) -> FileDescriptor {
    FileDescriptor(rawValue: try _retrying { swiftmp_pidfd_open(pid) })
}

// MARK: I/O that never waits (a connection's async forms, and its frame assembly)

/// Whether `fd` is a socket (else a pipe, or another file). The corresponding C function is `fstat`.
func _isSocket(_ fd: FileDescriptor) -> Bool {
    var status = stat()
    guard fstat(fd.rawValue, &status) == 0 else { return false }
    return status.st_mode & S_IFMT == S_IFSOCK
}

/// Whether `fd` is readable (or, with `writing`, writable) now, without waiting;
/// an error or hang-up counts, as the next call then returns at once.
/// The corresponding C function is `poll`, with a timeout of 0.
func _isReadyNow(_ fd: FileDescriptor, writing: Bool = false) throws(Errno) -> Bool {
    var entry = pollfd(fd: fd.rawValue, events: Int16(writing ? POLLOUT : POLLIN), revents: 0)
    _ = try _retrying { poll(&entry, 1, 0) }
    return entry.revents != 0
}

/// Takes what a socket holds, up to `buffer.count` bytes, without waiting:
/// nil when it holds nothing, 0 at end of file. The descriptor stays blocking for
/// the processes sharing it. The corresponding C function is `recv` (MSG_DONTWAIT).
func _receiveNow(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
    do throws(Errno) {
        return try _retrying { recv(fd.rawValue, buffer.baseAddress, buffer.count, CInt(MSG_DONTWAIT)) }
    } catch where error == .wouldBlock {
        return nil
    }
}

/// Writes what a socket has room for, up to `buffer.count` bytes, without waiting:
/// nil when it has none. EPIPE rather than SIGPIPE when the other end is gone.
/// The corresponding C function is `send` (MSG_DONTWAIT | MSG_NOSIGNAL).
func _sendNow(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int? {
    do throws(Errno) {
        return try _retrying { send(fd.rawValue, buffer.baseAddress, buffer.count, CInt(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    } catch where error == .wouldBlock {
        return nil
    }
}

/// One write of `buffer` (it may write less). The corresponding C function is `write`.
func _write(_ fd: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
    try _retrying { write(fd.rawValue, buffer.baseAddress, buffer.count) }
}

/// Marks a descriptor close-on-exec. The corresponding C call is `fcntl(fd, F_SETFD, FD_CLOEXEC)`.
func _setCloseOnExec(_ fd: FileDescriptor) {
    _ = fcntl(fd.rawValue, F_SETFD, FD_CLOEXEC)
}

/// Runs `body` on a new, detached thread (the reactor's, a pool worker's reader, a
/// worker's watch on its parent): threads that wait in blocking calls for as long
/// as they live, which Swift's cooperative pool must not. The corresponding C
/// function is `pthread_create`.
func _startThread(_ body: @escaping @Sendable () -> Void) throws(Errno) {
    final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { context in
        Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, context)
    guard result == 0 else {
        Unmanaged<Body>.fromOpaque(context).release()
        throw Errno(rawValue: result)
    }
    pthread_detach(thread)
}
