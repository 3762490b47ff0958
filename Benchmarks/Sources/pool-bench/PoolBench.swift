// pool-bench: tiny tasks per second through a Multiprocessing ProcessPool, and the
// round trip of one task to a worker and back, against Python's multiprocessing.Pool
// and concurrent.futures.ProcessPoolExecutor (../../python/pool_reference.py), in one
// run, with 2 workers for all.
//
//     swift run -c release --package-path Benchmarks pool-bench [--runs N] [--quick] [--ours-only]
//     swift run -c release --package-path Benchmarks pool-bench profile ordered|unordered|chunked [tasks]
//
// The task is "add-one", x + 1 on an Int: all cost is the pool's, none the work's.
// Tasks per second: 20,000 tasks (2,000 with --quick) through `pool.map` (ordered) and
// `pool.mapUnordered`; Python's through `Pool.imap_unordered(f, range(n), chunksize=1)`,
// `Pool.map(f, range(n))` (its default chunksize, n / 8 here) and
// `ProcessPoolExecutor.map(f, range(n))` (chunksize 1). The pool is made and its
// workers have run 100 tasks before the clock starts; it stops at the last output
// (CLOCK_MONOTONIC). Encoding, decoding and the outputs' delivery are included.
// Round trip: one `pool.run(addOne, i)`, awaited, one at a time; 500 untimed, then
// 5,000 timed one by one (50 and 500 with --quick); p50 and p99 in µs. Python's:
// `pool.apply(f, (i,))`, the same counts.
// Every output is checked; a wrong or missing one exits 1 without numbers.
import Foundation
import BenchSupport
import Multiprocessing

let addOne = ProcessPool.Task("add-one") { (x: Int) in x + 1 }

try ChildProcess.bootstrap([addOne])

let workerCount = 2

/// A benchmark whose pool gives a wrong output must not print numbers.
func wrong(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pool-bench: \(message)\n".utf8))
    exit(1)
}

/// A pool of `workerCount` whose workers have started and run 100 tasks.
func warmPool() async throws -> ProcessPool {
    let pool = try ProcessPool(workers: workerCount)
    var sum = 0
    for try await y in pool.map(addOne, 0..<100) { sum += y }
    guard sum == 100 * 101 / 2 else { wrong("the warm-up's outputs sum to \(sum), not \(100 * 101 / 2)") }
    return pool
}

/// `count` add-one tasks through `map` (ordered) or `mapUnordered`; tasks per second.
func tasksPerSecond(_ count: Int, ordered: Bool, chunkSize: Int = 1) throws -> Double {
    try blockingOn {
        let pool = try await warmPool()
        let start = monotonicNanoseconds()
        if ordered {
            var next = 0
            for try await y in pool.map(addOne, 0..<count, chunkSize: chunkSize) {
                guard y == next + 1 else { wrong("map: output \(next) is \(y), not \(next + 1)") }
                next += 1
            }
            guard next == count else { wrong("map: \(next) outputs of \(count)") }
        } else {
            var seen = [Bool](repeating: false, count: count)
            var received = 0
            for await completion in pool.mapUnordered(addOne, 0..<count) {
                let index = completion.index
                guard index >= 0, index < count, !seen[index] else { wrong("mapUnordered: index \(index) is out of range or came twice") }
                let y: Int
                do { y = try completion.result.get() } catch { wrong("mapUnordered: input \(index) failed: \(error)") }
                guard y == index + 1 else { wrong("mapUnordered: output \(index) is \(y), not \(index + 1)") }
                seen[index] = true
                received += 1
            }
            guard received == count else { wrong("mapUnordered: \(received) outputs of \(count)") }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        await pool.shutdown()
        return Double(count) / seconds
    }
}

/// `count` single `run`s, each awaited before the next, after `warmUp` untimed; [p50, p99] in µs.
func roundTrips(_ count: Int, warmUp: Int) throws -> [Double] {
    try blockingOn {
        let pool = try await warmPool()
        for x in 0..<warmUp {
            let y = try await pool.run(addOne, x)
            guard y == x + 1 else { wrong("run(\(x)) in the warm-up gave \(y)") }
        }
        var samples = [Int64](repeating: 0, count: count)
        for x in 0..<count {
            let start = monotonicNanoseconds()
            let y = try await pool.run(addOne, x)
            samples[x] = monotonicNanoseconds() - start
            guard y == x + 1 else { wrong("run(\(x)) gave \(y)") }
        }
        await pool.shutdown()
        let sorted = samples.sorted()
        return [Double(sorted[count / 2]) / 1000, Double(sorted[count * 99 / 100]) / 1000]
    }
}

// MARK: Options

// `--runs N` sets the runs per median (default 5); `--quick` divides every count by 10
// (and makes one run the default), for a smoke test.
let arguments = Array(CommandLine.arguments.dropFirst())

func option(_ name: String) -> String? {
    guard let flag = arguments.firstIndex(of: name), flag + 1 < arguments.count else { return nil }
    return arguments[flag + 1]
}

// `pool-bench profile ordered|unordered|chunked [tasks]`: only that case, once, for a
// profiler (perf record -g), printing its tasks per second.
if arguments.first == "profile" {
    let count = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000
    let figure: Double
    switch arguments.count > 1 ? arguments[1] : "" {
    case "ordered": figure = try tasksPerSecond(count, ordered: true)
    case "unordered": figure = try tasksPerSecond(count, ordered: false)
    case "chunked": figure = try tasksPerSecond(count, ordered: true, chunkSize: (count + 7) / 8)
    default: wrong("usage: pool-bench profile ordered|unordered|chunked [tasks]")
    }
    print("profile \(arguments[1]): \(count) tasks, \(Int(figure)) tasks/s")
    exit(0)
}

let quick = arguments.contains("--quick")
let scale = quick ? 10 : 1
let taskCount = 20_000 / scale
let roundTripCount = 5_000 / scale, roundTripWarmUp = 500 / scale
/// Runs per measurement; each number in the table is the median of these. Ours and the
/// references take turns, so a noisy moment on the machine falls on all of them.
let runs = max(1, option("--runs").flatMap { Int($0) } ?? (quick ? 1 : 5))
/// Benchmarks/python/pool_reference.py, from this file's place in the checkout.
let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("python/pool_reference.py").path

// MARK: Reference programs

/// Python, found as queue-bench finds it (the columns say n/a, and why, when it is not there).
let python: String? = {
    if arguments.contains("--ours-only") {
        note("python3", "not run (--ours-only, for profiling our pool): the Python columns say n/a")
        return nil
    }
    guard let result = execute(["python3", "--version"]), result.status == 0 else {
        note("python3", "not found: the Python columns say n/a")
        return nil
    }
    return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
}()

/// One mode of pool_reference.py; nil, and a note saying why, when it fails or prints no figures.
func py(_ mode: String, _ arguments: [String], _ parse: (String) -> [Double]?) -> [Double]? {
    guard python != nil else { return nil }
    let program = "pool_reference.py --mode \(mode)"
    return reference(program, ["python3", script, "--mode", mode, "--workers", "\(workerCount)"] + arguments, parse)
}

// MARK: Measuring

#if DEBUG
print("WARNING: a debug build; the numbers mean nothing. Use -c release.\n")
#endif
let began = monotonicNanoseconds()
print("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadAverage()) at start; "
    + "\(workerCount) workers for every pool")
print("References: \(python ?? "no Python"), \(script)")
print("Method: each number is the median of \(runs) run\(runs == 1 ? "" : "s"); ours and the references take turns."
    + (quick ? " QUICK: every count divided by \(scale) (a smoke test, not figures to quote)." : ""))

/// Python's `Pool.map` default chunksize for `taskCount` tasks: ceil(n / (4 * workers)).
let pythonDefaultChunk = (taskCount + 4 * workerCount - 1) / (4 * workerCount)
let throughput = measure([
    { [try tasksPerSecond(taskCount, ordered: true)] },
    { [try tasksPerSecond(taskCount, ordered: false)] },
    { py("imap1", ["-n", "\(taskCount)"], fields("tasks_per_s")) },
    { py("map", ["-n", "\(taskCount)"], fields("tasks_per_s")) },
    { py("executor", ["-n", "\(taskCount)"], fields("tasks_per_s")) },
    { [try tasksPerSecond(taskCount, ordered: true, chunkSize: pythonDefaultChunk)] },
]).map { $0?[0] }
let (oursOrdered, oursUnordered, pyChunk1, pyDefault, pyExecutor) =
    (throughput[0], throughput[1], throughput[2], throughput[3], throughput[4])
let latency = measure([
    { try roundTrips(roundTripCount, warmUp: roundTripWarmUp) },
    { py("latency", ["-n", "\(roundTripCount)", "--warmup", "\(roundTripWarmUp)"], fields("p50_us", "p99_us")) },
])

/// The medians of this program's runs; a failure of ours stops it before any number.
func measure(_ measurements: [() throws -> [Double]?]) -> [[Double]?] {
    BenchSupport.measure(measurements, runs: runs) { wrong("our pool failed: \($0)") }
}

// MARK: Report

/// A cell with nothing measured for it (not a failure: n/a is one).
let none = "—"
print("")
print(row(["tiny tasks (x + 1), \(workerCount) workers", "ours (ProcessPool)", "Python Pool, chunksize 1",
           "Python Pool, default chunksize", "ProcessPoolExecutor"]))
print("|---|---:|---:|---:|---:|")
print(row(["tasks/s, ordered (`map`)", fmt(oursOrdered), none, fmt(pyDefault), fmt(pyExecutor)]))
print(row(["tasks/s, unordered (`mapUnordered`)", fmt(oursUnordered), fmt(pyChunk1), none, none]))
print(row(["tasks/s, ordered, chunkSize \(pythonDefaultChunk) (Python's default)", fmt(throughput[5]), none, fmt(pyDefault), none]))
print(row(["round trip p50 (µs)", microseconds(latency[0]?[0]), microseconds(latency[1]?[0]), none, none]))
print(row(["round trip p99 (µs)", microseconds(latency[0]?[1]), microseconds(latency[1]?[1]), none, none]))
print("")
print("Python's cells: chunksize 1 = `Pool.imap_unordered(f, range(\(taskCount)), chunksize=1)`, and `Pool.apply(f, (x,))`"
    + " one at a time for the round trip; default chunksize = `Pool.map(f, range(\(taskCount)))` (chunksize "
    + "\((taskCount + 4 * workerCount - 1) / (4 * workerCount))); ProcessPoolExecutor = `ProcessPoolExecutor(\(workerCount)).map(f, range(\(taskCount)))`"
    + " (chunksize 1). \(none): not measured. Ours: \(fmt(Double(taskCount))) tasks; round trip \(fmt(Double(roundTripCount)))"
    + " `run`s after \(roundTripWarmUp) untimed.")

/// The targets, from this run's figures: (what, ratio, whether more is better, limit, missing figure).
let targets: [(String, Double?, Bool, Double, String)] = [
    ("tiny tasks: at least 5x Python Pool's tasks/s at chunksize 1 (our `mapUnordered` vs `imap_unordered`, chunksize 1)",
     times(oursUnordered, pyChunk1), true, 5, "Python Pool chunksize 1"),
    ("round trip p50: at most half of Python's (`Pool.apply`)",
     times(latency[0]?[0], latency[1]?[0]), false, 0.5, "Python Pool.apply"),
]
printEnding(targets: targets, began: began)
