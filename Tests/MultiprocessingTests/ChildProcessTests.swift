import Foundation
import MessagePack
import Multiprocessing
import MultiprocessingTestSupport
import Testing

/// The helper executable the tests start as the child, built beside the test binary.
let helper = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    .deletingLastPathComponent().appendingPathComponent("MultiprocessingTestHelper").path

/// Real child processes, started from the tests through the helper executable.
@Suite("Child processes", .serialized, .checksLeaks)
struct ChildProcessTests {
    @Test("a child gets a struct holding a connection, and answers through it")
    func greet() throws {
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "greet", argument: Greeting(connection: theirs, name: "world"))
        theirs.close()  // the child has its own copy
        #expect(try mine.receive(String.self, timeout: .seconds(30)) == "hello, world")
        #expect(try child.join() == .exited(0))
        #expect(!child.isAlive)
        #expect(child.termination == .exited(0))
    }

    @Test("1,000 values go to a child and come back, in order")
    func echo() throws {
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "echo", argument: theirs)
        theirs.close()
        let orders = (0..<1000).map { Order(id: $0, item: "item-\($0)", price: Double($0) / 8) }
        for order in orders {
            try mine.send(order)
            #expect(try mine.receive(Order.self, timeout: .seconds(30)) == order)
        }
        mine.close()  // the child reads end of file and exits
        #expect(try child.join() == .exited(0))
    }

    @Test("two one-way pipes in one argument, each handed over")
    func twoPipes() throws {
        let (childReads, iWrite) = try Connection.pipe(duplex: false)
        let (iRead, childWrites) = try Connection.pipe(duplex: false)
        let child = try ChildProcess.start(executable: helper, entry: "sum", argument: TwoPipes(input: childReads, output: childWrites))
        childReads.close()
        childWrites.close()
        for value in 1...100 { try iWrite.send(value) }
        iWrite.close()
        #expect(try iRead.receive(Int.self, timeout: .seconds(30)) == 5050)
        #expect(try child.join() == .exited(0))
    }

    @Test("exit codes, and an entry's thrown error as exit code 1")
    func exitCodes() throws {
        #expect(try ChildProcess.start(executable: helper, entry: "exit", argument: Int32(7)).join() == .exited(7))
        #expect(try ChildProcess.start(executable: helper, entry: "fail", argument: "deliberate failure").join() == .exited(1))
        #expect(try ChildProcess.start(executable: helper, entry: "no-such-entry", argument: 0).join() == .exited(2))
    }

    @Test("terminate, kill, isAlive and join(timeout:)")
    func signals() throws {
        for (stop, signal) in [(true, SIGTERM), (false, SIGKILL)] {
            let (mine, theirs) = try Connection.pipe()
            let child = try ChildProcess.start(executable: helper, entry: "wait-forever", argument: theirs)
            theirs.close()
            #expect(try mine.receive(String.self, timeout: .seconds(30)) == "ready")
            #expect(child.isAlive)
            #expect(try child.join(timeout: .milliseconds(50)) == nil)
            if stop { try child.terminate() } else { try child.kill() }
            #expect(try child.join(timeout: .seconds(30)) == .signaled(signal))
            #expect(!child.isAlive)
            try child.kill()  // after it is reaped: does nothing
        }
    }

    @Test("a child reaped by another wait gets no signal: terminate() and kill() go through its pidfd, which no reused pid can answer")
    func signalsAfterAnotherWaitReaped() throws {
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "wait-forever", argument: theirs)
        theirs.close()
        #expect(try mine.receive(String.self, timeout: .seconds(30)) == "ready")
        // Someone else reaps it (a waitpid of another library): the object does not know.
        Glibc.kill(child.pid, SIGKILL)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, 0) == child.pid)
        // Its pid is free for another process now. Signalling the pid would fail with
        // ESRCH here, or reach that other process; through the pidfd it is nothing.
        try child.terminate()
        try child.kill()
    }

    @Test("a child has only stdin, stdout, stderr and the descriptors it was handed")
    func descriptors() throws {
        let (mine, theirs) = try Connection.pipe()
        let extra = try Connection.pipe()  // open in the parent, not handed over
        let child = try ChildProcess.start(executable: helper, entry: "descriptors", argument: theirs)
        theirs.close()
        let open = try mine.receive([Int].self, timeout: .seconds(30))
        #expect(open == [0, 1, 2, 4])  // 3 held the argument, and was closed after reading
        #expect(try child.join() == .exited(0))
        _ = extra
    }

    @Test("a connection cannot be sent as a message, only handed to a child")
    func connectionNotAMessage() throws {
        let (a, b) = try Connection.pipe()
        let error = #expect(throws: EncodingError.self) { try a.send(b) }
        #expect(String(describing: error).contains("child process's start argument"))
    }

    @Test("another program gets connections as descriptors 3, 4, …: Python's Connection(3) is a peer",
          .enabled(if: pythonWithMsgpack != nil, "python3 with the msgpack package is not installed: make test installs it"))
    func pythonChild() throws {
        let (mine, theirs) = try Connection.pipe()
        let python = try ChildProcess.start(
            executable: "/usr/bin/env",
            arguments: ["python3", "-c", """
                import msgpack
                from multiprocessing.connection import Connection
                c = Connection(3)
                value = msgpack.unpackb(c.recv_bytes())
                value["seen_by"] = "python"
                c.send_bytes(msgpack.packb(value))
                """],
            handing: [theirs])
        theirs.close()
        try mine.send(Order(id: 3, item: "tea", price: 1.25))
        let back = try mine.receive(MessagePackValue.self, timeout: .seconds(30))
        #expect(back["id"] == 3)
        #expect(back["seen_by"] == "python")
        #expect(try python.join() == .exited(0))
    }
}
