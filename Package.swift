// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-multiprocessing",
    products: [
        .library(name: "MessagePack", targets: ["MessagePack"]),
        .executable(name: "msgpack", targets: ["msgpack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .executableTarget(
            name: "msgpack",
            dependencies: [
                "MessagePack",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `make demo`: the main job, a Codable struct to bytes and back.
        .executableTarget(name: "Demo", dependencies: ["MessagePack"]),
        .testTarget(
            name: "MessagePackTests",
            dependencies: ["MessagePack"]
        ),
    ]
)

// Every Swift target: Swift 6 mode with the upcoming features the style guide asks for.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
