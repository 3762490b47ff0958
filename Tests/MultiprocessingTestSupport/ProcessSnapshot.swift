// What a process has open, for the leak checks: the test process's (after each
// multi-process test) and the helper child's (around a workload of its own).
import Dispatch
import Foundation

public struct ProcessSnapshot: Equatable, Sendable {
    /// Open descriptors, as "fd -> target", but for the event loops' own: epoll,
    /// timerfd and eventfd descriptors, which libdispatch and Foundation's Process
    /// open and close on their own schedule (a run loop's thread ends a while after
    /// its last use). A queue's eventfd always comes with its memfd, still compared.
    public var descriptors: [String]
    /// Names in /dev/shm.
    public var sharedMemory: Set<String>

    public init() {
        let files = FileManager.default
        descriptors = ((try? files.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { fd in
            // The directory listing itself is a descriptor, gone by now: no target.
            guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
                  !["anon_inode:[eventpoll]", "anon_inode:[timerfd]", "anon_inode:[eventfd]"].contains(target)
            else { return nil }
            return "\(fd) -> \(target)"
        }.sorted()
        sharedMemory = Set((try? files.contentsOfDirectory(atPath: "/dev/shm")) ?? [])
    }

    /// Whether this process has a child, running or ended and not yet waited for.
    /// Looks without reaping (WNOWAIT): a leaked child stays visible to the next
    /// check, and a `ChildProcess` can still learn how its own child ended.
    public static func hasChildren() -> Bool {
        var info = siginfo_t()
        return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != ECHILD
    }

    /// libdispatch opens its event descriptors (epoll, eventfd, timerfd) once, on first
    /// use; a queue's writer thread and its timer use them. Done before a first snapshot.
    public static let dispatchWarmedUp: Void = {
        let fired = DispatchSemaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(1)) { fired.signal() }
        fired.wait()
    }()
}
