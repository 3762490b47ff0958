import CSystemShims
import Glibc
import SystemPackage

/// Something processes wait for, in shared memory: a futex word that changes when
/// it happens, and the number of waiters, so that making it happen costs a system
/// call only when someone sleeps. (Not a pthread condition variable: glibc's
/// process-shared ones hang a later broadcast when a waiter was killed. A killed
/// futex waiter leaves only its mark in `waiters`: one spare wake-up.)
///
/// The word can be the low half of a ring index: the index changing is the event.
struct _SharedEvent {
    let word: UnsafeMutablePointer<UInt32>
    let waiters: _SharedAtomic<UInt32>

    /// Tells every waiter the event happened (the caller has just made it happen).
    /// A word of its own is changed first; an index word has changed already. With
    /// no waiter, nothing is written: one that comes after sees what happened when
    /// it checks (its count was raised before it checked, and both are sequentially
    /// consistent).
    @inline(__always)
    func signal(changingWord: Bool) {
        guard waiters.load() > 0 else { return }
        if changingWord { _SharedAtomic(at: word).add(1) }
        swiftmp_futex_wake_all(word)
    }

    /// Waits while `blocked()` is true, spinning `spins` times first, then asleep
    /// until `deadline` (nil: as long as it takes), in slices of at most `slice`
    /// with `onStall` run between them (for what no wake-up announces: a process
    /// that died). Returns false if the deadline passed with `blocked()` still true.
    func wait(
        until deadline: _Deadline?, spins: Int = 0, slice: Duration = .seconds(1),
        onStall: () -> Void = {}, while blocked: () -> Bool
    ) throws(Errno) -> Bool {
        for _ in 0..<spins {
            if !blocked() { return true }
            swiftmp_cpu_relax()
        }
        waiters.add(1)
        defer { waiters.add(UInt32.max) }  // -1
        while true {
            // The word is read before the check: a change after the check makes the wait return at once.
            let seen = _SharedAtomic(at: word).load()
            guard blocked() else { return true }
            let sliceEnd = _Deadline(after: slice)
            let last = deadline.map { $0 <= sliceEnd } ?? false
            var time = (last ? deadline! : sliceEnd).timespec
            let result = swiftmp_futex_wait(word, seen, &time)
            switch result {
            case 0, EINTR: continue
            case ETIMEDOUT where last: return !blocked()
            case ETIMEDOUT: onStall()
            default: throw Errno(rawValue: result)
            }
        }
    }
}
