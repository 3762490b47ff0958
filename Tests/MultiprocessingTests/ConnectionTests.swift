import Foundation
import MessagePack
@testable import Multiprocessing
import Synchronization
import SystemPackage
import Testing

struct Order: Codable, Equatable, Sendable {
    var id: Int
    var item: String
    var price: Double
}

/// The repository's Fixtures folder.
let fixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func hexDecoded(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// python3 with the msgpack package, or nil (the tests that need it are then skipped, and say why).
/// (`system`, not Foundation's `Process`, which closes descriptors of its own some time
/// after the exit, under the descriptor check of whichever test runs then.)
let pythonWithMsgpack: String? = {
    system("python3 -c 'import msgpack' 2>/dev/null") == 0 ? "python3" : nil
}()

@Suite("Frames and connections", .checksLeaks)
struct ConnectionTests {
    @Test("headers are Python's: 4-byte big-endian length; -1 and an 8-byte length above 0x7fffffff")
    func headers() throws {
        #expect(_Frame.header(forLength: 0) == [0, 0, 0, 0])
        #expect(_Frame.header(forLength: 0x1d) == [0, 0, 0, 0x1d])
        #expect(_Frame.header(forLength: 0x7fff_ffff) == [0x7f, 0xff, 0xff, 0xff])
        #expect(_Frame.header(forLength: 0x8000_0000) == [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0])
        #expect(try _Frame.length(fromShortHeader: [0x7f, 0xff, 0xff, 0xff]) == 0x7fff_ffff)
        #expect(try _Frame.length(fromShortHeader: [0xff, 0xff, 0xff, 0xff]) == nil)
        #expect(try _Frame.length(fromLongHeader: [0, 0, 0, 1, 0, 0, 0, 0]) == 1 << 32)
        #expect(throws: ConnectionError.self) { try _Frame.length(fromShortHeader: [0xff, 0xff, 0xff, 0xfe]) }
    }

    @Test("frames written by Python's Connection.send_bytes are read as they were sent")
    func readsPythonFrames() throws {
        let stream = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent("frames/python-send-bytes.bin")))
        let index = try MessagePackValue(json: String(contentsOf: fixtures.appendingPathComponent("frames/python-send-bytes.json"), encoding: .utf8))
        guard case .array(let payloads)? = index["payloads"] else { Issue.record("no payloads"); return }
        let (reader, writer) = try Connection.pipe(duplex: false)
        try _writeFully(writer.fileDescriptor, stream)
        writer.close()
        for payload in payloads {
            guard case .string(let hex)? = payload["msgpack"] else { continue }
            #expect(try reader.receiveBytes() == hexDecoded(hex))
        }
        #expect(throws: ConnectionError.self) { try reader.receiveBytes() }  // end of file, at a boundary
        // The first frame is an Order as a Swift struct encodes it.
        let (r2, w2) = try Connection.pipe(duplex: false)
        try _writeFully(w2.fileDescriptor, stream)
        #expect(try r2.receive(Order.self) == Order(id: 1, item: "tea", price: 3.5))
    }

    @Test("frames we write are read by Python's Connection.recv_bytes",
          .enabled(if: pythonWithMsgpack != nil, "python3 with the msgpack package is not installed: make test installs it"))
    func pythonReadsOurFrames() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let (results, resultWriter) = try Connection.pipe(duplex: false)
        let python = try ChildProcess.start(
            executable: "/usr/bin/env",
            arguments: ["python3", "-c", """
                import json, msgpack
                from multiprocessing.connection import Connection
                c = Connection(3, writable=False)
                out = []
                try:
                    while True:
                        data = c.recv_bytes()
                        out.append(msgpack.unpackb(data) if data else "<empty frame>")
                except EOFError:
                    pass
                Connection(4, readable=False).send_bytes(json.dumps(out).encode())
                """],
            handing: [reader, resultWriter])
        reader.close()  // the child has its own copies
        resultWriter.close()
        try writer.send(Order(id: 7, item: "tea", price: 2.5))
        try writer.send("hello")
        try writer.send(Array(0..<5000))  // over 16384 bytes: header and body written apart
        try writer.sendBytes([UInt8]())
        writer.close()
        try #require(try results.poll(timeout: .seconds(30)), "python3 sent nothing back")
        let text = String(decoding: try results.receiveBytes(), as: UTF8.self)
        #expect(try python.join() == .exited(0))
        let values = try MessagePackValue(json: text)
        #expect(values[0] == ["id": 7, "item": "tea", "price": 2.5])
        #expect(values[1] == "hello")
        #expect(values[2] == .array((0..<5000).map { .uint(UInt64($0)) }))
        #expect(values[3] == "<empty frame>")
        #expect(values[4] == nil)
    }

    @Test("typed values cross both kinds of pipe", arguments: [true, false])
    func roundTrip(duplex: Bool) throws {
        let (a, b) = try Connection.pipe(duplex: duplex)
        let orders = (0..<100).map { Order(id: $0, item: "item-\($0)", price: Double($0) / 4) }
        for order in orders { try b.send(order) }
        for order in orders { #expect(try a.receive(Order.self) == order) }
        if duplex {
            try a.send(["back": 1])
            #expect(try b.receive([String: Int].self) == ["back": 1])
        } else {
            #expect(throws: ConnectionError.self) { try a.send(1) }
            #expect(throws: ConnectionError.self) { try b.receiveBytes() }
        }
    }

    @Test("a 64 MiB message arrives intact")
    func largeMessage() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        // 1024 copies of a 64 KiB block, each numbered, so a lost or repeated block shows.
        let block = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        var blocks = Data(capacity: 64 << 20)
        for number in 0..<1024 {
            blocks.append(contentsOf: [UInt8(number & 0xff), UInt8(number >> 8)])
            blocks.append(contentsOf: block.dropFirst(2))
        }
        let payload = blocks
        // The sender is a thread of its own: tests that block hold the few threads
        // Swift's task pool has, and a task could wait for them.
        let sent = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var sendError: (any Error)?
        Thread.detachNewThread {
            do { try writer.send(payload) } catch { sendError = error }
            sent.signal()
        }
        let received = try reader.receive(Data.self)
        sent.wait()
        #expect(sendError == nil)
        #expect(received == payload)
    }

    @Test("a frame over the maximum length is refused before its payload is read, and says so")
    func frameTooLong() throws {
        let (reader, writer) = try Connection.pipe()
        try writer.sendBytes([UInt8](repeating: 7, count: 1000))
        let error = #expect(throws: ConnectionError.self) { try reader.receiveBytes(maxLength: 999) }
        #expect(error?.code == .frameTooLong)
        #expect(error?.description.contains("1000 bytes is over the limit of 999") == true)
        // The payload is still in the pipe: the connection cannot be read further.
        #expect(throws: ConnectionError.self) { try reader.receiveBytes() }
        reader.maxFrameLength = 10
        let (r2, w2) = try Connection.pipe()
        r2.maxFrameLength = 10
        try w2.send("a string longer than ten bytes")
        #expect(throws: ConnectionError.self) { try r2.receive(String.self) }
    }

    @Test("end of file: at a frame boundary, and inside a frame; an impossible header")
    func endOfFile() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        writer.close()
        #expect(try reader.poll())  // end of file is readable
        let atBoundary = #expect(throws: ConnectionError.self) { try reader.receiveBytes() }
        #expect(atBoundary?.code == .endOfFile)

        let (r2, w2) = try Connection.pipe(duplex: false)
        try _writeFully(w2.fileDescriptor, [0, 0, 0, 10, 1, 2, 3])
        w2.close()
        let inside = #expect(throws: ConnectionError.self) { try r2.receiveBytes() }
        #expect(inside?.code == .endOfFile)
        #expect(inside?.description.contains("3 of 10 bytes") == true)

        let (r3, w3) = try Connection.pipe(duplex: false)
        try _writeFully(w3.fileDescriptor, [0xff, 0xff, 0xff, 0xfe])
        #expect((#expect(throws: ConnectionError.self) { try r3.receiveBytes() })?.code == .invalidFrame)
    }

    @Test("poll, receive(timeout:) and wait report what is readable, within the timeout")
    func pollAndWait() throws {
        let (a, b) = try Connection.pipe()
        let (c, d) = try Connection.pipe(duplex: false)
        #expect(try !b.poll())
        #expect(try wait([b, c], timeout: .zero).isEmpty)
        let start = ContinuousClock.now
        let timedOut = #expect(throws: ConnectionError.self) { try b.receive(Int.self, timeout: .milliseconds(200)) }
        #expect(timedOut?.code == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(10))  // generous: these machines are noisy
        try a.send(1)
        #expect(try b.poll(timeout: .seconds(5)))
        let ready = try wait([c, b], timeout: .seconds(5))
        #expect(ready.map(\.fileDescriptor) == [b.fileDescriptor])
        try d.send(2)
        #expect(try wait([b, c]).count == 2)
        #expect(try b.receive(Int.self) == 1)
        #expect(try c.receive(Int.self) == 2)
    }

    @Test("a header that claims a GiB, then end of file: .endOfFile, and memory follows the bytes that came")
    func lyingHeaderCostsLittleMemory() throws {
        // The old reader took memory for the whole claimed length at once.
        let (r1, w1) = try Connection.pipe(duplex: false)
        try _writeFully(w1.fileDescriptor, [0x3f, 0xff, 0xff, 0xff])
        w1.close()
        let short = try expectModestMemory {
            #expect(throws: ConnectionError.self) { try r1.receiveBytes() }
        }
        #expect(short?.code == .endOfFile)
        #expect(short?.description.contains("(0 of 1073741823 bytes)") == true)

        // An 8-byte length of 2^40, with the limit raised to let it through.
        let (r2, w2) = try Connection.pipe(duplex: false)
        r2.maxFrameLength = .max
        try _writeFully(w2.fileDescriptor, [0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0])
        w2.close()
        let long = try expectModestMemory {
            #expect(throws: ConnectionError.self) { try r2.receiveBytes() }
        }
        #expect(long?.code == .endOfFile)
        #expect(long?.description.contains("(0 of 1099511627776 bytes)") == true)

        // 3 MiB that did come, under a header claiming a GiB: the memory grew with them.
        let (r3, w3) = try Connection.pipe(duplex: false)
        let sender = BackgroundCall {
            try _writeFully(w3.fileDescriptor, [0x3f, 0xff, 0xff, 0xff] + [UInt8](repeating: 9, count: 3 << 20))
            w3.close()
        }
        let partial = try expectModestMemory {
            #expect(throws: ConnectionError.self) { try r3.receiveBytes() }
        }
        #expect(partial?.code == .endOfFile)
        #expect(partial?.description.contains("(3145728 of 1073741823 bytes)") == true)
        #expect(try sender.result(within: .seconds(5))?.get() != nil)
    }

    @Test("frames on either side of the first read's size, and one of 5 MiB of random bytes, arrive intact",
          arguments: [0, 1, 65_535, 65_536, 65_537, 131_073, 5 << 20])
    func framesOfEverySize(size: Int) throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let payload = randomBytes(size)
        // The sender is a thread of its own: the frame is larger than the pipe.
        let sender = BackgroundCall { try writer.sendBytes(payload) }
        let received = try reader.receiveBytes()
        #expect(try sender.result(within: .seconds(10))?.get() != nil)
        #expect(received.count == size)
        #expect(received == payload)
    }

    @Test("a closed connection refuses to be used; closing twice is harmless")
    func closed() throws {
        let (a, b) = try Connection.pipe()
        a.close()
        a.close()
        #expect((#expect(throws: ConnectionError.self) { try a.send(1) })?.code == .closed)
        #expect(throws: ConnectionError.self) { try b.receiveBytes() }  // b reads end of file
        #expect(throws: ConnectionError.self) { try b.send(1) }  // EPIPE, not a SIGPIPE that ends the process
    }
}

@Suite("Connections closed while another thread uses them", .checksLeaks)
struct ConnectionCloseTests {
    @Test("close() wakes a thread blocked in receive, which throws .closed and leaves the descriptor's next owner alone")
    func closeWakesReceiver() throws {
        let (reader, writer) = try Connection.pipe()  // the writer sends nothing
        let blocked = BackgroundCall { try reader.receive(Int.self) }
        Thread.sleep(forTimeInterval: 0.2)  // into its wait (the test holds without it, less sharply)
        try expectCloseIsSafe(reader, blocked: blocked)
        withExtendedLifetime(writer) {}
    }

    @Test("close() wakes a thread blocked in poll(timeout: nil), which throws .closed")
    func closeWakesPoller() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        let blocked = BackgroundCall { try reader.poll(timeout: nil) }
        Thread.sleep(forTimeInterval: 0.2)
        try expectCloseIsSafe(reader, blocked: blocked)
        withExtendedLifetime(writer) {}
    }

    @Test("close() wakes a thread blocked in wait, which returns the closed connection among the ready ones")
    func closeWakesWait() throws {
        let (a, peerA) = try Connection.pipe()
        let (b, peerB) = try Connection.pipe(duplex: false)
        let blocked = BackgroundCall { try wait([a, b]).map(\.fileDescriptor) }
        Thread.sleep(forTimeInterval: 0.2)
        a.close()
        let ready = try #require(blocked.result(within: .seconds(5)), "wait did not return within 5 s of close()")
        #expect(try ready.get() == [a.fileDescriptor])
        #expect((#expect(throws: ConnectionError.self) { try a.receiveBytes() })?.code == .closed)
        #expect(try wait([a, b], timeout: .zero).isEmpty)  // a closed connection is left out
        withExtendedLifetime((peerA, peerB)) {}
    }

    @Test("close() racing receive on another thread, 200 times: no descriptor made after the close is read or closed by it")
    func closeRacingReceive() throws {
        for round in 0..<200 {
            let (reader, writer) = try Connection.pipe(duplex: round % 2 == 0)
            let blocked = BackgroundCall { try reader.receiveBytes() }
            if round % 4 != 0 { usleep(UInt32.random(in: 0...500)) }  // close before, while and after it begins to wait
            reader.close()
            let fresh = try FreshDescriptors(tag: UInt8(truncatingIfNeeded: round))
            let outcome = try #require(blocked.result(within: .seconds(5)), "receive did not return within 5 s of close() (round \(round))")
            #expect(outcome.connectionErrorCode == .closed, "round \(round): \(outcome)")
            try fresh.expectIntact()
            withExtendedLifetime(writer) {}
        }
    }

    @Test("the wake-up eventfd: none for an end that only sends; closed with the connection, by close() or deinit")
    func wakeUpDescriptor() throws {
        let (reader, writer) = try Connection.pipe(duplex: false)
        try writer.send(1)
        #expect(writer.wakeUpDescriptor == nil)
        #expect(try reader.poll())
        #expect(reader.wakeUpDescriptor != nil)
        reader.close()
        #expect(reader.wakeUpDescriptor == nil)

        let before = openEventDescriptors()
        for round in 0..<100 {
            let (a, b) = try Connection.pipe()
            #expect(try !a.poll())
            #expect(try wait([a, b], timeout: .zero).isEmpty)
            if round % 2 == 0 { a.close() }  // the others: deinit
        }
        // Generous by 2: libdispatch may open one of its own meanwhile. A leak is 200.
        #expect(openEventDescriptors() <= before + 2)
    }

    /// Closes `connection` while `blocked` waits on it, opens new descriptors at
    /// once (with the old close(2), the first of them took its number while the
    /// call still waited on it), and expects the call to end promptly with
    /// `.closed` and the new descriptors to be untouched. Then a frame crosses a
    /// connection made when the number is free again, likely on that number.
    private func expectCloseIsSafe<T>(
        _ connection: Connection, blocked: BackgroundCall<T>, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let number = connection.fileDescriptor
        let start = ContinuousClock.now
        connection.close()
        let fresh = try FreshDescriptors(tag: 1)
        let outcome = try #require(blocked.result(within: .seconds(5)), "the call did not return within 5 s of close()", sourceLocation: sourceLocation)
        #expect(ContinuousClock.now - start < .seconds(5), sourceLocation: sourceLocation)
        #expect(outcome.connectionErrorCode == .closed, "\(outcome)", sourceLocation: sourceLocation)
        try fresh.expectIntact(sourceLocation: sourceLocation)

        let (left, right) = try Connection.pipe()
        let reusing = [left, right].first { $0.fileDescriptor == number }
        let other = reusing === left ? right : left
        try other.sendBytes([7, 8, 9])
        #expect(try (reusing ?? right).receiveBytes() == [7, 8, 9], sourceLocation: sourceLocation)
    }
}

/// New connections, each with a frame waiting in it, made just after a close: an
/// old call that read or closed their descriptors would show.
struct FreshDescriptors {
    private let pipes: [(reader: Connection, writer: Connection)]
    private let targets: [String?]
    private let tag: UInt8

    init(tag: UInt8) throws {
        pipes = try (0..<2).map { _ in try Connection.pipe(duplex: false) }
        targets = pipes.flatMap { [$0.reader, $0.writer] }.map { descriptorTarget($0.fileDescriptor) }
        self.tag = tag
        for (index, pipe) in pipes.enumerated() { try pipe.writer.sendBytes([tag, UInt8(index)]) }
    }

    /// Each descriptor is open and names the file it named, and each frame is there.
    func expectIntact(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ends = pipes.flatMap { [$0.reader, $0.writer] }
        for (end, target) in zip(ends, targets) {
            #expect(fcntl(end.fileDescriptor.rawValue, F_GETFD) != -1, "descriptor \(end.fileDescriptor.rawValue) was closed", sourceLocation: sourceLocation)
            #expect(descriptorTarget(end.fileDescriptor) == target, sourceLocation: sourceLocation)
        }
        for (index, pipe) in pipes.enumerated() {
            #expect(try pipe.reader.poll(), "the frame in descriptor \(pipe.reader.fileDescriptor.rawValue) was taken", sourceLocation: sourceLocation)
            #expect(try pipe.reader.receiveBytes() == [tag, UInt8(index)], sourceLocation: sourceLocation)
        }
    }
}

/// What a descriptor names ("pipe:[1234]"), from /proc/self/fd.
func descriptorTarget(_ fd: FileDescriptor) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd.rawValue)")
}

/// How many eventfds this process has open.
func openEventDescriptors() -> Int {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == "anon_inode:[eventfd]" }.count
}

/// A call on a thread of its own (a call that blocks must not hold one of the few
/// threads Swift's task pool has), whose outcome the test waits for with a limit.
final class BackgroundCall<Value: Sendable>: Sendable {
    private let outcome = Mutex<Result<Value, any Error>?>(nil)
    private let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> Value) {
        Thread.detachNewThread { [self] in
            let result = Result { try body() }
            outcome.withLock { $0 = result }
            finished.signal()
        }
    }

    /// The call's outcome, or nil if it has not ended within `limit`.
    func result(within limit: Duration) -> Result<Value, any Error>? {
        let nanoseconds = Int(limit.components.seconds) * 1_000_000_000 + Int(limit.components.attoseconds / 1_000_000_000)
        guard finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        finished.signal()  // for a later look
        return outcome.withLock { $0 }
    }
}

extension Result {
    /// The `ConnectionError` code the call threw, if it threw one.
    var connectionErrorCode: ConnectionError.Code? {
        guard case .failure(let error) = self else { return nil }
        return (error as? ConnectionError)?.code
    }
}

/// `count` random bytes.
func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let raw = UnsafeMutableRawBufferPointer(buffer)
        var offset = 0
        while offset < count {
            var word = generator.next()
            let n = min(8, count - offset)
            withUnsafeBytes(of: &word) { raw[offset..<offset + n].copyBytes(from: $0.prefix(n)) }
            offset += n
        }
        initialized = count
    }
}

/// Runs `body` and expects this process's peak resident memory (VmHWM, reset to
/// the current size first where Linux allows it) to grow by far less than the
/// gigabyte a lying header claims: the old reader took all of it at once.
/// Generous (256 MiB): tests running beside this one in a parallel `swift test` use memory too.
@discardableResult
func expectModestMemory<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) throws -> T {
    resetPeakResidentMemory()
    let before = try #require(memoryStatus("VmHWM"), sourceLocation: sourceLocation)
    let result = try body()
    let after = try #require(memoryStatus("VmHWM"), sourceLocation: sourceLocation)
    #expect(after - before < 256 << 20, "the peak resident memory grew by \((after - before) >> 20) MiB", sourceLocation: sourceLocation)
    return result
}

/// A size from /proc/self/status ("VmHWM", "VmRSS"), in bytes.
func memoryStatus(_ field: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }
    return nil
}

/// Resets VmHWM to the current resident size (writing 5 to /proc/self/clear_refs).
/// Where that is not allowed, VmHWM keeps its earlier peak, which is still far
/// below a gigabyte more than the current size.
func resetPeakResidentMemory() {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    guard fd >= 0 else { return }
    _ = write(fd, "5", 1)
    close(fd)
}

@Suite("README: connections", .checksLeaks)
struct ConnectionReadmeTests {
    @Test("the README's connection example, as written there")
    func example() throws {
        let (left, right) = try Connection.pipe()            // duplex: a socket pair; pipe(duplex: false): a pipe
        try left.send(["id": 1, "qty": 3])                   // any Encodable, as one MessagePack frame
        let order = try right.receive([String: Int].self, timeout: .seconds(1))
        let ready = try wait([right], timeout: .zero)        // Python's multiprocessing.connection.wait
        #expect(order == ["id": 1, "qty": 3])
        #expect(ready.isEmpty)
    }
}
