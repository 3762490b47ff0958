import Foundation
import MultiprocessingPostgres

struct Order: Codable, Sendable {
    var id: Int
    var item: String
}

@main struct DurableShop {
    static func main() async throws {
        let url = ProcessInfo.processInfo.environment["SWIFT_MULTIPROCESSING_POSTGRES_URL"]
            ?? "postgres://postgres@127.0.0.1:54329/durable_queue_tests?sslmode=disable"
        let orders = try DurableQueue<Order>(url: url, name: "orders", maxsize: 100)
        try await orders.put(Order(id: 1, item: "tea"))          // committed: survives any crash
        let delivery = try await orders.get(timeout: .seconds(5)) // leased for 30 s
        print("got \(delivery.value), delivery \(delivery.attempt)")
        try await orders.taskDone(delivery)                       // acknowledged: deleted
        print("left: \(try await orders.count)")
        await orders.close()                                      // ends the connection pool
    }
}
