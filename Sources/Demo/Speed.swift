// The speed scene: small items for 2 seconds from one producer process to one consumer
// process, through a Queue<Item> and through Python's multiprocessing.Queue
// (Scripts/python-queue-speed.py), on this machine, now. It checks that every item
// arrived once, in order and whole, and that the Swift queue moved at least twice
// Python's items per second: a debug build of this program does not (it moves fewer
// than Python), and a release build has moved 3 to 6 times as many here, with other
// programs taking the cores.
import Foundation
import Multiprocessing

/// A small item, as the benchmarks' `Item`: 5 fields, about 57 bytes as MessagePack.
/// The Python half sends the same item as a dict.
struct Item: Codable, Sendable, Equatable {
    var id: Int
    var name: String
    var score: Double
    var tags: [String]
    var ok: Bool

    /// Item `id`, as the producer makes it and the consumer expects it.
    static func numbered(_ id: Int) -> Item {
        Item(id: id, name: "item-\(id)", score: Double(id) * 0.5, tags: ["a", "b", "c"], ok: true)
    }

    /// After the last item.
    static let end = Item(id: -1, name: "", score: 0, tags: [], ok: false)
}

/// The producer's queue, and the connection on which it says it is ready, is told the
/// deadline, and says how many items it put.
struct SpeedRun: Codable, Sendable {
    var items: Queue<Item>
    var control: Connection
}

/// One half's figures, over its turns.
struct SpeedResult: Decodable {
    /// Items the producer put, the consumer received, received before the deadline,
    /// and received other than as the next item, whole.
    var put = 0
    var received = 0
    var inTime = 0
    var wrong = 0
    /// The producers that did not exit with code 0.
    var failedProducers = 0
    /// Python's version.
    var python: String?

    enum CodingKeys: String, CodingKey {
        case put, received, wrong, python
        case inTime = "in_time", failedProducers = "failed_producers"
    }

    static func += (total: inout SpeedResult, turn: SpeedResult) {
        total.put += turn.put
        total.received += turn.received
        total.inTime += turn.inTime
        total.wrong += turn.wrong
        total.failedProducers += turn.failedProducers
        total.python = turn.python
    }
}

/// Each half runs for 2 seconds, in 2 turns of 1 second that alternate with the other
/// half's, so that a moment when something else on the machine takes a core falls on both.
let speedTurns = 2
let speedTurnSeconds = 1
let speedSeconds = speedTurns * speedTurnSeconds
/// Bounded, in both halves, so that the producer cannot run ahead of the consumer:
/// Python's unbounded queue lets its producer pile up items that its feeder thread
/// (which needs the same GIL) then writes for seconds after the run.
let speedMaxsize = 1000
/// The Swift half moves at least this many times Python's items per second, or the scene fails.
let speedMinimumRatio = 2

/// CLOCK_MONOTONIC (system-wide, as Python's `time.monotonic()`), in nanoseconds.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

let itemProducer = ChildProcess.Entry("item-producer") { (run: SpeedRun) in
    try run.control.send("ready")
    let deadline = try run.control.receive(Int64.self)
    var id = 0
    while id % 64 != 0 || monotonicNanoseconds() < deadline {
        try run.items.put(Item.numbered(id))
        id += 1
    }
    try run.items.put(Item.end)
    _ = run.items.flush()
    try run.control.send(id)
}

/// One turn of the Swift half: this process is the consumer.
func swiftSpeedTurn() throws -> SpeedResult {
    let items = try Queue<Item>(maxsize: speedMaxsize)
    let (mine, theirs) = try Connection.pipe()
    let producer = try ChildProcess.start(itemProducer, SpeedRun(items: items, control: theirs))
    theirs.close()
    _ = try mine.receive(String.self, timeout: .seconds(30))
    let deadline = monotonicNanoseconds() + Int64(speedTurnSeconds) * 1_000_000_000
    try mine.send(deadline)
    var turn = SpeedResult()
    while true {
        let item = try items.get(timeout: .seconds(30))
        if item.id < 0 { break }
        if item != Item.numbered(turn.received) { turn.wrong += 1 }
        turn.received += 1
        if monotonicNanoseconds() < deadline { turn.inTime = turn.received }
    }
    turn.put = try mine.receive(Int.self, timeout: .seconds(30))
    turn.failedProducers = try producer.join() == .exited(0) ? 0 : 1
    return turn
}

/// The Python half's script, and how a turn of it is started; nil when there is no python3.
let pythonSpeedCommand: [String]? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    guard path.split(separator: ":").contains(where: { FileManager.default.isExecutableFile(atPath: "\($0)/python3") })
    else { return nil }
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/python-queue-speed.py").path
    return ["python3", script, "--seconds", "\(speedTurnSeconds)", "--maxsize", "\(speedMaxsize)", "--connection", "3"]
}()

/// One turn of the Python half: the script's producer process and its consumer, which
/// sends what it counted as JSON on a connection handed to it as descriptor 3.
func pythonSpeedTurn(_ command: [String]) throws -> SpeedResult {
    let (mine, theirs) = try Connection.pipe()
    let python = try ChildProcess.start(executable: "/usr/bin/env", arguments: command, handing: [theirs])
    theirs.close()
    guard try mine.poll(timeout: .seconds(60)) else {
        try python.kill()
        _ = try python.join()
        throw SpeedError("the Python half sent nothing within 60 seconds: \(command.joined(separator: " "))")
    }
    let bytes = try? mine.receiveBytes()
    let ended = try python.join()
    guard let bytes, let turn = try? JSONDecoder().decode(SpeedResult.self, from: Data(bytes)) else {
        throw SpeedError("the Python half (\(command.joined(separator: " "))) \(ended) before it sent its figures")
    }
    return turn
}

struct SpeedError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs the scene; returns whether every claim held (and prints why not).
func speedScene() throws -> Bool {
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
        .split(separator: " ").prefix(3).joined(separator: " ") ?? "unknown"
    #if DEBUG
    let build = "a debug build, whose Swift figures are several times too low (make demo runs this scene from a release build)"
    #else
    let build = "a release build"
    #endif
    print("  measured on this machine, now: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(load); \(build)")

    var swift = SpeedResult()
    var python: SpeedResult? = pythonSpeedCommand.map { _ in SpeedResult() }
    do {
        for _ in 0..<speedTurns {
            swift += try swiftSpeedTurn()
            if let command = pythonSpeedCommand { python! += try pythonSpeedTurn(command) }
        }
    } catch {
        print("  FAILED: \(error)")
        return false
    }
    let swiftRate = Double(swift.inTime) / Double(speedSeconds)
    print("  Multiprocessing.Queue           \(figures(swift))")
    if let python {
        print("  Python's multiprocessing.Queue  \(figures(python)) (Python \(python.python ?? "3"))")
    } else {
        print("  Python's multiprocessing.Queue  skipped: there is no python3 on this machine's PATH")
    }

    var claims = Claims()
    for (name, result) in [("Multiprocessing.Queue", swift)] + (python.map { [("Python's multiprocessing.Queue", $0)] } ?? []) {
        claims.check(result.wrong == 0, "\(name): \(result.wrong) items were not the next one, whole")
        claims.check(result.received == result.put, "\(name): the producers put \(result.put) items and \(result.received) arrived")
        claims.check(result.failedProducers == 0, "\(name): \(result.failedProducers) producer processes failed")
        claims.check(result.inTime > 0, "\(name): nothing arrived in \(speedSeconds) seconds")
    }
    let ratio = python.map { swiftRate / (Double($0.inTime) / Double(speedSeconds)) }
    if let ratio {
        print("  Multiprocessing.Queue moved \(String(format: "%.1f", ratio))x Python's items per second, here and now")
        claims.check(ratio >= Double(speedMinimumRatio),
              "Multiprocessing.Queue should move at least \(speedMinimumRatio)x Python's items per second")
    }
    if claims.held {
        print("  every item arrived once, in order and whole"
            + (ratio == nil ? "" : ", and the Swift queue moved at least \(speedMinimumRatio)x Python's items per second")
            + ": checked, it holds.")
        if ratio != nil {
            print("  (\(speedMinimumRatio)x leaves room for a busy machine: one short run shares the cores with whatever else")
            print("  runs. `make bench` compares the two in longer runs, the median of 5 each.)")
        }
    }
    return claims.held
}

/// "812,345 items in 2 s: 406,172 items/s".
private func figures(_ result: SpeedResult) -> String {
    let formatter = NumberFormatter()
    formatter.numberStyle = .decimal
    formatter.maximumFractionDigits = 0
    func number(_ value: Int) -> String { formatter.string(from: NSNumber(value: value)) ?? "\(value)" }
    let perSecond = result.inTime / speedSeconds
    return "\(number(result.inTime)) items in \(speedSeconds) s: \(number(perSecond)) items/s"
}
