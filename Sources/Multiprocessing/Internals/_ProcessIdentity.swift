import Glibc

/// A process's start time (clock ticks after boot, field 22 of /proc/PID/stat), or
/// nil if it is gone: no such process, or one that has ended and waits to be reaped
/// (state Z or X). With the pid it names one process, even after the pid is reused.
func _processStartTime(_ pid: pid_t) -> Int64? {
    guard let fd = try? _openReadOnly("/proc/\(pid)/stat") else { return nil }
    defer { _close(fd) }
    guard let bytes = try? _readFully(fd, count: 1024), !bytes.isEmpty else { return nil }
    // "pid (command) state ppid …": the command may hold spaces and parentheses, so
    // the fields are counted from the last ')'.
    let text = bytes[...]
    guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return nil }
    let fields = text[(close + 1)...].split(separator: UInt8(ascii: " "))
    guard fields.count > 19, let state = fields[0].first, state != UInt8(ascii: "Z"), state != UInt8(ascii: "X") else { return nil }
    return Int64(String(decoding: fields[19], as: UTF8.self))
}

/// This process's id and start time: with both, a process is named even after its pid is reused.
let _processID: pid_t = _currentProcessID()
let _processStart: Int64 = _processStartTime(_processID) ?? 0

