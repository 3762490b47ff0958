import Glibc
import CSystemShims
import Dispatch

/// A moment on CLOCK_MONOTONIC, the clock of every timed wait here (futexes,
/// robust locks, poll). The one place a `Duration` timeout becomes a time the
/// system understands: negative durations are now, huge ones about 136 years away.
struct _Deadline: Comparable, Sendable {
    let nanoseconds: Int64   // since the clock's start

    static var now: _Deadline {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return _Deadline(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }

    init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// `duration` from now.
    init(after duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let capped = seconds < 0 ? 0 : min(seconds, 1 << 32) * 1_000_000_000 + attoseconds / 1_000_000_000
        self.init(nanoseconds: _Deadline.now.nanoseconds + capped)
    }

    /// `timeout` from now, or nil (no deadline) for a nil timeout.
    static func after(_ timeout: Duration?) -> _Deadline? { timeout.map(_Deadline.init(after:)) }

    var timespec: Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// Time left, rounded up to whole milliseconds, for `poll` (0 once passed).
    var millisecondsLeft: CInt {
        let left = nanoseconds - _Deadline.now.nanoseconds
        return left <= 0 ? 0 : CInt(clamping: (left + 999_999) / 1_000_000)
    }

    var hasPassed: Bool { _Deadline.now >= self }

    /// Time left (zero once passed).
    var remaining: Duration { .nanoseconds(max(0, nanoseconds - _Deadline.now.nanoseconds)) }

    /// The same moment for Dispatch's waits.
    var dispatchTime: DispatchTime { .now() + .nanoseconds(Int(clamping: max(0, nanoseconds - _Deadline.now.nanoseconds))) }

    static func < (a: _Deadline, b: _Deadline) -> Bool { a.nanoseconds < b.nanoseconds }
}
