import Glibc
import Synchronization

/// Named places in the queue's protocol where a test can have a process killed
/// (SIGKILL, by itself) to show that every commit point survives it: the
/// environment variable `SWIFT_MULTIPROCESSING_CRASH_AT=<point>:<n>` kills the
/// process the n-th time it reaches `<point>`. Unset (always, outside tests), a
/// point costs one load and a branch.
enum _CrashPoint: String, CaseIterable, Sendable {
    case beforeReserving, slotsIntentWritten, slotsCommitted
    case writeHeaderCopied, writeCopied, writeIntentWritten, writeCommitted, streamed
    case readCopied, readIntentWritten, readCommitted
}

/// The point and count the environment names, if any.
let _crashPlan: _CrashPlan? = {
    guard let value = getenv("SWIFT_MULTIPROCESSING_CRASH_AT").map({ String(cString: $0) }) else { return nil }
    let parts = value.split(separator: ":")
    guard parts.count == 2, let point = _CrashPoint(rawValue: String(parts[0])), let count = Int(parts[1]), count > 0 else { return nil }
    return _CrashPlan(point: point, count: count)
}()

final class _CrashPlan: Sendable {
    let point: _CrashPoint
    let left: Atomic<Int>

    init(point: _CrashPoint, count: Int) {
        self.point = point
        left = Atomic(count)
    }

    func reached(_ point: _CrashPoint) {
        guard point == self.point, left.subtract(1, ordering: .relaxed).newValue == 0 else { return }
        try? _signal(_processID, SIGKILL)
    }
}

@inline(__always)
func _crashPoint(_ point: _CrashPoint) {
    if let plan = _crashPlan { plan.reached(point) }
}
