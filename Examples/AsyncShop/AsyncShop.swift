// The README's async example ("Swift concurrency"), as written there: it must
// compile and work. `make demo` runs it after Shop.
import Foundation
import Multiprocessing

struct Order: Codable, Sendable {
    var id: Int
    var item: String
}

struct Receipt: Codable, Sendable {
    var order: Int
    var packer: Int32
}

struct Packing: Codable, Sendable {
    var orders: Queue<Order>
    var receipts: Queue<Receipt>
}

// The child packs orders until the end marker (id 0). Its entry is ordinary
// blocking code: the child has threads of its own.
let packer = ChildProcess.Entry("packer") { (work: Packing) in
    while true {
        let order = try work.orders.get()
        if order.id == 0 { break }
        try work.receipts.put(Receipt(order: order.id, packer: getpid()))
    }
}

@main struct AsyncShop {
    static func main() async throws {
        try ChildProcess.bootstrap([packer])
        let work = Packing(orders: try Queue(maxsize: 2), receipts: try Queue())
        try await ChildProcess.run(packer, work) { child in
            for id in 1...5 {
                try await work.orders.put(Order(id: id, item: "tea"))  // suspends while 2 wait
            }
            try await work.orders.put(Order(id: 0, item: ""))          // the end marker
            var packed = 0
            for try await receipt in work.receipts {                   // suspends between receipts
                print("order \(receipt.order) packed by process \(receipt.packer)")
                packed += 1
                if packed == 5 { break }
            }
        }   // waits for the packer to end; on a throw or cancellation: SIGTERM, 5 s, SIGKILL
        print("all packed")
    }
}
