// durable-bench: items per second through a DurableQueue between processes, producers
// and consumers on one PostgreSQL server, against pgbench running the same SQL (put,
// claim, acknowledge) on the same server in the same run: the database's own floor for
// that work, with no client library, no encoding and no waiting for items in between.
//
//     make bench-durable   (a throwaway cluster from Scripts/postgres.sh around it)
//     SWIFT_MULTIPROCESSING_POSTGRES_URL=postgres://... \
//         swift run -c release --package-path Benchmarks durable-bench [--runs N] [--quick]
//
// Ours: 2 producer and 2 consumer processes (4 connections), each with its own
// DurableQueue<Job> handle, connected and the schema made before the clock starts.
// Producers put 10,000 small Jobs (an Int and a String, 12 bytes of MessagePack) in all;
// consumers `get` and `taskDone` each until a stop item; the clock runs from "go" to the
// last consumer's last acknowledgement. Every item is checked (count and sum of ids),
// and the queue must be empty after. The table is vacuumed before each measurement.
// pgbench: `pgbench -n -M prepared -c 4 -j 2 -T 5` with a script of three statements,
// the ones DurableQueue sends: the insert and notify of a put, the claim of a get, the
// delete and notify of a taskDone; transactions per second = items put and got per second.
import Foundation
import BenchSupport
import Multiprocessing
import MultiprocessingPostgres

/// The item: small, as queue items mostly are.
struct Job: Codable, Sendable {
    var id: Int
    var name: String
}

/// A child's work: the queue, its share of the items, and the control connection on which
/// it says "ready", waits for "go", and (a consumer) sends its report.
struct Work: Codable, Sendable {
    var url: String
    var queue: String
    var first = 0
    var count = 0
    /// Items per call: 1 for put, get and taskDone of one item; more for the batch forms.
    var batch = 1
    var control: Connection
}

/// What a consumer acknowledged: how many items, and the sum of their ids.
struct Report: Codable, Sendable {
    var items = 0
    var idSum = 0
}

let producer = ChildProcess.Entry("producer") { (work: Work) in
    try blockingOn {
        let queue = try DurableQueue<Job>(url: work.url, name: work.queue)
        _ = try await queue.count  // connected, the schema there
        try await work.control.send("ready")
        _ = try await work.control.receive(String.self)  // "go"
        let ids = work.first..<(work.first + work.count)
        if work.batch == 1 {
            for id in ids { try await queue.put(Job(id: id, name: "job")) }
        } else {
            for start in stride(from: ids.lowerBound, to: ids.upperBound, by: work.batch) {
                try await queue.put(contentsOf: (start..<min(start + work.batch, ids.upperBound)).map { Job(id: $0, name: "job") })
            }
        }
        await queue.close()
    }
}

let consumer = ChildProcess.Entry("consumer") { (work: Work) in
    try blockingOn {
        let queue = try DurableQueue<Job>(url: work.url, name: work.queue)
        _ = try await queue.count
        try await work.control.send("ready")
        _ = try await work.control.receive(String.self)
        var report = Report()
        var stopped = false
        while !stopped {
            let deliveries = work.batch == 1 ? [try await queue.get()] : try await queue.get(upTo: work.batch)
            try await queue.taskDone(deliveries)
            for delivery in deliveries {
                if delivery.value.id < 0 {
                    stopped = true
                } else {
                    report.items += 1
                    report.idSum += delivery.value.id
                }
            }
        }
        try await work.control.send(report)
        await queue.close()
    }
}

try ChildProcess.bootstrap([producer, consumer])

let arguments = CommandLine.arguments
let quick = arguments.contains("--quick")
let runs = arguments.firstIndex(of: "--runs").flatMap { arguments.indices.contains($0 + 1) ? Int(arguments[$0 + 1]) : nil } ?? 5
let itemCount = quick ? 1_000 : 10_000
let (producers, consumers) = (2, 2)
let pgbenchSeconds = quick ? 2 : 5

func wrong(_ message: String) -> Never {
    FileHandle.standardError.write(Data("durable-bench: \(message)\n".utf8))
    exit(1)
}

guard let url = ProcessInfo.processInfo.environment["SWIFT_MULTIPROCESSING_POSTGRES_URL"] else {
    wrong("SWIFT_MULTIPROCESSING_POSTGRES_URL is unset: run `make bench-durable`, or `eval \"$(Scripts/postgres.sh start)\"` first")
}

/// Each measurement starts from a vacuumed table: the rows the one before deleted would
/// otherwise be cleaned up during the next (by autovacuum), slowing whichever came second.
func vacuum() {
    _ = execute(["psql", url, "-qc", "VACUUM durable_queue_items"])
}

/// Items per second put and got by `producers` and `consumers` processes.
func ours(run: Int, batch: Int) throws -> Double {
    vacuum()
    let name = "bench-\(ProcessInfo.processInfo.processIdentifier)-\(run)-\(batch)"
    var controls: [Connection] = []
    var children: [ChildProcess] = []
    for index in 0..<(producers + consumers) {
        let (mine, theirs) = try Connection.pipe()
        let isProducer = index < producers
        let share = itemCount / producers
        let work = Work(url: url, queue: name, first: isProducer ? index * share : 0, count: isProducer ? share : 0,
                        batch: batch, control: theirs)
        children.append(try ChildProcess.start(isProducer ? producer : consumer, work))
        theirs.close()
        controls.append(mine)
    }
    for control in controls { guard try control.receive(String.self) == "ready" else { wrong("a child did not start") } }
    let start = monotonicNanoseconds()
    for control in controls { try control.send("go") }
    for child in children.prefix(producers) {
        guard try child.join() == .exited(0) else { wrong("a producer failed") }
    }
    // The producers are done: stop items after every item, enough that each consumer gets
    // one even when one consumer's batch takes several.
    try blockingOn {
        let queue = try DurableQueue<Job>(url: url, name: name)
        try await queue.put(contentsOf: Array(repeating: Job(id: -1, name: "stop"), count: consumers * batch))
        await queue.close()
    }
    var total = Report()
    for control in controls.suffix(consumers) {
        let report = try control.receive(Report.self)
        total.items += report.items
        total.idSum += report.idSum
    }
    let seconds = Double(monotonicNanoseconds() - start) / 1e9
    for child in children.suffix(consumers) {
        guard try child.join() == .exited(0) else { wrong("a consumer failed") }
    }
    let expected = itemCount / producers * producers
    guard total.items == expected, total.idSum == (0..<expected).reduce(0, +) else {
        wrong("consumers acknowledged \(total.items) items with id sum \(total.idSum), not \(expected)")
    }
    let left = try blockingOn {
        let queue = try DurableQueue<Job>(url: url, name: name)
        var left = 0
        // Stop items no consumer took (a consumer stops at its first): taken out here.
        while let rest = try? await queue.get(upTo: 1000, timeout: .zero) {
            left += rest.filter { $0.value.id >= 0 }.count
            try await queue.taskDone(rest)
        }
        let count = try await queue.count
        await queue.close()
        return left + count
    }
    guard left == 0 else { wrong("\(left) items left in the queue") }
    return Double(expected) / seconds
}

/// The same three statements, from pgbench with prepared statements; transactions per second.
func pgbench(run: Int, batch: Int) -> Double? {
    vacuum()
    let queue = "pgbench-\(ProcessInfo.processInfo.processIdentifier)-\(run)-\(batch)"
    let (putChannel, leftChannel) = ("dq_put.\(queue)", "dq_left.\(queue)")
    // Job(id: 1, name: "job") as DurableQueue writes it: a map of two entries.
    let payload = "\\x82a2696401a46e616d65a36a6f62"
    // The claim always returns one row (a miss gives id 0, which the delete skips): pgbench's
    // \gset needs exactly one.
    let single = """
        WITH item AS (INSERT INTO durable_queue_items (queue, payload) VALUES ('\(queue)', '\(payload)'::bytea) RETURNING id) SELECT id, pg_notify('\(putChannel)', '') FROM item;
        WITH next AS (SELECT id FROM durable_queue_items WHERE queue = '\(queue)' AND visible_at <= now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED), claimed AS (UPDATE durable_queue_items AS item SET visible_at = now() + make_interval(secs => 30::float8), attempts = item.attempts + 1, lease_token = gen_random_uuid() FROM next WHERE item.id = next.id RETURNING item.id, item.payload, item.attempts, item.visible_at, item.lease_token) SELECT coalesce((SELECT id FROM claimed), 0) AS claimed_id, coalesce((SELECT lease_token FROM claimed), '00000000-0000-0000-0000-000000000000'::uuid) AS claimed_token, (SELECT payload FROM claimed) AS claimed_payload \\gset
        WITH done AS (DELETE FROM durable_queue_items WHERE id = :claimed_id AND lease_token = :claimed_token RETURNING id) SELECT id, pg_notify('\(leftChannel)', '') FROM done;

        """
    // The batch statements DurableQueue sends for put(contentsOf:), get(upTo:) and taskDone
    // of many; the claim's ids and tokens come back as arrays, for the delete.
    let batched = """
        WITH items AS (INSERT INTO durable_queue_items (queue, payload) SELECT '\(queue)', payload FROM unnest(array_fill('\(payload)'::bytea, ARRAY[\(batch)])) WITH ORDINALITY AS batch(payload, n) ORDER BY n RETURNING id) SELECT (SELECT count(*) FROM items), pg_notify('\(putChannel)', '');
        WITH next AS (SELECT id FROM durable_queue_items WHERE queue = '\(queue)' AND visible_at <= now() ORDER BY id LIMIT \(batch) FOR UPDATE SKIP LOCKED), claimed AS (UPDATE durable_queue_items AS item SET visible_at = now() + make_interval(secs => 30::float8), attempts = item.attempts + 1, lease_token = gen_random_uuid() FROM next WHERE item.id = next.id RETURNING item.id, item.payload, item.attempts, item.visible_at, item.lease_token) SELECT coalesce((SELECT array_agg(id) FROM claimed), '{}') AS claimed_ids, coalesce((SELECT array_agg(lease_token) FROM claimed), '{}') AS claimed_tokens, (SELECT count(payload) FROM claimed) AS claimed_count \\gset
        WITH done AS (DELETE FROM durable_queue_items AS item USING unnest(:claimed_ids::bigint[], :claimed_tokens::uuid[]) AS lease(id, token) WHERE item.id = lease.id AND item.lease_token = lease.token RETURNING item.id) SELECT id, pg_notify('\(leftChannel)', '') FROM done;

        """
    let script = batch == 1 ? single : batched
    let path = NSTemporaryDirectory() + "durable-bench-\(ProcessInfo.processInfo.processIdentifier).sql"
    guard (try? script.write(toFile: path, atomically: true, encoding: .utf8)) != nil else {
        note("pgbench", "could not write its script to \(path)")
        return nil
    }
    defer {
        try? FileManager.default.removeItem(atPath: path)
        // What the run left (items no transaction's claim found) goes, not to slow the next.
        _ = execute(["psql", url, "-qc", "DELETE FROM durable_queue_items WHERE queue = '\(queue)'"])
    }
    guard let components = URLComponents(string: url), let host = components.host else {
        note("pgbench", "could not read host and port from the URL")
        return nil
    }
    let database = String(components.path.dropFirst())
    let command = ["pgbench", "-n", "-M", "prepared", "-c", "\(producers + consumers)", "-j", "2", "-T", "\(pgbenchSeconds)",
                   "-f", path, "-h", host, "-p", "\(components.port ?? 5432)", "-U", components.user ?? "postgres", database]
    guard let result = execute(command), result.status == 0 else {
        note("pgbench", "failed or not found (Debian's postgresql has it): \(lastLine(execute(command)?.output ?? "not run"))")
        return nil
    }
    // "tps = 4321.123456 (without initial connection time)": a transaction moves `batch` items.
    guard let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
          let tps = Double(line.dropFirst(6).prefix(while: { $0 != " " }))
    else {
        note("pgbench", "printed no tps: \(lastLine(result.output))")
        return nil
    }
    return tps * Double(batch)
}

// --calls: the time of one call (`count`, one statement) from one process, one at a time,
// against pgbench's for the same statement with one client: the client's own cost.
if arguments.contains("--calls") {
    let perCall = try blockingOn {
        let queue = try DurableQueue<Job>(url: url, name: "calls")
        _ = try await queue.count
        let start = monotonicNanoseconds()
        for _ in 0..<2000 { _ = try await queue.count }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        await queue.close()
        return seconds / 2000 * 1e6
    }
    print("ours: \(fmt(perCall, 1)) µs a call")
    exit(0)
}

#if DEBUG
print("WARNING: a debug build; the numbers mean nothing. Use -c release.\n")
#endif
let began = monotonicNanoseconds()
let server = execute(["psql", url, "-Atc", "SHOW server_version"]).map { $0.output.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown"
let fsync = execute(["psql", url, "-Atc", "SHOW fsync"]).map { $0.output.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown"
print("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadAverage()) at start")
print("Server: PostgreSQL \(server) on this machine (fsync \(fsync)); client and server share the cores")
print("Method: each number is the median of \(runs) run\(runs == 1 ? "" : "s"); ours and pgbench take turns."
    + (quick ? " QUICK: a smoke test, not figures to quote." : ""))

let batchSize = 100
var run = 0
let results = measure([
    {
        run += 1
        return [try ours(run: run, batch: 1)]
    },
    { pgbench(run: run, batch: 1).map { [$0] } },
    { [try ours(run: run, batch: batchSize)] },
    { pgbench(run: run, batch: batchSize).map { [$0] } },
], runs: runs) { wrong("our queue failed: \($0)") }
let (oursSingle, floorSingle, oursBatch, floorBatch) = (results[0]?[0], results[1]?[0], results[2]?[0], results[3]?[0])

print("")
print(row(["items/s put and got, \(producers) producers and \(consumers) consumers (\(producers + consumers) connections)",
           "ours (DurableQueue)", "pgbench, same SQL", "ours / pgbench"]))
print("|---|---:|---:|---:|")
print(row(["one item a call (`put`, `get`, `taskDone`)", fmt(oursSingle), fmt(floorSingle), ratio(times(oursSingle, floorSingle))]))
print(row(["\(batchSize) items a call (`put(contentsOf:)`, `get(upTo:)`, `taskDone` of many)", fmt(oursBatch), fmt(floorBatch),
           ratio(times(oursBatch, floorBatch))]))
print("")
print("Ours: \(fmt(Double(itemCount))) Jobs (12 bytes of MessagePack each) put by \(producers) processes and got and "
    + "acknowledged by \(consumers), each with its own DurableQueue; one statement per call. pgbench: `pgbench -n -M prepared "
    + "-c \(producers + consumers) -j 2 -T \(pgbenchSeconds)`, each transaction the same put, claim and acknowledge statements "
    + "(items/s = transactions/s x items a call).")

printEnding(targets: [
    ("items/s, one item a call: at least 0.5x pgbench's with the same SQL", times(oursSingle, floorSingle), true, 0.5, "pgbench"),
    ("items/s, \(batchSize) items a call: at least 0.5x pgbench's with the same SQL", times(oursBatch, floorBatch), true, 0.5, "pgbench"),
    ("items/s: at least 5,000 on this machine (best of ours / 5,000)", [oursSingle, oursBatch].compactMap { $0 }.max().map { $0 / 5_000 },
     true, 1, "ours"),
], began: began)
