// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-multiprocessing",
    products: [
        .library(name: "MessagePack", targets: ["MessagePack"]),
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .library(name: "MultiprocessingPostgres", targets: ["MultiprocessingPostgres"]),
        .executable(name: "msgpack", targets: ["msgpack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // `make docs`: DocC's `generate-documentation` command; no target links it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // msgpack-c from Debian's libmsgpack-dev: every byte of packing and unpacking.
        .systemLibrary(
            name: "CMsgPack",
            pkgConfig: "msgpack",
            providers: [.apt(["libmsgpack-dev"])]
        ),
        // Codable <-> MessagePack; the msgpack-c calls live in Sources/MessagePack/MsgPackC/.
        .target(name: "MessagePack", dependencies: ["CMsgPack"]),
        // Linux calls Swift's Glibc module cannot see, behind _GNU_SOURCE.
        .target(name: "CSystemShims", cSettings: [.define("_GNU_SOURCE")]),
        // Frames, connections, queues and child processes between real processes.
        .target(
            name: "Multiprocessing",
            dependencies: [
                "MessagePack", "CSystemShims",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // libpq from Debian's libpq-dev: PostgreSQL's own client library, for DurableQueue.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // DurableQueue: a queue in PostgreSQL tables, its own product, so that local users
        // link no database client.
        .target(name: "MultiprocessingPostgres", dependencies: ["MessagePack", "Multiprocessing", "CLibPQ"]),
        .executableTarget(
            name: "msgpack",
            dependencies: [
                "MessagePack",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `make demo`: the seed's queue programs between processes, and the codec.
        .executableTarget(name: "Demo", dependencies: ["MessagePack", "Multiprocessing"]),
        // The README's first example, compiled as written (`make demo` runs it).
        .executableTarget(name: "Shop", dependencies: ["Multiprocessing"], path: "Examples/Shop"),
        // The README's async example, compiled as written.
        .executableTarget(name: "AsyncShop", dependencies: ["Multiprocessing"], path: "Examples/AsyncShop"),
        // The README's process-pool example, compiled as written.
        .executableTarget(name: "Squares", dependencies: ["Multiprocessing"], path: "Examples/Squares"),
        // The README's DurableQueue example, compiled as written (`make demo-durable` runs it).
        .executableTarget(name: "DurableShop", dependencies: ["MultiprocessingPostgres"], path: "Examples/DurableShop"),
        .testTarget(
            name: "MessagePackTests",
            dependencies: ["MessagePack"]
        ),
        // The child program the Multiprocessing tests spawn, and the arguments both sides share.
        .target(name: "MultiprocessingTestSupport", dependencies: ["Multiprocessing"], path: "Tests/MultiprocessingTestSupport"),
        .executableTarget(
            name: "MultiprocessingTestHelper",
            dependencies: ["Multiprocessing", "MessagePack", "MultiprocessingTestSupport"],
            path: "Tests/MultiprocessingTestHelper"
        ),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: [
                "Multiprocessing", "MessagePack", "MultiprocessingTestHelper", "MultiprocessingTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The producer and consumer processes DurableQueue's tests start.
        .executableTarget(
            name: "DurableQueueTestHelper",
            dependencies: [
                "MultiprocessingPostgres", "Multiprocessing",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/DurableQueueTestHelper"
        ),
        .testTarget(
            name: "MultiprocessingPostgresTests",
            dependencies: ["MultiprocessingPostgres", "Multiprocessing", "DurableQueueTestHelper"]
        ),
    ]
)

// Every Swift target: Swift 6 mode with the upcoming features the style guide asks for.
for target in package.targets where target.type != .system && target.name != "CSystemShims" {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
