// swift-tools-version: 6.1
import PackageDescription

// The fuzzer: libFuzzer with AddressSanitizer, fed every way bytes come in.
// A package of its own, so that the library's builds and tests never need the
// fuzzer's runtime. `make fuzz` builds and runs it (see the Makefile):
//
//     swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
//         -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
let package = Package(
    name: "swift-multiprocessing-fuzz",
    dependencies: [
        .package(name: "swift-multiprocessing", path: ".."),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .executableTarget(
            name: "fuzz",
            dependencies: [
                .product(name: "MessagePack", package: "swift-multiprocessing"),
                .product(name: "Multiprocessing", package: "swift-multiprocessing"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [
                .swiftLanguageMode(.v6),
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        ),
    ]
)
