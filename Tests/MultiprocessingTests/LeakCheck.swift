import Foundation
@testable import Multiprocessing
import MultiprocessingTestSupport
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
        ProcessSnapshot.dispatchWarmedUp
        try _startAsyncWaiting()  // its epoll descriptor lives as long as the process
        let before = ProcessSnapshot()
        try await function()
        // A queue's writer thread may hold the queue (and its descriptors) a moment
        // after the test returns: look again for up to 5 seconds.
        var after = ProcessSnapshot()
        let deadline = Date().addingTimeInterval(5)
        while after.descriptors != before.descriptors && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            after = ProcessSnapshot()
        }
        #expect(after.descriptors == before.descriptors, "descriptors left open (or closed) by the test")
        #expect(after.sharedMemory.subtracting(before.sharedMemory).isEmpty, "entries left in /dev/shm")
        #expect(!ProcessSnapshot.hasChildren(), "a child process left unreaped")
    }
}

extension Trait where Self == LeakCheck {
    /// Checks, after each test, that it left no descriptor, /dev/shm entry or child behind.
    static var checksLeaks: Self { LeakCheck() }
}
