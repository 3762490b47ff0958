import Foundation
import MessagePack
@testable import Multiprocessing
import MultiprocessingTestSupport
import Synchronization
import SystemPackage
import Testing

/// The async forms of a connection: waiting without a thread, cancellation that
/// loses nothing, close() that ends waits, and real processes on the other side.
@Suite("Connections in Swift concurrency", .serialized, .checksLeaks)
struct ConnectionAsyncTests {
    @Test("values go to a child (echo) and come back with async send and receive, in order; 3 MiB too")
    func echo() async throws {
        let (mine, theirs) = try Connection.pipe()
        let child = try ChildProcess.start(executable: helper, entry: "echo", argument: theirs)
        theirs.close()  // the child has its own copy
        for order in (0..<500).map({ Order(id: $0, item: "item-\($0)", price: Double($0) / 8) }) {
            try await mine.send(order)
            #expect(try await mine.receive(Order.self, timeout: .seconds(30)) == order)
        }
        // More than a socket holds: the send waits for room, the receive for the rest.
        let large = Data(randomBytes(3 << 20))
        try await mine.send(large)
        #expect(try await mine.receive(Data.self, timeout: .seconds(60)) == large)
        mine.close()  // the child reads end of file and exits
        #expect(try joined(child) == .exited(0))
    }

    @Test("for try await over messages: exactly the N values a child sent, in order, then the end", arguments: [true, false])
    func messagesFromChild(duplex: Bool) async throws {
        let (mine, theirs) = try Connection.pipe(duplex: duplex)  // one-way: mine reads
        let child = try ChildProcess.start(executable: helper, entry: "send-numbers", argument: Numbers(connection: theirs, count: 2000))
        theirs.close()
        var received: [Int] = []
        for try await value in mine.messages(Int.self) { received.append(value) }
        #expect(received == Array(0..<2000))
        #expect(try joined(child) == .exited(0))
        await #expect(throws: ConnectionError.self) { try await mine.receiveBytes() }  // still end of file
    }

    @Test("a receive cancelled while a frame arrives in pieces loses nothing: it or the next receive gets that frame, once",
          arguments: [true, false])
    func cancelledReceiveLosesNothing(duplex: Bool) async throws {
        let (reader, writer) = try Connection.pipe(duplex: duplex)
        var (returned, cancelledInsideFrame) = (0, 0)
        for round in 0..<150 {
            // Each frame differs (its round first), so one skipped or read twice shows;
            // every 5th is larger than the first read and than a socket holds.
            let payload = withUnsafeBytes(of: UInt32(round)) { Array($0) } + randomBytes(round % 5 == 4 ? Int.random(in: 70_000...300_000) : Int.random(in: 0...2000))
            let frame = _Frame.header(forLength: payload.count) + payload
            let split = Int.random(in: 1..<frame.count)  // inside the header too
            // Even rounds: the cancellation comes at a random moment. Odd rounds: once the
            // receive has taken the first piece, and the rest is sent only after it.
            let surelyInside = round % 2 == 1
            let proceed = DispatchSemaphore(value: 0)
            let pause = UInt32.random(in: 0...3000)
            let fd = writer.fileDescriptor
            let sender = BackgroundCall {
                try _writeFully(fd, Array(frame[..<split]))
                if surelyInside { _ = proceed.wait(timeout: .now() + 60) } else { usleep(pause) }
                try _writeFully(fd, Array(frame[split...]))
            }
            let receiving = Task { try await reader.receiveBytes() }
            if surelyInside {
                let tookFirstPiece = try await eventually { reader.bytesOfUnfinishedFrame == split }
                try #require(tookFirstPiece, "round \(round): the receive did not take the first piece")
            }
            try await Task.sleep(for: .microseconds(Int.random(in: 0...4000)))
            receiving.cancel()
            let outcome = await receiving.result
            let held = reader.bytesOfUnfinishedFrame
            proceed.signal()
            switch outcome {
            case .success(let bytes):
                returned += 1
                #expect(!surelyInside, "round \(round): returned a frame whose end was not sent yet")
                #expect(bytes == payload, "round \(round): the cancelled receive returned another frame")
            case .failure(let error) where error is CancellationError:
                if held > 0 { cancelledInsideFrame += 1 }
                if surelyInside { #expect(held == split, "round \(round): the cancelled receive held \(held) of \(split) bytes") }
                // The next receive, async or blocking by turns, goes on with the same frame.
                let next = round % 4 < 2 ? try await reader.receiveBytes() : try await onThread { try reader.receiveBytes() }
                #expect(next == payload, "round \(round): the frame after a cancelled receive (split at \(split) of \(frame.count))")
            case .failure(let error):
                Issue.record("round \(round): \(error)")
            }
            #expect(reader.bytesOfUnfinishedFrame == 0)
            let sent = try await eventually { sender.result(within: .zero) != nil }
            _ = try #require(sender.result(within: .zero), "round \(round): the sender did not finish (\(sent))").get()
        }
        // Nothing is left over: the next frame is the next one sent.
        try await writer.sendBytes([42])
        #expect(try await reader.receiveBytes() == [42])
        #expect(cancelledInsideFrame >= 75, "only \(cancelledInsideFrame) receives were cancelled inside a frame")
        #expect(returned <= 75)
    }

    @Test("receive(timeout:) runs out with half a frame here: .timedOut, and the next receive gets the whole frame")
    func timeoutInsideFrame() async throws {
        let (reader, writer) = try Connection.pipe()
        let value = String(repeating: "tea ", count: 50)
        let frame = try { let payload = try MessagePackEncoder().encode(value); return _Frame.header(forLength: payload.count) + payload }()
        try _writeFully(writer.fileDescriptor, Array(frame[..<100]))
        let start = ContinuousClock.now
        let error = await #expect(throws: ConnectionError.self) { try await reader.receive(String.self, timeout: .milliseconds(200)) }
        let elapsed = ContinuousClock.now - start
        #expect(error?.code == .timedOut)
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(10))
        #expect(reader.bytesOfUnfinishedFrame == 100)
        try _writeFully(writer.fileDescriptor, Array(frame[100...]))
        #expect(try await reader.receive(String.self, timeout: .seconds(10)) == value)
    }

    @Test("a send cancelled after its frame began writes the frame to its end and returns; cancelled before, it sends nothing",
          arguments: [true, false])
    func cancelledSend(duplex: Bool) async throws {
        let (reader, writer) = try Connection.pipe(duplex: duplex)
        // 4 MiB: more than a pipe (1 MiB) or a socket holds, so the send waits for room mid-frame.
        let payload = randomBytes(4 << 20)
        let sending = Task { try await writer.sendBytes(payload) }
        #expect(try await eventually { try reader.poll() })  // its first bytes arrived
        try await Task.sleep(for: .milliseconds(50))
        sending.cancel()
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await onThread { try reader.receiveBytes() } == payload)
        #expect(try await sending.result.get() == ())

        // Cancelled before it starts: nothing sent.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await writer.sendBytes([9, 9, 9])
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        try await writer.sendBytes([7])
        #expect(try await reader.receiveBytes() == [7])
    }

    @Test("a send waiting for room in a full pipe, cancelled, has written nothing; the frames before it arrive, then the next")
    func cancelledSendOnFullPipe() async throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let filler = [UInt8](repeating: 1, count: 1000)
        var filled = 0
        while try _isReadyNow(writer.fileDescriptor, writing: true) {
            try await writer.sendBytes(filler)
            filled += 1
        }
        let waiting = Task { try await writer.sendBytes([9, 9, 9]) }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        for _ in 0..<filled { #expect(try await reader.receiveBytes() == filler) }
        try await writer.sendBytes([7])
        #expect(try await reader.receiveBytes() == [7])
        #expect(try !reader.poll())
    }

    @Test("close() while an async receive waits: it throws .closed promptly, and the descriptor's next owner is left alone")
    func closeEndsReceive() async throws {
        var slow = 0
        for round in 0..<40 {
            let (reader, writer) = try Connection.pipe(duplex: round % 2 == 0)
            if round % 4 == 1 { try _writeFully(writer.fileDescriptor, [0, 0, 0, 9, 1]) }  // inside a frame
            let waiting = Task { try await reader.receiveBytes() }
            try await Task.sleep(for: .milliseconds(round % 3 == 0 ? 30 : 2))
            let start = ContinuousClock.now
            reader.close()
            let fresh = try FreshDescriptors(tag: UInt8(round))
            let outcome = await waiting.result
            // The reactor's once-a-second tick would end it too, but later: count the slow ones.
            if ContinuousClock.now - start > .milliseconds(300) { slow += 1 }
            #expect(outcome.connectionErrorCode == .closed, "round \(round): \(outcome)")
            try fresh.expectIntact()
            withExtendedLifetime(writer) {}
        }
        #expect(slow <= 4, "\(slow) of 40 waits took over 300 ms to end after close()")
    }

    @Test("close() while an async send waits for room: it throws .closed promptly")
    func closeEndsSend() async throws {
        let (reader, writer) = try Connection.pipe()
        let sending = Task { try await writer.sendBytes(randomBytes(4 << 20)) }
        #expect(try await eventually { try reader.poll() })
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        writer.close()
        let outcome = await sending.result
        #expect(outcome.connectionErrorCode == .closed, "\(outcome)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("messages: close() ends the loop normally; end of file inside a frame throws .endOfFile")
    func messagesEnd() async throws {
        let (reader, writer) = try Connection.pipe()
        let seen = SharedCount()
        let loop = Task {
            var values: [Int] = []
            for try await value in reader.messages(Int.self) {
                values.append(value)
                seen.value.add(1, ordering: .relaxed)
            }
            return values
        }
        try await writer.send(1)
        try await writer.send(2)
        let deadline = ContinuousClock.now + .seconds(30)
        while seen.value.load(ordering: .relaxed) < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        reader.close()
        #expect(try await loop.value == [1, 2])

        let (r2, w2) = try Connection.pipe(duplex: false)
        try await w2.send(1)
        try _writeFully(w2.fileDescriptor, [0, 0, 0, 5, 1, 2])
        w2.close()
        var values: [Int] = []
        let error = await #expect(throws: ConnectionError.self) {
            for try await value in r2.messages(Int.self) { values.append(value) }
        }
        #expect(values == [1])
        #expect(error?.code == .endOfFile)
    }

    @Test("64 tasks waiting in receive hold no thread: other tasks run and finish meanwhile; then each gets its value",
          .timeLimit(.minutes(2)))
    func waitingHoldsNoThread() async throws {
        let pairs = try (0..<64).map { _ in try Connection.pipe() }
        defer { pairs.forEach { $0.0.close() } }  // ends the waits if the test fails
        let threadsBefore = threadCount()
        let started = SharedCount()
        let receivers = pairs.map { pair in
            Task {
                started.value.add(1, ordering: .relaxed)
                return try await pair.0.receive(Int.self)
            }
        }
        // Other work, on a pool of about as many threads as cores (2 here). This task
        // waits on a thread of its own below, rather than suspending, so that if
        // waiting receives held the rest of the threads the test fails instead of hanging.
        let othersDone = DispatchSemaphore(value: 0)
        let others = SharedCount()
        for value in 0..<200 {
            Task {
                try await Task.sleep(for: .milliseconds(1 + value % 10))
                if others.value.add(1, ordering: .relaxed).newValue == 200 { othersDone.signal() }
            }
        }
        #expect(wait(othersDone, upTo: .seconds(30)), "other tasks could not run while 64 receives waited (\(others.value.load(ordering: .relaxed)) of 200 ran)")
        #expect(waitUntil(upTo: .seconds(30)) { started.value.load(ordering: .relaxed) == 64 })
        usleep(100_000)  // into their waits
        // A thread per waiting receive would be 64 more, for as long as they wait. The
        // fewest of a few looks, so that threads of suites running beside this one pass.
        let added = (0..<5).map { _ in usleep(20_000); return threadCount() - threadsBefore }.min()!
        #expect(added < 32, "\(added) more threads while 64 receives wait")
        for (index, pair) in pairs.enumerated() { try await pair.1.send(1000 + index) }
        for (index, receiver) in receivers.enumerated() {
            #expect(try await receiver.value == 1000 + index)
        }
    }
}

/// A count shared between tasks.
private final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}

/// How the child ended (the blocking `join`, from a synchronous context).
private func joined(_ child: ChildProcess) throws -> ChildProcess.Termination {
    try child.join()
}

/// Runs a blocking call on a thread of its own (not one of the task pool's few),
/// suspending until it returns, up to 60 seconds.
private func onThread<T: Sendable>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    let call = BackgroundCall(body)
    let deadline = ContinuousClock.now + .seconds(60)
    while true {
        if let outcome = call.result(within: .zero) { return try outcome.get() }
        try #require(ContinuousClock.now < deadline, "the call did not return within 60 s", sourceLocation: sourceLocation)
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// Whether `condition` comes to hold within 30 seconds, looking every millisecond (suspending between).
private func eventually(_ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while try !condition() {
        if ContinuousClock.now > deadline { return false }
        try await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// Waits on this thread (deliberately not suspending) for a semaphore.
private func wait(_ semaphore: DispatchSemaphore, upTo limit: Duration) -> Bool {
    semaphore.wait(timeout: .now() + .milliseconds(Int(limit.components.seconds) * 1000)) == .success
}

/// Waits on this thread until `condition` holds, looking every millisecond.
private func waitUntil(upTo limit: Duration, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now > deadline { return false }
        usleep(1000)
    }
    return true
}

/// The threads this process has now.
private func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
}
