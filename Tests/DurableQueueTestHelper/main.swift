// The child program DurableQueue's multi-process tests start (beside the test binary):
//   DurableQueueTestHelper produce URL QUEUE FIRST COUNT
//       puts the integers FIRST..<FIRST+COUNT, then says "produced COUNT".
//   DurableQueueTestHelper consume URL QUEUE IDLE_MS
//       gets and acknowledges integers until none comes for IDLE_MS, then says
//       "acknowledged COUNT SUM SUM_OF_SQUARES REDELIVERED" (only those whose taskDone succeeded).
//   DurableQueueTestHelper hold URL QUEUE COUNT LEASE_MS
//       leases COUNT items with a lease of LEASE_MS, says "holding ID ID ...", and waits to be killed.
// It says what it did as one String frame on the connection the test hands it as descriptor 3.
import Foundation
import Multiprocessing
import MultiprocessingPostgres
import SystemPackage

struct Usage: Error, CustomStringConvertible {
    var description: String {
        "usage: DurableQueueTestHelper produce URL QUEUE FIRST COUNT | consume URL QUEUE IDLE_MS | hold URL QUEUE COUNT LEASE_MS"
    }
}

func integer(_ arguments: [String], _ index: Int) throws -> Int {
    guard index < arguments.count, let value = Int(arguments[index]) else { throw Usage() }
    return value
}

let results = Connection(owning: FileDescriptor(rawValue: 3), readable: false)

func say(_ line: String) async throws {
    try await results.send(line)
}

func run(_ arguments: [String]) async throws {
    guard arguments.count >= 4 else { throw Usage() }
    let (command, url, name) = (arguments[1], arguments[2], arguments[3])
    switch command {
    case "produce":
        let (first, count) = (try integer(arguments, 4), try integer(arguments, 5))
        let queue = try DurableQueue<Int>(url: url, name: name)
        for value in first..<(first + count) { try await queue.put(value) }
        await queue.close()
        try await say("produced \(count)")
    case "consume":
        let idle = try integer(arguments, 4)
        let queue = try DurableQueue<Int>(url: url, name: name)
        var (count, sum, squares, redelivered) = (0, 0, 0, 0)
        while true {
            let delivery: DurableQueue<Int>.Delivery
            do {
                delivery = try await queue.get(timeout: .milliseconds(idle))
            } catch let error as DurableQueueError where error.code == .empty {
                break
            }
            do {
                try await queue.taskDone(delivery)
            } catch let error as DurableQueueError where error.code == .leaseLost {
                continue   // someone else has it now: theirs is the acknowledgement that counts
            }
            count += 1
            sum += delivery.value
            squares += delivery.value * delivery.value
            if delivery.attempt > 1 { redelivered += 1 }
        }
        await queue.close()
        try await say("acknowledged \(count) \(sum) \(squares) \(redelivered)")
    case "hold":
        let (count, lease) = (try integer(arguments, 4), try integer(arguments, 5))
        let queue = try DurableQueue<Int>(url: url, name: name, leaseDuration: .milliseconds(lease))
        var ids: [Int64] = []
        for _ in 0..<count { ids.append(try await queue.get(timeout: .seconds(30)).id) }
        try await say("holding " + ids.map(String.init).joined(separator: " "))
        while true { try await Task.sleep(for: .seconds(3600)) }
    default:
        throw Usage()
    }
}

do {
    try await run(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("DurableQueueTestHelper: \(error)\n".utf8))
    exit(1)
}
