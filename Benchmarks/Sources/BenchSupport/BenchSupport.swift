// What queue-bench and pool-bench share: running async code from their
// synchronous top level, the clock, running the reference programs and reading
// their figures, medians of interleaved runs, and printing the tables.
import Dispatch
import Foundation

// MARK: Async from synchronous code

/// Runs async code from synchronous code (a child's entry, a benchmark's top
/// level): in a task on Swift's cooperative pool, this thread waiting for it.
/// Detached: a `Task` made in top-level code would belong to the main actor, whose
/// thread is the one waiting here.
public func blockingOn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>(), done = DispatchSemaphore(value: 0)
    Task.detached {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// `blockingOn`'s result: written by the task before it signals, read after the wait.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

// MARK: Reference programs

/// Why a column says n/a: one note per program, printed after the tables.
nonisolated(unsafe) public var notes: [(String, String)] = []

public func note(_ program: String, _ why: String) {
    if !notes.contains(where: { $0.0 == program }) { notes.append((program, why)) }
}

/// Runs a command through /usr/bin/env; its exit status and output (stdout and stderr).
public func execute(_ command: [String]) -> (status: Int32, output: String)? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    guard (try? process.run()) != nil else { return nil }
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

public func lastLine(_ text: String) -> String {
    text.split(separator: "\n").last.map(String.init) ?? "(no output)"
}

/// A parser for the last line holding every `key=value` named.
public func fields(_ keys: String...) -> (String) -> [Double]? {
    { text in
        for line in text.split(separator: "\n").reversed() {
            let words = line.split(separator: " ")
            let values = keys.compactMap { key in
                words.first { $0.hasPrefix("\(key)=") }.flatMap { Double($0.dropFirst(key.count + 1)) }
            }
            if values.count == keys.count { return values }
        }
        return nil
    }
}

/// Runs a reference program and reads its figures with `parse`; nil, and a note
/// saying why, when it fails or prints nothing `parse` understands.
public func reference(_ program: String, _ command: [String], _ parse: (String) -> [Double]?) -> [Double]? {
    guard let result = execute(command) else {
        note(program, "`\(command[0])` could not be started")
        return nil
    }
    guard result.status == 0 else {
        note(program, "exited with status \(result.status): \(lastLine(result.output))")
        return nil
    }
    guard let values = parse(result.output) else {
        note(program, "printed no figures: \(lastLine(result.output))")
        return nil
    }
    return values
}

// MARK: Measuring

public func median(_ values: [Double]) -> Double? {
    let sorted = values.sorted()
    return sorted.isEmpty ? nil : sorted[sorted.count / 2]
}

/// The medians of `runs` turns of each measurement (per figure: a latency gives p50
/// and p99), the measurements taking turns so a noisy moment falls on all of them.
/// Only ours throw (a reference that fails gives nil and a note): `failed` then
/// stops the program, so no numbers are printed.
public func measure(_ measurements: [() throws -> [Double]?], runs: Int, failed: (any Error) -> Never) -> [[Double]?] {
    var results = Array(repeating: [[Double]](), count: measurements.count)
    for _ in 0..<runs {
        for (index, measurement) in measurements.enumerated() {
            do {
                if let values = try measurement() { results[index].append(values) }
            } catch {
                failed(error)
            }
        }
    }
    return results.map { turns in
        guard let width = turns.first?.count else { return nil }
        return (0..<width).map { figure in median(turns.map { $0[figure] })! }
    }
}

public func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

// MARK: Printing

/// 12,345 (with `digits` decimals); n/a for nothing.
public func fmt(_ value: Double?, _ digits: Int = 0) -> String {
    guard let value else { return "n/a" }
    return String(format: "%.\(digits)f", value).replacingOccurrences(of: "(\\d)(?=(\\d{3})+(?!\\d))", with: "$1,", options: .regularExpression)
}

/// Ours over theirs, for figures where more is better.
public func times(_ ours: Double?, _ theirs: Double?) -> Double? {
    guard let ours, let theirs, theirs > 0 else { return nil }
    return ours / theirs
}

/// "5.61x"; for a time, below 1 also as a fraction: "0.31x (1/3.2)".
public func ratio(_ value: Double?, time: Bool = false) -> String {
    guard let value else { return "n/a" }
    let plain = String(format: "%.2fx", value)
    return time && value < 1 && value > 0 ? plain + String(format: " (1/%.1f)", 1 / value) : plain
}

public func microseconds(_ value: Double?) -> String {
    guard let value else { return "n/a" }
    return fmt(value, value < 10 ? 2 : 1)
}

public func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }

/// A target: what it says, this run's ratio (nil: a figure is missing), whether
/// more is better, the limit, and which figure is missing when the ratio is nil.
public typealias Target = (String, Double?, Bool, Double, String)

/// Prints the targets met or not, the notes on missing figures, and the run's time.
public func printEnding(targets: [Target], began: Int64) {
    print("")
    print("Targets (ratios from this run):")
    print("")
    print("| target | this run | |")
    print("|---|---:|---|")
    var met = 0
    for (what, value, moreIsBetter, limit, missing) in targets {
        guard let value else {
            print(row([what, "n/a", "unknown (no \(missing) figure)"]))
            continue
        }
        let ok = moreIsBetter ? value >= limit : value <= limit
        if ok { met += 1 }
        print(row([what, ratio(value, time: !moreIsBetter), ok ? "met" : "not met"]))
    }
    print("")
    print("\(met) of \(targets.count) targets met.")
    if !notes.isEmpty {
        print("")
        print("Notes (why a column says n/a):")
        for (program, why) in notes { print("- \(program): \(why)") }
    }
    print("")
    print("Ran in \(fmt(Double(monotonicNanoseconds() - began) / 1e9)) s; load average \(loadAverage()) at end.")
}
