import Glibc
import SystemPackage

/// What /proc says of a process.
enum _ProcessState: Equatable {
    /// Running (or stopped), started at `start` (clock ticks after boot, field 22 of
    /// /proc/PID/stat): with the pid, it names one process even after the pid is reused.
    case running(start: Int64)
    /// No such process, or one that has ended and waits to be reaped (state Z or X).
    case gone
    /// /proc could not be read (no descriptor free, no /proc mounted, …).
    case unknown
}

func _processState(_ pid: pid_t) -> _ProcessState {
    let fd: FileDescriptor
    do throws(Errno) {
        fd = try _openReadOnly("/proc/\(pid)/stat")
    } catch {
        return error == .noSuchFileOrDirectory || error == .noSuchProcess ? .gone : .unknown
    }
    defer { _close(fd) }
    guard let bytes = try? _readFully(fd, count: 1024) else { return .unknown }
    if bytes.isEmpty { return .gone }  // it ended between the open and the read
    // "pid (command) state ppid …": the command may hold spaces and parentheses, so
    // the fields are counted from the last ')'.
    guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return .unknown }
    let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
    guard fields.count > 19, let state = fields[0].first else { return .unknown }
    guard let start = Int64(String(decoding: fields[19], as: UTF8.self)) else { return .unknown }
    // Z is also what a process whose main thread ended shows while its other threads
    // run (after `dispatchMain()`, say): it is gone only if no thread is left.
    if state == UInt8(ascii: "X") || state == UInt8(ascii: "Z") && _threadCount(pid) <= 1 { return .gone }
    return .running(start: start)
}

/// How many threads /proc/PID/status counts for `pid` ("Threads:"); 0 if unknown.
private func _threadCount(_ pid: pid_t) -> Int {
    guard let fd = try? _openReadOnly("/proc/\(pid)/status") else { return 0 }
    defer { _close(fd) }
    guard let bytes = try? _readFully(fd, count: 4096) else { return 0 }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") }) else { return 0 }
    return Int(line.dropFirst("Threads:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" })) ?? 0
}

/// Whether the process `pid` that started at `start` is gone: ended, or `pid` names
/// another process now. When /proc cannot say, it is taken to be alive: freeing a
/// live process's slots would break the counts.
func _processIsGone(_ pid: pid_t, start: Int64) -> Bool {
    switch _processState(pid) {
    case .gone: true
    case .running(let now): start != 0 && now != start  // 0: its start was not known
    case .unknown: false
    }
}

/// This process's id and start time.
let _processID: pid_t = _currentProcessID()
let _processStart: Int64 = {
    if case .running(let start) = _processState(_processID) { return start }
    return 0
}()
