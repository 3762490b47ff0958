import Foundation
import Multiprocessing
import MultiprocessingTestSupport
import Synchronization
import Testing

/// The async forms of `ChildProcess`: `join` without a thread, and the scoped `run`.
@Suite("Child processes, async", .serialized, .checksLeaks)
struct ChildProcessAsyncTests {
    @Test("async join returns how the child ended: exit code or signal")
    func joinReturnsTermination() async throws {
        #expect(try await ChildProcess.start(executable: helper, entry: "exit", argument: Int32(7)).join() == .exited(7))
        #expect(try await ChildProcess.start(executable: helper, entry: "fail", argument: "deliberate failure").join() == .exited(1))

        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "wait-forever", argument: theirs)
        theirs.close()
        try await expectReady(mine)
        #expect(try await child.join(timeout: .milliseconds(50)) == nil)
        #expect(child.isAlive)
        try child.kill()
        #expect(try await child.join(timeout: .seconds(30)) == .signaled(SIGKILL))
        #expect(try await child.join() == .signaled(SIGKILL))  // again: the stored termination
        #expect(child.termination == .signaled(SIGKILL))
    }

    @Test("many children awaited at once while other tasks go on: no thread is blocked")
    func manyJoinsBlockNoThread() async throws {
        let count = 64
        let (childrenRead, iWrite) = try Connection.pipe(duplex: false)
        var children: [ChildProcess] = []
        for index in 0..<count {
            let work = ExitOnClose(connection: childrenRead, code: Int32(index % 100), seconds: 30)
            children.append(try ChildProcess.start(executable: helper, entry: "exit-on-close", argument: work))
        }
        childrenRead.close()
        try await withThrowingTaskGroup(of: (Int, ChildProcess.Termination).self) { group in
            for (index, child) in children.enumerated() {
                group.addTask {
                    (index, try await child.join())
                }
            }
            // With 64 joins each holding a thread, the pool (2 threads here) would
            // run nothing else until the children exit, 30 s from now.
            let clock = ContinuousClock()
            let start = clock.now
            var ticks = 0
            for _ in 0..<20 {
                try await Task.sleep(for: .milliseconds(10))
                ticks += 1
            }
            #expect(clock.now - start < .seconds(10), "the test's own task waited for a thread")
            #expect(ticks == 20)
            #expect(children.allSatisfy { $0.termination == nil }, "a child was reaped while running")
            iWrite.close()  // every child sees end of file, and exits
            var seen = 0
            for try await (index, termination) in group {
                #expect(termination == .exited(Int32(index % 100)))
                seen += 1
            }
            #expect(seen == count)
        }
    }

    /// Starts `entry` (which says "ready", then waits) in `ChildProcess.run`, in a
    /// task; cancels the task once the child is ready. Returns the child and how long
    /// the cancelled task took to end.
    func cancelScoped(_ entry: String, gracePeriod: Duration) async throws -> (child: ChildProcess, elapsed: Duration) {
        let (mine, theirs) = try Connection.pipe()
        let started = Slot()
        let clock = ContinuousClock()
        let task = Task {
            try await ChildProcess.run(executable: helper, entry: entry, argument: theirs, gracePeriod: gracePeriod) { child in
                theirs.close()
                started.child = child
                try await Task.sleep(for: .seconds(3600))
            }
        }
        try await expectReady(mine)
        let cancelled = clock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        return (try #require(started.child), clock.now - cancelled)
    }

    @Test("cancelling the task that holds ChildProcess.run ends the child with SIGTERM, within the grace period")
    func cancelledScopeTerminates() async throws {
        let (child, elapsed) = try await cancelScoped("wait-forever", gracePeriod: .seconds(60))
        #expect(elapsed < .seconds(20), "the child outlived SIGTERM")
        #expect(child.termination == .signaled(SIGTERM))
        #expect(!child.isAlive)
    }

    @Test("a child that ignores SIGTERM is killed once the grace period is over")
    func ignoredTerminateIsKilled() async throws {
        let (child, elapsed) = try await cancelScoped("ignore-terminate", gracePeriod: .milliseconds(500))
        #expect(elapsed >= .milliseconds(450), "killed before the grace period was over")
        #expect(elapsed < .seconds(20))
        #expect(child.termination == .signaled(SIGKILL))
    }

    @Test("a body that throws stops the child, and its error comes out of run")
    func throwingBodyStopsChild() async throws {
        struct Deliberate: Error, Equatable {}
        let (mine, theirs) = try Connection.pipe()
        let started = Slot()
        await #expect(throws: Deliberate()) {
            try await ChildProcess.run(executable: helper, entry: "wait-forever", argument: theirs, gracePeriod: .seconds(60)) { child in
                theirs.close()
                started.child = child
                try await expectReady(mine)
                throw Deliberate()
            }
        }
        let child = try #require(started.child)
        #expect(child.termination == .signaled(SIGTERM))
    }

    @Test("a body that returns: run waits for the child's end, and returns the body's value")
    func returningBodyAwaitsChild() async throws {
        let (childReads, iWrite) = try Connection.pipe(duplex: false)
        let started = Slot()
        let value = try await ChildProcess.run(executable: helper, entry: "exit-on-close", argument: ExitOnClose(connection: childReads, code: 3)) { child in
            childReads.close()
            started.child = child
            #expect(child.termination == nil)
            iWrite.close()  // the child sees end of file, and exits on its own
            return "body's value"
        }
        #expect(value == "body's value")
        #expect(try #require(started.child).termination == .exited(3))
    }

    @Test("a cancelled async join leaves the child running, and joinable")
    func cancelledJoinLeavesChild() async throws {
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "wait-forever", argument: theirs)
        theirs.close()
        try await expectReady(mine)
        let waiting = Task { try await child.join() }
        try await Task.sleep(for: .milliseconds(100))  // suspended in the join by now, most likely
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(child.termination == nil)
        #expect(child.isAlive)
        try child.terminate()
        #expect(try await child.join() == .signaled(SIGTERM))
    }
}

/// Where a scope's body leaves its child for the test to look at afterwards.
private final class Slot: Sendable {
    private let stored = Mutex<ChildProcess?>(nil)
    var child: ChildProcess? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}

/// Waits, without blocking a thread, for a child's "ready".
private func expectReady(_ connection: Connection, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while try !connection.poll(), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(5))
    }
    // `await`: Connection's async `receive`, where it exists; it does not wait here.
    #expect(try await connection.receive(String.self, timeout: .zero) == "ready", sourceLocation: sourceLocation)
}

