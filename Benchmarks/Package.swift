// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for the MessagePack library, kept out of the main package so that
// building the library and its tests never builds them. No dependencies beyond
// the library itself: this builds in a few minutes.
//
//     swift run -c release --package-path Benchmarks codec-bench
let package = Package(
    name: "swift-multiprocessing-benchmarks",
    dependencies: [
        .package(name: "swift-multiprocessing", path: ".."),
    ],
    targets: [
        // msgpack-c, for the hand-written floor the library is measured against.
        .systemLibrary(
            name: "CMsgPackBench",
            pkgConfig: "msgpack",
            providers: [.apt(["libmsgpack-dev"])]
        ),
        // The value under test and the hand-written msgpack-c floor. A module of its
        // own, apart from the library: both see msgpack-c's headers, and in one module
        // Clang would merge the two copies and credit them to the library's CMsgPack.
        .target(name: "CodecFloor", dependencies: ["CMsgPackBench"]),
        // What queue-bench and pool-bench share: the clock, the reference programs,
        // medians of interleaved runs, the tables.
        .target(name: "BenchSupport"),
        // Queues between processes, against Python's multiprocessing.Queue, faster-fifo and
        // C floors (a pipe, a shared-memory ring): throughput and round-trip latency.
        .executableTarget(
            name: "queue-bench",
            dependencies: ["BenchSupport", .product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
        // Tiny tasks through a ProcessPool (ordered and unordered) and one task's round
        // trip, against Python's multiprocessing.Pool and ProcessPoolExecutor.
        .executableTarget(
            name: "pool-bench",
            dependencies: ["BenchSupport", .product(name: "Multiprocessing", package: "swift-multiprocessing")]
        ),
        // Items through a DurableQueue between processes, against pgbench running the same
        // SQL on the same PostgreSQL server (`make bench-durable` starts one).
        .executableTarget(
            name: "durable-bench",
            dependencies: [
                "BenchSupport",
                .product(name: "Multiprocessing", package: "swift-multiprocessing"),
                .product(name: "MultiprocessingPostgres", package: "swift-multiprocessing"),
            ]
        ),
        .executableTarget(
            name: "codec-bench",
            dependencies: [
                "CodecFloor",
                .product(name: "MessagePack", package: "swift-multiprocessing"),
            ]
        ),
    ]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
