// The README's first example, as written there: it must compile
// and work. `make demo` runs it after the seed's programs.
import Foundation
import Multiprocessing

struct Order: Codable, Sendable {
    var id: Int
    var item: String
    var placed: Date
}

let consumer = ChildProcess.Entry("consumer") { (queue: Queue<Order>) in
    while let order = try? queue.get(timeout: .seconds(1)) { print(order) }
}
@main struct Shop {
    static func main() throws {
        try ChildProcess.bootstrap([consumer])   // in a child: runs its entry, then exits
        let queue = try Queue<Order>(maxsize: 3)
        let child = try ChildProcess.start(consumer, queue)
        try queue.put(Order(id: 1, item: "tea", placed: .now))
        let termination = try child.join()       // .exited(code) or .signaled(signal)
        print("the consumer \(termination)")
    }
}
