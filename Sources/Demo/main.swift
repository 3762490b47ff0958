// `make demo`: the seed tutorial's programs (Python's multiprocessing.Queue), in
// Swift, between real processes; and the codec's round trip underneath them.
import Foundation
import MessagePack
import Multiprocessing

struct Order: Codable, Sendable, Equatable {
    struct Line: Codable, Sendable, Equatable {
        var item: String
        var quantity: Int
    }
    var id: Int
    var customer: String
    var lines: [Line]
    var placed: Date
    var note: String?
}

struct Shop: Codable, Sendable {
    var orders: Queue<Order>
    var done: JoinableQueue<Int>
    var producer: Int
}

// Program 2: a producer process puts "hello", a consumer process gets it.
let helloProducer = ChildProcess.Entry("hello-producer") { (queue: Queue<String>) in
    try queue.put("hello")
}
let helloConsumer = ChildProcess.Entry("hello-consumer") { (queue: Queue<String>) in
    print("  consumer (pid \(getpid())) got: \(try queue.get(timeout: .seconds(30)))")
}

// Program 3: two producers, two consumers, one bounded queue of structs.
let orderProducer = ChildProcess.Entry("order-producer") { (shop: Shop) in
    for number in 1...3 {
        let id = shop.producer * 100 + number
        try shop.orders.put(Order(
            id: id, customer: "customer-\(id)", lines: [.init(item: "tea", quantity: number)],
            placed: Date(timeIntervalSince1970: 1_700_000_000 + Double(id)), note: number == 2 ? "ring twice" : nil))
    }
}
let orderConsumer = ChildProcess.Entry("order-consumer") { (shop: Shop) in
    while let order = try? shop.orders.get(timeout: .seconds(2)) {
        print("  consumer \(shop.producer) (pid \(getpid())) took order \(order.id): \(order.lines[0].quantity) × \(order.lines[0].item)\(order.note.map { ", \($0)" } ?? "")")
        try shop.done.put(order.id)
    }
}
// JoinableQueue: a worker marks each task done; the parent's join() waits for all.
let worker = ChildProcess.Entry("worker") { (tasks: JoinableQueue<Int>) in
    while let task = try? tasks.get(timeout: .seconds(2)) {
        try tasks.taskDone()
        if task < 0 { break }
    }
}

try ChildProcess.bootstrap([
    helloProducer, helloConsumer, orderProducer, orderConsumer, worker, numberProducer, numberConsumer, squareOrCrash,
    itemProducer,
])

// `Demo survival`: the crash-survival and pool scenes alone (make demo runs them after the examples).
if CommandLine.arguments.dropFirst().first == "survival" {
    print("\n7. Kill -9 mid-stream: 2 producer and 2 consumer processes stream numbers through one Queue<Int>(maxsize: 100);")
    print("   one of each is SIGKILLed at a random moment and replaced")
    guard try crashSurvivalScene() else { exit(1) }
    print("\n8. A process pool whose worker segfaults on one input: 40 tasks on 2 workers, input 13 crashes its worker")
    let poolHeld = try _waitBlocking { try await poolSurvivalScene() }
    exit(poolHeld ? 0 : 1)
}

// `Demo speed`: the speed scene alone (make demo runs it from a release build, last).
if CommandLine.arguments.dropFirst().first == "speed" {
    print("\n9. Speed, measured live: small items (a struct of 5 fields, about 57 bytes as MessagePack) for \(speedSeconds) seconds")
    print("   from 1 producer process to 1 consumer process, through a Queue<Item>(maxsize: \(speedMaxsize)) and through Python's")
    print("   multiprocessing.Queue(\(speedMaxsize)) with the same item as a dict, taking turns \(speedTurnSeconds) second at a time")
    exit(try speedScene() ? 0 : 1)
}

// 0. The codec: a struct to MessagePack bytes and back.
let order = Order(
    id: 1, customer: "Ada", lines: [.init(item: "tea", quantity: 2)],
    placed: Date(timeIntervalSince1970: 1_700_000_000.25), note: nil)
let bytes = try MessagePackEncoder().encode(order)
print("0. An Order as \(bytes.count) bytes of MessagePack (JSONEncoder: \(try JSONEncoder().encode(order).count)):")
print("  " + bytes.map { String(format: "%02x", $0) }.joined(separator: " "))
print("  as tagged JSON: \(try MessagePackValue(bytes: bytes).json())")
print("  decoded back: \(try MessagePackDecoder().decode(Order.self, from: bytes) == order ? "equal" : "DIFFERENT")")

// 1. The seed's Queue(3): full, put_nowait, empty, get_nowait.
print("\n1. Queue<Int>(maxsize: 3)")
let small = try Queue<Int>(maxsize: 3)
for value in [3, 3, 3] { try small.put(value) }
print("  three puts; isFull: \(small.isFull)")
do {
    try small.putNowait(3)
} catch QueueError.full {
    print("  putNowait threw .full: the queue is full (队列已经满了)")
}
for _ in 0..<3 { print("  get: \(try small.get())") }
do {
    _ = try small.getNowait()
} catch QueueError.empty {
    print("  getNowait threw .empty: the queue is empty (队列已经空了)")
}
print("  isEmpty: \(small.isEmpty)")

// 2. A producer process hands a consumer process a message.
print("\n2. A producer process puts \"hello\"; a consumer process gets it")
let greetings = try Queue<String>()
let consumer = try ChildProcess.start(helloConsumer, greetings)
let producer = try ChildProcess.start(helloProducer, greetings)
print("  producer \(try producer.join()), consumer \(try consumer.join())")

// 3. Two producers and two consumers share one bounded queue of structs.
print("\n3. Two producer and two consumer processes, one Queue<Order>(maxsize: 2)")
let orders = try Queue<Order>(maxsize: 2)
let done = try JoinableQueue<Int>()
var children: [ChildProcess] = []
for number in 1...2 {
    children.append(try ChildProcess.start(orderConsumer, Shop(orders: orders, done: done, producer: number)))
}
for number in 1...2 {
    children.append(try ChildProcess.start(orderProducer, Shop(orders: orders, done: done, producer: number)))
}
for child in children { _ = try child.join() }
var taken: [Int] = []
while let id = try? done.getNowait() { taken.append(id) }
print("  every order taken once: \(taken.sorted() == [101, 102, 103, 201, 202, 203]) (\(taken.sorted()))")

print("\n   A JoinableQueue: join() returns when a worker process has marked every task done")
let tasks = try JoinableQueue<Int>()
let workerProcess = try ChildProcess.start(worker, tasks)
for task in [1, 2, 3, -1] { try tasks.put(task) }
print("  join: \(try tasks.join(timeout: .seconds(60)) ? "all 4 tasks done" : "timed out"); worker \(try workerProcess.join())")
