// queue-bench: items per second through a Multiprocessing Queue between real
// processes, and the round trip of one item to a child and back, against Python's
// multiprocessing.Queue (../shared/bench/py_mpqueue.py, py_latency.py --impl mp),
// faster-fifo (py_ffqueue.py, py_latency.py --impl ff) and two C floors: frames on a
// pipe (c_pipe_floor.c, c_pingpong.c) and a byte ring in shared memory (c_ring_floor.c),
// in one run.
//
//     swift run -c release --package-path Benchmarks queue-bench [--runs N] [--quick] [path/to/shared/bench]
//
// Throughput modes, as py_mpqueue.py's: small (1 producer -> 1 consumer, 200,000 Items),
// large (2,000 items of 1 MiB Data), multi (4 producers -> 4 consumers, 200,000 Items).
// Timing: every child starts and says it is ready; the clock starts when the
// producers are told to go, and stops at the last item any consumer took
// (CLOCK_MONOTONIC, system-wide). Encoding and decoding are included.
// Latency, as py_latency.py's: a child echoes Items from one queue to another;
// 1,000 round trips of warm-up, then 20,000 timed one by one; p50 and p99 in µs.
// The async forms are timed beside the blocking ones: small items 1 -> 1 and the
// round trip again, with `await put`, `await get` and `for try await` on both sides.
import Foundation
import MessagePack
import BenchSupport
import Multiprocessing

struct Item: Codable, Sendable {
    var id: Int
    var name: String
    var score: Double
    var tags: [String]
    var ok: Bool

    /// The item with this id, as every producer makes it (and Python's `make_small`).
    static func numbered(_ id: Int) -> Item {
        Item(id: id, name: "item-\(id)", score: Double(id) * 0.5, tags: ["a", "b", "c"], ok: true)
    }

    /// Tells a consumer, or the echo, to stop.
    static let stop = Item(id: -1, name: "", score: 0, tags: [], ok: false)
}

/// The queue a run uses: Items (57 bytes each as MessagePack, like Python's dict), or 1 MiB Data.
/// A consumer stops at an Item with id -1, or an empty Data.
struct Queues: Codable, Sendable {
    var items: Queue<Item>?
    var blobs: Queue<Data>?
}

/// `async`: the child uses the async forms (`await put`, `for try await`) instead of the blocking ones.
struct Producing: Codable, Sendable {
    var queues: Queues
    var control: Connection
    var first: Int
    var count: Int
    var async = false
}

struct Consuming: Codable, Sendable {
    var queues: Queues
    var control: Connection
    var async = false
}

/// The latency case's child: every Item from `ping` goes back on `pong`, until id -1.
struct Echoing: Codable, Sendable {
    var ping: Queue<Item>
    var pong: Queue<Item>
    var async = false
}

/// What a consumer reports: items, their checksum, bytes of payload, and when it took its last item.
struct Report: Codable, Sendable {
    var items = 0
    var idSum = 0
    var bytes = 0
    var lastNanoseconds: Int64 = 0
}


let oneMiB = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0) })

let producer = ChildProcess.Entry("producer") { (work: Producing) in
    try work.control.send("ready")
    _ = try work.control.receive(String.self)  // "go"
    if let blobs = work.queues.blobs {
        for _ in 0..<work.count { try blobs.put(oneMiB) }
        blobs.flush()
    } else if let items = work.queues.items, work.async {
        let (first, count) = (work.first, work.count)
        try blockingOn { for id in first..<(first + count) { try await items.put(Item.numbered(id)) } }
        items.flush()
    } else if let items = work.queues.items {
        for id in work.first..<(work.first + work.count) {
            try items.put(Item.numbered(id))
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
    } else if let items = work.queues.items, work.async {
        report = try blockingOn {
            var report = Report()
            for try await item in items {
                if item.id < 0 { break }
                report.items += 1
                report.idSum += item.id
                report.lastNanoseconds = monotonicNanoseconds()
            }
            return report
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

let echo = ChildProcess.Entry("echo") { (work: Echoing) in
    if work.async {
        let (ping, pong) = (work.ping, work.pong)
        try blockingOn {
            for try await item in ping {
                if item.id < 0 { break }
                try await pong.put(item)
            }
        }
        return
    }
    while true {
        let item = try work.ping.get()
        if item.id < 0 { break }
        try work.pong.put(item)
    }
}

try ChildProcess.bootstrap([producer, consumer, echo])

/// A benchmark that miscounts must not print numbers.
func miscounted(_ message: String) -> Never {
    FileHandle.standardError.write(Data("queue-bench: \(message)\n".utf8))
    exit(1)
}

/// Runs one throughput mode; returns (items per second, MiB per second).
func run(items total: Int, producers: Int, consumers: Int, large: Bool, async: Bool = false) throws -> (Double, Double) {
    let queues = large ? Queues(items: nil, blobs: try Queue<Data>()) : Queues(items: try Queue<Item>(), blobs: nil)
    var consumerLinks: [Connection] = []
    var producerLinks: [Connection] = []
    var children: [ChildProcess] = []
    for _ in 0..<consumers {
        let (mine, theirs) = try Connection.pipe()
        children.append(try ChildProcess.start(consumer, Consuming(queues: queues, control: theirs, async: async)))
        consumerLinks.append(mine)
    }
    let share = total / producers
    for index in 0..<producers {
        let (mine, theirs) = try Connection.pipe()
        let count = index == producers - 1 ? total - share * index : share
        children.append(try ChildProcess.start(producer, Producing(queues: queues, control: theirs, first: share * index, count: count, async: async)))
        producerLinks.append(mine)
    }
    for link in consumerLinks + producerLinks { _ = try link.receive(String.self, timeout: .seconds(60)) }
    let start = monotonicNanoseconds()
    for link in producerLinks { try link.send("go") }
    for child in children.suffix(producers) { _ = try child.join() }
    for _ in 0..<consumers {
        try queues.items?.put(Item.stop)
        try queues.blobs?.put(Data())
    }
    var reports: [Report] = []
    for link in consumerLinks { reports.append(try link.receive(Report.self, timeout: .seconds(600))) }
    for child in children.prefix(consumers) { _ = try child.join() }
    let received = reports.reduce(0) { $0 + $1.items }
    let bytes = reports.reduce(0) { $0 + $1.bytes }
    guard received == total, large || reports.reduce(0, { $0 + $1.idSum }) == total * (total - 1) / 2 else {
        miscounted("\(received) of \(total) items arrived, or their checksum is wrong")
    }
    let seconds = Double(reports.map(\.lastNanoseconds).max()! - start) / 1e9
    return (Double(total) / seconds, Double(bytes) / seconds / 1_048_576)
}

/// Round trips of one Item to an echoing child and back, as py_latency.py times them:
/// the item is made, put on `ping`, and its echo taken from `pong`, one at a time.
/// Returns [p50, p99] in µs.
/// `async`: both sides use the async forms (`await put`, `await get`, `for try await`).
func roundTrips(_ count: Int, warmUp: Int = 1_000, async: Bool = false) throws -> [Double] {
    let ping = try Queue<Item>(), pong = try Queue<Item>()
    let child = try ChildProcess.start(echo, Echoing(ping: ping, pong: pong, async: async))
    if async {
        let samples = try blockingOn { try await asyncRoundTrips(count, warmUp: warmUp, ping: ping, pong: pong) }
        return try finishRoundTrips(samples, count: count, ping: ping, child: child)
    }
    for id in 0..<warmUp {
        try ping.put(Item.numbered(id))
        let back = try pong.get(timeout: .seconds(60))
        guard back.id == id else { miscounted("warm-up round trip \(id) came back as \(back.id)") }
    }
    var samples = [Int64](repeating: 0, count: count)
    for id in 0..<count {
        let start = monotonicNanoseconds()
        try ping.put(Item.numbered(id))
        let back = try pong.get()
        samples[id] = monotonicNanoseconds() - start
        guard back.id == id, back.name == "item-\(id)" else { miscounted("round trip \(id) came back as \(back.id)") }
    }
    return try finishRoundTrips(samples, count: count, ping: ping, child: child)
}

/// The same round trips with the async forms, in a task.
func asyncRoundTrips(_ count: Int, warmUp: Int, ping: Queue<Item>, pong: Queue<Item>) async throws -> [Int64] {
    for id in 0..<warmUp {
        try await ping.put(Item.numbered(id))
        let back = try await pong.get(timeout: .seconds(60))
        guard back.id == id else { miscounted("warm-up round trip \(id) came back as \(back.id)") }
    }
    var samples = [Int64](repeating: 0, count: count)
    for id in 0..<count {
        let start = monotonicNanoseconds()
        try await ping.put(Item.numbered(id))
        let back = try await pong.get()
        samples[id] = monotonicNanoseconds() - start
        guard back.id == id, back.name == "item-\(id)" else { miscounted("round trip \(id) came back as \(back.id)") }
    }
    return samples
}

/// Stops the echo, checks it ended well, and gives [p50, p99] in µs.
func finishRoundTrips(_ samples: [Int64], count: Int, ping: Queue<Item>, child: ChildProcess) throws -> [Double] {
    try ping.put(Item.stop)
    let ended = try child.join()
    guard samples.count == count, ended == .exited(0) else { miscounted("the echo \(ended)") }
    let sorted = samples.sorted()
    return [Double(sorted[count / 2]) / 1000, Double(sorted[count * 99 / 100]) / 1000]
}

// MARK: Options

// `--only small|large|multi|latency|small-async|latency-async` runs one case of ours alone (for profiling); `--codec`
// times the codec and the queue in one process; `--runs N` sets the runs per median
// (default 5); `--quick` divides every count by 10 (and makes one run the default),
// for a smoke test; any other argument is the folder of the reference programs.
let arguments = Array(CommandLine.arguments.dropFirst())
let optionsWithValues: Set = ["--runs", "--only"]

func option(_ name: String) -> String? {
    guard let flag = arguments.firstIndex(of: name), flag + 1 < arguments.count else { return nil }
    return arguments[flag + 1]
}

let quick = arguments.contains("--quick")
let scale = quick ? 10 : 1
let smallCount = 200_000 / scale, largeCount = 2_000 / scale, multiCount = 200_000 / scale
let roundTripCount = 20_000 / scale
let pipeFloorCount = 1_000_000 / scale, pipeFloorLargeCount = 4_000 / scale, ringFloorCount = 10_000_000 / scale

if arguments.first == "--codec" {
    // The codec's share of a small item: encode and decode of one Item, in this process.
    let encoder = MessagePackEncoder(), decoder = MessagePackDecoder()
    let items = (0..<1000).map { Item.numbered(100_000 + $0) }
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
    // The queue's own share, in one process: 10,000 puts, then 10,000 gets.
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
if let mode = option("--only") {
    guard ["small", "large", "multi", "latency", "small-async", "latency-async"].contains(mode) else {
        FileHandle.standardError.write(Data("queue-bench: --only small|large|multi|latency|small-async|latency-async, not \(mode)\n".utf8))
        exit(64)
    }
    func once() throws -> String {
        switch mode {
        case "latency", "latency-async":
            let result = try roundTrips(roundTripCount, async: mode == "latency-async")
            return "latency: p50 \(fmt(result[0], 2)) µs, p99 \(fmt(result[1], 2)) µs (\(fmt(Double(roundTripCount))) round trips)"
        case "large":
            let result = try run(items: largeCount, producers: 1, consumers: 1, large: true)
            return "large: \(Int(result.0)) items/s, \(Int(result.1)) MiB/s"
        default:
            let producers = mode == "multi" ? 4 : 1
            let result = try run(items: mode == "multi" ? multiCount : smallCount, producers: producers, consumers: producers,
                                 large: false, async: mode == "small-async")
            return "\(mode): \(Int(result.0)) items/s, \(Int(result.1)) MiB/s"
        }
    }
    for _ in 0..<(option("--runs").flatMap { Int($0) } ?? 1) {
        do { print(try once()) } catch { miscounted("our queue failed: \(error)") }
    }
    exit(0)
}

/// Runs per measurement; each number in the tables is the median of these. Ours and the
/// references take turns, so a noisy moment on the machine falls on all of them.
let runs = max(1, option("--runs").flatMap { Int($0) } ?? (quick ? 1 : 5))
let positional = arguments.indices.filter {
    !arguments[$0].hasPrefix("--") && ($0 == 0 || !optionsWithValues.contains(arguments[$0 - 1]))
}
let bench = positional.first.map { arguments[$0] }
    ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/bench").path

// MARK: Reference programs

/// Reads c_ring_floor's "ring throughput: 16295125 frames/s".
func ringFrames(_ text: String) -> [Double]? {
    for line in text.split(separator: "\n").reversed() where line.hasPrefix("ring throughput: ") {
        if let value = Double(line.split(separator: " ").dropFirst(2).first ?? "") { return [value] }
    }
    return nil
}

/// Builds one of the C reference programs into /tmp; its path, or nil and a note.
func compile(_ name: String, _ flags: [String] = []) -> String? {
    let binary = "/tmp/queue-bench-\(name)"
    guard let result = execute(["gcc", "-O2", "-o", binary, "\(bench)/\(name).c"] + flags) else {
        note(name, "gcc could not be started")
        return nil
    }
    guard result.status == 0 else {
        let error = result.output.split(separator: "\n").first { $0.contains("error") }.map(String.init)
        note(name, "gcc failed: \(error ?? lastLine(result.output))")
        return nil
    }
    return binary
}

let pipeFloor = compile("c_pipe_floor", ["-pthread"])
let pingPong = compile("c_pingpong")
let ringFloor = compile("c_ring_floor")

/// Python, and whether faster-fifo imports there (its columns say n/a, and why, when not).
let python: String? = {
    guard let result = execute(["python3", "--version"]), result.status == 0 else {
        note("python3", "not found: the Python columns say n/a")
        return nil
    }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
}()
let fasterFifo: String? = {
    guard python != nil else { return nil }
    let probe = "import faster_fifo, importlib.metadata as m; print(m.version('faster-fifo'))"
    guard let result = execute(["python3", "-c", probe]) else { return nil }
    guard result.status == 0 else {
        note("faster-fifo", "not importable (\(lastLine(result.output))); install it with "
            + "`Scripts/install-dependencies.sh --bench` (or `pip install faster-fifo`)")
        return nil
    }
    return lastLine(result.output)
}()

/// A Python reference program, when Python (and faster-fifo, if `needsFasterFifo`) is there.
func py(_ script: String, _ arguments: [String], needsFasterFifo: Bool = false, _ parse: (String) -> [Double]?) -> [Double]? {
    guard python != nil, !needsFasterFifo || fasterFifo != nil else { return nil }
    return reference(script, ["python3", "\(bench)/\(script)"] + arguments, parse)
}

// MARK: Measuring

#if DEBUG
print("WARNING: a debug build; the numbers mean nothing. Use -c release.\n")
#endif
let began = monotonicNanoseconds()
print("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadAverage()) at start; reference programs from \(bench)")
print("References: \(python ?? "no Python"), faster-fifo \(fasterFifo ?? "n/a")")
print("Method: each number is the median of \(runs) run\(runs == 1 ? "" : "s"); ours and the references take turns."
    + (quick ? " QUICK: every count divided by \(scale) (a smoke test, not figures to quote)." : ""))

let small = measure([
    { [try run(items: smallCount, producers: 1, consumers: 1, large: false).0] },
    { py("py_mpqueue.py", ["--mode", "small", "-n", "\(smallCount)"], fields("items_per_s")) },
    { py("py_ffqueue.py", ["--mode", "small", "-n", "\(smallCount)"], needsFasterFifo: true, fields("items_per_s")) },
    { pipeFloor.flatMap { reference("c_pipe_floor", [$0, "-s", "57", "-n", "\(pipeFloorCount)"], fields("items_per_s")) } },
    { ringFloor.flatMap { reference("c_ring_floor", [$0, "t", "\(ringFloorCount)"], ringFrames) } },
    { [try run(items: smallCount, producers: 1, consumers: 1, large: false, async: true).0] },
]).map { $0?[0] }
let large = measure([
    { [try run(items: largeCount, producers: 1, consumers: 1, large: true).1] },
    { py("py_mpqueue.py", ["--mode", "large", "-n", "\(largeCount)"], fields("MB_per_s")) },
    { py("py_ffqueue.py", ["--mode", "large", "-n", "\(largeCount)"], needsFasterFifo: true, fields("MB_per_s")) },
    { pipeFloor.flatMap { reference("c_pipe_floor", [$0, "-s", "1048576", "-n", "\(pipeFloorLargeCount)", "-p", "1048576"], fields("MB_per_s")) } },
]).map { $0?[0] }
let multi = measure([
    { [try run(items: multiCount, producers: 4, consumers: 4, large: false).0] },
    { py("py_mpqueue.py", ["--mode", "multi", "-n", "\(multiCount)"], fields("items_per_s")) },
    { py("py_ffqueue.py", ["--mode", "multi", "-n", "\(multiCount)"], needsFasterFifo: true, fields("items_per_s")) },
]).map { $0?[0] }
let latency = measure([
    { try roundTrips(roundTripCount) },
    { py("py_latency.py", ["--impl", "mp", "-n", "\(roundTripCount)"], fields("p50_us", "p99_us")) },
    { py("py_latency.py", ["--impl", "ff", "-n", "\(roundTripCount)"], needsFasterFifo: true, fields("p50_us", "p99_us")) },
    { pingPong.flatMap { reference("c_pingpong", [$0, "-n", "\(roundTripCount)"], fields("p50_us", "p99_us")) } },
    { ringFloor.flatMap { reference("c_ring_floor", [$0, "l", "\(roundTripCount)"], fields("p50", "p99")) } },
    { try roundTrips(roundTripCount, async: true) },
])

/// The medians of this program's runs; a failure of ours stops it before any number.
func measure(_ measurements: [() throws -> [Double]?]) -> [[Double]?] {
    BenchSupport.measure(measurements, runs: runs) { miscounted("our queue failed: \($0)") }
}

// MARK: Report

print("")
print(row(["case", "Multiprocessing.Queue", "Python multiprocessing.Queue", "faster-fifo", "C pipe floor", "C ring floor",
           "vs multiprocessing.Queue", "vs faster-fifo"]))
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for (name, figures) in [("small items, 1 → 1 (items/s)", small), ("1 MiB items, 1 → 1 (MiB/s)", large),
                        ("small items, 4 → 4 (items/s)", multi)] {
    let cells = (0..<5).map { $0 < figures.count ? fmt(figures[$0]) : "n/a" }
    print(row([name] + cells + [ratio(times(figures[0], figures[1])), ratio(times(figures[0], figures[2]))]))
}

print("")
print(row(["round trip of one small item (µs)", "Multiprocessing.Queue", "Python multiprocessing.Queue", "faster-fifo",
           "C pipe ping-pong", "C ring ping-pong", "vs multiprocessing.Queue", "vs C pipe ping-pong"]))
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for (index, name) in ["p50", "p99"].enumerated() {
    let figures = latency.prefix(5).map { $0?[index] }  // the sixth, async, has a table of its own
    print(row([name] + figures.map(microseconds)
        + [ratio(times(figures[0], figures[1]), time: true), ratio(times(figures[0], figures[3]), time: true)]))
}

print("")
print(row(["async forms (await put, await get, for try await)", "blocking", "async", "async / blocking"]))
print("|---|---:|---:|---:|")
print(row(["small items, 1 → 1 (items/s)", fmt(small[0]), fmt(small[5]), ratio(times(small[0], small[5]), time: true)]))
for (index, name) in ["round trip p50 (µs)", "round trip p99 (µs)"].enumerated() {
    let blocking = latency[0]?[index], async = latency[5]?[index]
    print(row([name, microseconds(blocking), microseconds(async), ratio(times(async, blocking), time: true)]))
}

/// The targets, from this run's figures: (what, ratio, whether more is better, limit, missing figure).
let targets: [(String, Double?, Bool, Double, String)] = [
    ("small items 1 → 1: at least 8x Python multiprocessing.Queue's items/s",
     times(small[0], small[1]), true, 8, "Python multiprocessing.Queue"),
    ("small items 4 → 4: at least 5x Python multiprocessing.Queue's items/s",
     times(multi[0], multi[1]), true, 5, "Python multiprocessing.Queue"),
    ("1 MiB items 1 → 1: at least 1.5x faster-fifo's MiB/s",
     times(large[0], large[2]), true, 1.5, "faster-fifo"),
    ("round trip p50: at most 1/4 of the C pipe ping-pong's p50",
     times(latency[0]?[0], latency[3]?[0]), false, 0.25, "C pipe ping-pong"),
    ("small items 1 → 1, async forms: at most 1.3x the blocking forms' time per item",
     times(small[0], small[5]), false, 1.3, "async"),
    ("round trip p50, async forms: at most 1.3x the blocking forms'",
     times(latency[5]?[0], latency[0]?[0]), false, 1.3, "async"),
]
printEnding(targets: targets, began: began)
