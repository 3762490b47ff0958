// queue-bench: items per second through a Multiprocessing Queue between real
// processes, against Python's multiprocessing.Queue (../shared/bench/py_mpqueue.py)
// and the C floor (../shared/bench/c_pipe_floor.c: raw frames on a pipe), in one run.
//
//     swift run -c release --package-path Benchmarks queue-bench [path/to/shared/bench]
//
// Modes, as py_mpqueue.py's: small (1 producer -> 1 consumer, 200,000 Items),
// large (2,000 items of 1 MiB Data), multi (4 producers -> 4 consumers, 200,000 Items).
// Timing: every child starts and says it is ready; the clock starts when the
// producers are told to go, and stops at the last item any consumer took
// (CLOCK_MONOTONIC, system-wide). Encoding and decoding are included.
import Foundation
import MessagePack
import Multiprocessing

struct Item: Codable, Sendable {
    var id: Int
    var name: String
    var score: Double
    var tags: [String]
    var ok: Bool
}

/// The queue a run uses: Items (57 bytes each as MessagePack, like Python's dict), or 1 MiB Data.
/// A consumer stops at an Item with id -1, or an empty Data.
struct Queues: Codable, Sendable {
    var items: Queue<Item>?
    var blobs: Queue<Data>?
}

struct Producing: Codable, Sendable {
    var queues: Queues
    var control: Connection
    var first: Int
    var count: Int
}

struct Consuming: Codable, Sendable {
    var queues: Queues
    var control: Connection
}

/// What a consumer reports: items, their checksum, bytes of payload, and when it took its last item.
struct Report: Codable, Sendable {
    var items = 0
    var idSum = 0
    var bytes = 0
    var lastNanoseconds: Int64 = 0
}

nonisolated func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

let oneMiB = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0) })

let producer = ChildProcess.Entry("producer") { (work: Producing) in
    try work.control.send("ready")
    _ = try work.control.receive(String.self)  // "go"
    if let blobs = work.queues.blobs {
        for _ in 0..<work.count { try blobs.put(oneMiB) }
        blobs.flush()
    } else if let items = work.queues.items {
        for id in work.first..<(work.first + work.count) {
            try items.put(Item(id: id, name: "item-\(id)", score: Double(id) * 0.5, tags: ["a", "b", "c"], ok: true))
        }
        items.flush()
    }
}

let consumer = ChildProcess.Entry("consumer") { (work: Consuming) in
    try work.control.send("ready")
    var report = Report()
    if let blobs = work.queues.blobs {
        while true {
            let data = try blobs.get()
            if data.isEmpty { break }
            report.items += 1
            report.bytes += data.count
            report.lastNanoseconds = monotonicNanoseconds()
        }
    } else if let items = work.queues.items {
        while true {
            let item = try items.get()
            if item.id < 0 { break }
            report.items += 1
            report.idSum += item.id
            report.lastNanoseconds = monotonicNanoseconds()
        }
    }
    try work.control.send(report)
}

try ChildProcess.bootstrap([producer, consumer])

/// Runs one mode; returns (items per second, MiB per second).
func run(items total: Int, producers: Int, consumers: Int, large: Bool) throws -> (Double, Double) {
    let queues = large ? Queues(items: nil, blobs: try Queue<Data>()) : Queues(items: try Queue<Item>(), blobs: nil)
    var consumerLinks: [Connection] = []
    var producerLinks: [Connection] = []
    var children: [ChildProcess] = []
    for _ in 0..<consumers {
        let (mine, theirs) = try Connection.pipe()
        children.append(try ChildProcess.start(consumer, Consuming(queues: queues, control: theirs)))
        consumerLinks.append(mine)
    }
    let share = total / producers
    for index in 0..<producers {
        let (mine, theirs) = try Connection.pipe()
        let count = index == producers - 1 ? total - share * index : share
        children.append(try ChildProcess.start(producer, Producing(queues: queues, control: theirs, first: share * index, count: count)))
        producerLinks.append(mine)
    }
    for link in consumerLinks + producerLinks { _ = try link.receive(String.self, timeout: .seconds(60)) }
    let start = monotonicNanoseconds()
    for link in producerLinks { try link.send("go") }
    for child in children.suffix(producers) { _ = try child.join() }
    for _ in 0..<consumers {
        try queues.items?.put(Item(id: -1, name: "", score: 0, tags: [], ok: false))
        try queues.blobs?.put(Data())
    }
    var reports: [Report] = []
    for link in consumerLinks { reports.append(try link.receive(Report.self, timeout: .seconds(600))) }
    for child in children.prefix(consumers) { _ = try child.join() }
    let received = reports.reduce(0) { $0 + $1.items }
    let bytes = reports.reduce(0) { $0 + $1.bytes }
    guard received == total, large || reports.reduce(0, { $0 + $1.idSum }) == (0..<total).reduce(0, +) else {
        // A benchmark that miscounts must not print numbers.
        FileHandle.standardError.write(Data("queue-bench: \(received) of \(total) items arrived, or their checksum is wrong\n".utf8))
        exit(1)
    }
    let seconds = Double(reports.map(\.lastNanoseconds).max()! - start) / 1e9
    return (Double(total) / seconds, Double(bytes) / seconds / 1_048_576)
}

/// Runs a reference program and returns the value of `key=` on its last line.
func reference(_ command: [String], key: String) -> Double? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    let output = Pipe()
    process.standardOutput = output
    guard (try? process.run()) != nil else { return nil }
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0, let line = text.split(separator: "\n").last else { return nil }
    for field in line.split(separator: " ") where field.hasPrefix("\(key)=") {
        return Double(field.dropFirst(key.count + 1))
    }
    return nil
}

// `--only small|large|multi` runs one mode of ours alone (for profiling); `--codec`
// times the codec and the queue in one process; `--runs N` sets the runs per median
// (default 7); any other argument is the folder of the reference programs.
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--codec" {
    // The codec's share of a small item: encode and decode of one Item, in this process.
    let encoder = MessagePackEncoder(), decoder = MessagePackDecoder()
    let items = (0..<1000).map { Item(id: 100_000 + $0, name: "item-\(100_000 + $0)", score: Double($0) * 0.5, tags: ["a", "b", "c"], ok: true) }
    let frames = try items.map { try encoder.encode($0) }
    for _ in 0..<3 {
        var start = monotonicNanoseconds()
        for _ in 0..<200 { for item in items { _ = try encoder.encode(item) } }
        let encode = Double(monotonicNanoseconds() - start) / 200_000
        start = monotonicNanoseconds()
        for _ in 0..<200 { for frame in frames { _ = try decoder.decode(Item.self, from: frame) } }
        let decode = Double(monotonicNanoseconds() - start) / 200_000
        print("Item: encode \(Int(encode)) ns, decode \(Int(decode)) ns")
    }
    // The queue's own share, in one process: 10,000 puts (they fit the pipe), then 10,000 gets.
    let queue = try Queue<Item>()
    for _ in 0..<3 {
        var start = monotonicNanoseconds()
        for item in items.prefix(1000) { for _ in 0..<10 { try queue.put(item) } }
        let put = Double(monotonicNanoseconds() - start) / 10_000
        start = monotonicNanoseconds()
        for _ in 0..<10_000 { _ = try queue.get() }
        let get = Double(monotonicNanoseconds() - start) / 10_000
        print("Queue<Item> in one process: put \(Int(put)) ns, get \(Int(get)) ns")
    }
    exit(0)
}
if let flag = arguments.firstIndex(of: "--only"), flag + 1 < arguments.count {
    let mode = arguments[flag + 1]
    let (items, producers, large) = mode == "large" ? (2_000, 1, true) : (200_000, mode == "multi" ? 4 : 1, false)
    for _ in 0..<(arguments.firstIndex(of: "--runs").flatMap { $0 + 1 < arguments.count ? Int(arguments[$0 + 1]) : nil } ?? 1) {
        let result = try run(items: items, producers: producers, consumers: producers, large: large)
        print("\(mode): \(Int(result.0)) items/s, \(Int(result.1)) MiB/s")
    }
    exit(0)
}
let positional = arguments.indices.filter { !arguments[$0].hasPrefix("--") && ($0 == 0 || arguments[$0 - 1] != "--runs") }
let bench = positional.first.map { arguments[$0] }
    ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/bench").path
let floor = "/tmp/queue-bench-c_pipe_floor"
let built: Bool = {
    let gcc = Process()
    gcc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gcc.arguments = ["gcc", "-O2", "-o", floor, "\(bench)/c_pipe_floor.c", "-pthread"]
    guard (try? gcc.run()) != nil else { return false }
    gcc.waitUntilExit()
    return gcc.terminationStatus == 0
}()

func fmt(_ value: Double?, _ digits: Int = 0) -> String {
    guard let value else { return "n/a" }
    return String(format: "%.\(digits)f", value).replacingOccurrences(of: "(\\d)(?=(\\d{3})+(?!\\d))", with: "$1,", options: .regularExpression)
}

/// Runs per measurement; each number in the table is the median of these. Ours and the
/// references take turns, so a noisy moment on the machine falls on both.
let runs = arguments.firstIndex(of: "--runs").flatMap { $0 + 1 < arguments.count ? Int(arguments[$0 + 1]) : nil } ?? 7

func median(_ values: [Double?]) -> Double? {
    let known = values.compactMap { $0 }.sorted()
    return known.isEmpty ? nil : known[known.count / 2]
}

/// The medians of `runs` turns of each measurement.
func measure(_ measurements: [() throws -> Double?]) throws -> [Double?] {
    var results = Array(repeating: [Double?](), count: measurements.count)
    for _ in 0..<runs {
        for (index, measurement) in measurements.enumerated() { results[index].append(try measurement()) }
    }
    return results.map(median)
}

print("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; reference programs from \(bench)")
print("Method: each number is the median of \(runs) runs; ours and the references take turns.")
let smallRow = try measure([
    { try run(items: 200_000, producers: 1, consumers: 1, large: false).0 },
    { reference(["python3", "\(bench)/py_mpqueue.py", "--mode", "small", "-n", "200000"], key: "items_per_s") },
    { built ? reference([floor, "-s", "57", "-n", "1000000"], key: "items_per_s") : nil },
])
let largeRow = try measure([
    { try run(items: 2_000, producers: 1, consumers: 1, large: true).1 },
    { reference(["python3", "\(bench)/py_mpqueue.py", "--mode", "large", "-n", "2000"], key: "MB_per_s") },
    { built ? reference([floor, "-s", "1048576", "-n", "4000", "-p", "1048576"], key: "MB_per_s") : nil },
])
let multiRow = try measure([
    { try run(items: 200_000, producers: 4, consumers: 4, large: false).0 },
    { reference(["python3", "\(bench)/py_mpqueue.py", "--mode", "multi", "-n", "200000"], key: "items_per_s") },
])
let (small, pySmall, cSmall) = (smallRow[0]!, smallRow[1], smallRow[2])
let (large, pyLarge, cLarge) = (largeRow[0]!, largeRow[1], largeRow[2])
let (multi, pyMulti) = (multiRow[0]!, multiRow[1])

func ratio(_ ours: Double, _ theirs: Double?) -> String {
    guard let theirs, theirs > 0 else { return "n/a" }
    return String(format: "%.2fx", ours / theirs)
}

print("""

| case | Multiprocessing.Queue | Python multiprocessing.Queue | C pipe floor | vs Python | target |
|---|---:|---:|---:|---:|---|
| small items, 1 → 1 (items/s) | \(fmt(small)) | \(fmt(pySmall)) | \(fmt(cSmall)) | \(ratio(small, pySmall)) | ≥ 5x |
| 1 MiB items, 1 → 1 (MiB/s) | \(fmt(large)) | \(fmt(pyLarge)) | \(fmt(cLarge)) | \(ratio(large, pyLarge)) | ≥ 5x |
| small items, 4 → 4 (items/s) | \(fmt(multi)) | \(fmt(pyMulti)) | n/a | \(ratio(multi, pyMulti)) | ≥ 3x |
""")
