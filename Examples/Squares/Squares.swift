// The README's process-pool example ("Process pool"), as written there: it must
// compile and work. `make demo` runs it after AsyncShop.
import Multiprocessing

let square = ProcessPool.Task("square") { (x: Int) in x * x }

@main struct Squares {
    static func main() async throws {
        try ChildProcess.bootstrap([square])              // in a worker: serves tasks, then exits
        try await withProcessPool(workers: 4) { pool in
            print(try await pool.run(square, 7))           // 49
            for try await y in pool.map(square, 1...100) { print(y) }        // in order, as Python's map
            for await done in pool.mapUnordered(square, 1...100) {           // as they finish
                print(done.index, try done.result.get())
            }
        }                                                 // drains, then ends the workers
    }
}
