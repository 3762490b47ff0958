import Dispatch
import Foundation
import Testing

/// A suite trait: after each of its tests, this test process has the same
/// descriptors open as before, nothing new in /dev/shm, and no child unreaped.
///
/// The check needs the process to itself: other tests running meanwhile open files
/// and start processes too. So it runs when `make test` asks for it
/// (SWIFT_MULTIPROCESSING_LEAK_CHECK=1, with `swift test --no-parallel`), and is
/// skipped under a plain, parallel `swift test`.
struct LeakCheck: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    static let enabled = ProcessInfo.processInfo.environment["SWIFT_MULTIPROCESSING_LEAK_CHECK"] == "1"

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard Self.enabled, !test.isSuite else { return try await function() }
        Self.warmUp
        let before = Snapshot()
        try await function()
        // A queue's writer thread may hold the queue (and its descriptors) a moment
        // after the test returns: look again for up to 5 seconds.
        var after = Snapshot()
        let deadline = Date().addingTimeInterval(5)
        while after.descriptors != before.descriptors && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            after = Snapshot()
        }
        #expect(after.descriptors == before.descriptors, "descriptors left open (or closed) by the test")
        #expect(after.sharedMemory.subtracting(before.sharedMemory).isEmpty, "entries left in /dev/shm")
        #expect(!Self.hasChildren(), "a child process left unreaped")
    }

    /// libdispatch opens its event descriptors (epoll, eventfd, timerfd) once, on first
    /// use; a queue's writer thread and its timer use them.
    static let warmUp: Void = {
        let fired = DispatchSemaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(1)) { fired.signal() }
        fired.wait()
    }()

    /// Whether this process has a child, running or ended and not yet waited for.
    static func hasChildren() -> Bool {
        var status: Int32 = 0
        return waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD
    }

    struct Snapshot {
        var descriptors: [String] = []
        var sharedMemory: Set<String>

        init() {
            let files = FileManager.default
            descriptors = ((try? files.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { fd in
                // The directory listing itself is a descriptor, gone by now: no target.
                guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { return nil }
                return "\(fd) -> \(target)"
            }.sorted()
            sharedMemory = Set((try? files.contentsOfDirectory(atPath: "/dev/shm")) ?? [])
        }
    }
}

extension Trait where Self == LeakCheck {
    /// Checks, after each test, that it left no descriptor, /dev/shm entry or child behind.
    static var checksLeaks: Self { LeakCheck() }
}
