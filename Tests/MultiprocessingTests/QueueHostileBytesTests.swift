import Foundation
import Glibc
import Multiprocessing
import Testing

/// The queue's memfd descriptors open in this process, by number.
private func queueSegments() -> Set<Int32> {
    let files = FileManager.default
    let names = (try? files.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return Set(names.compactMap { name -> Int32? in
        guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
              target.contains("memfd:swift-multiprocessing-queue") else { return nil }
        return Int32(name)
    })
}

/// Bytes another program wrote into a queue's shared memory: a reader throws, or
/// returns an item, and never traps, reads past the ring, or allocates what a
/// record merely claims.
@Suite("Queues: hostile bytes in the shared memory")
struct QueueHostileBytesTests {
    @Test("random bytes and plausible record headers over the ring, 1,000 times: get throws or returns, never crashes or hangs")
    func scribbledRing() throws {
        var generator = SystemRandomNumberGenerator()
        var outcomes: [String: Int] = [:]
        for round in 0..<1000 {
            let before = queueSegments()
            let queue = try Queue<[UInt8]>(bufferSize: 64 << 10)
            guard let fd = queueSegments().subtracting(before).first else {
                Issue.record("the queue's memfd was not found")
                return
            }
            // Items first, so the scribble lands among real records. All fit the ring: an
            // item left waiting would hold a writer thread for good (no reader comes).
            for index in 0..<Int.random(in: 0...6) { try queue.put([UInt8](repeating: UInt8(index), count: Int.random(in: 0...9000))) }
            #expect(queue.pendingCount == 0)
            var status = stat()
            #expect(fstat(fd, &status) == 0)
            let size = Int(status.st_size)
            let base = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
            defer { munmap(base, size) }
            let ring = UnsafeMutableRawBufferPointer(start: base + (size - queue.bufferSize), count: queue.bufferSize)
            // Overwrite a few runs of the ring with random bytes, and a few record headers
            // with ones that look right (a kind this library writes, any length, and for a
            // first piece any total), where records begin: every 8 bytes.
            for _ in 0..<Int.random(in: 1...8) {
                let start = Int.random(in: 0..<ring.count, using: &generator)
                for offset in start..<min(ring.count, start + Int.random(in: 1...64)) { ring[offset] = UInt8.random(in: 0...255) }
            }
            // The first record's kind changed, its length kept (a whole item that now
            // claims to be the first piece of a longer one, whose rest never comes).
            if Bool.random() {
                let header = ring.load(fromByteOffset: 0, as: UInt64.self)
                ring.storeBytes(of: UInt64(0x5246_0001 + Int.random(in: 0...4)) << 32 | header & 0xffff_ffff, toByteOffset: 0, as: UInt64.self)
            }
            for _ in 0..<Int.random(in: 0...3) {
                // Half of them where the reader starts (0), the others anywhere.
                let at = Bool.random() ? 0 : Int.random(in: 0..<(ring.count / 8)) * 8
                let kind = UInt64(0x5246_0001 + Int.random(in: 0...4))
                let length = [UInt64.random(in: 0...64), UInt64.random(in: 0...UInt64(UInt32.max))].randomElement()!
                ring.storeBytes(of: kind << 32 | length, toByteOffset: at, as: UInt64.self)
                if at + 16 <= ring.count { ring.storeBytes(of: UInt64.random(in: 0...UInt64.max >> Int.random(in: 0...63)), toByteOffset: at + 8, as: UInt64.self) }
            }
            queue.maxFrameLength = round % 2 == 0 ? 1 << 20 : 1 << 30
            for _ in 0..<8 {
                do {
                    _ = try queue.get(timeout: .milliseconds(1))
                    outcomes["item", default: 0] += 1
                } catch let error as QueueError {
                    outcomes["\(error.code)", default: 0] += 1
                    if error.code == .empty { break }
                } catch is DecodingError {
                    outcomes["DecodingError", default: 0] += 1
                }
            }
            queue.close()
        }
        // Corruption was met and said (the scribbles are not all in unread space).
        #expect(outcomes["corrupted", default: 0] > 0, "\(outcomes)")
    }
}
