// swift-tools-version:6.1
import PackageDescription

/// CI builds with warnings as errors (`.ci/run` sets `BERTH_WARNINGS_AS_ERRORS=1`): a warning
/// in our own targets fails the build there, while a build in the middle of a change still runs.
let warningsAsErrors = Context.environment["BERTH_WARNINGS_AS_ERRORS"] == "1"

/// `make install`, the benchmarks and the GPU check's pack build the release `berth` as a fully
/// static executable: `BERTH_STATIC_CLI=1` with `--static-swift-stdlib`, without which such a
/// link fails. Any other build links it as before, so a plain `swift build -c release` works.
let staticCLI = Context.environment["BERTH_STATIC_CLI"] == "1"

/// Strict checks for every target, as Hummingbird does: `any` is spelled out and imports are
/// internal unless a module says otherwise.
let strictSettings: [SwiftSetting] =
    [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ] + (warningsAsErrors ? [.unsafeFlags(["-warnings-as-errors"])] : [])

let package = Package(
    name: "berth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "berthd", targets: ["berthd"]),
        .executable(name: "berth", targets: ["berth"]),
        .executable(name: "berth-runner", targets: ["berth-runner"]),
        .executable(name: "berth-bench", targets: ["berth-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // SHA-256 of API keys; already in the build through swift-nio-extras.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"6.0.0"),
    ],
    targets: [
        // Pure domain and decisions: FoundationEssentials at most, as the CLI links it.
        .target(name: "BerthCore", swiftSettings: strictSettings),
        // The check of a job's dataset, pure but for Foundation's JSONSerialization (twice as fast
        // as JSONDecoder on a 100 MB file): beside BerthCore, which stays out of Foundation.
        .target(name: "BerthDataset", dependencies: ["BerthCore"], swiftSettings: strictSettings),
        // Request and response bodies, shared by the server and the CLI so the two cannot drift.
        .target(name: "BerthWire", dependencies: ["BerthCore"], swiftSettings: strictSettings),
        .target(
            name: "BerthStore",
            dependencies: ["BerthCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        // The daemon's TOML config: parsed, checked with key paths, mapped to core values.
        .target(
            name: "BerthConfig",
            dependencies: ["BerthCore", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strictSettings
        ),
        // fork to exec of a runner with its user's identity: only C may run in that window.
        .target(name: "CBerthSpawn"),
        .target(
            name: "BerthExecutors",
            dependencies: ["BerthCore", "CBerthSpawn"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BerthServer",
            dependencies: [
                "BerthCore", "BerthDataset", "BerthWire", "BerthStore", "BerthExecutors", "BerthConfig", "BerthClient",
                "CBerthSpawn",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "berthd",
            dependencies: [
                "BerthServer", "BerthConfig", "BerthWire", "BerthStore", "BerthExecutors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "BerthClient",
            dependencies: [
                "BerthWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "berth",
            dependencies: [
                "BerthCore", "BerthWire", "BerthClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings,
            // A release CLI that starts fast (docs/benchmarks.md): position-dependent, so the
            // loader applies no relative relocations at each start; and with BERTH_STATIC_CLI=1
            // (`make install` and the benchmarks set it; it needs `--static-swift-stdlib`) a
            // fully static executable, with no dynamic loader and no libstdc++ to start at all.
            // berthd stays a dynamically linked PIE.
            linkerSettings: [.unsafeFlags(staticCLI ? ["-static-executable"] : ["-Xlinker", "--no-pie"], .when(configuration: .release))]
        ),
        // The reference runner's language model: a smoothed word n-gram model, pure Swift.
        .target(name: "BerthNGram", swiftSettings: strictSettings),
        .executableTarget(
            name: "berth-runner",
            dependencies: [
                "BerthCore", "BerthNGram", "BerthWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        // Load generator for the invocation benchmark (Benchmarks/run-invoke-bench.sh).
        .executableTarget(
            name: "berth-bench",
            dependencies: [
                "BerthClient", "BerthWire", "BerthCore", "BerthStore", "BerthConfig", "BerthNGram",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/berth-bench",
            swiftSettings: strictSettings
        ),
        .target(
            name: "BerthTestSupport",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthServer", "BerthStore", "BerthNGram", "BerthExecutors",
                // LedgerInvariants reads the ledger file itself, read-only.
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/BerthTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(name: "BerthCoreTests", dependencies: ["BerthCore", "BerthDataset", "BerthTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "BerthNGramTests", dependencies: ["BerthNGram", "BerthWire", "BerthTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "BerthConfigTests", dependencies: ["BerthConfig", "BerthTestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "BerthStoreTests",
            dependencies: ["BerthStore", "BerthTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "BerthServerTests",
            dependencies: [
                "BerthServer", "BerthExecutors", "BerthStore", "BerthWire", "BerthConfig", "BerthCore", "BerthTestSupport",
                // Route tests run the control socket's router in-process.
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["BerthServer", "BerthTestSupport", "BerthClient", "BerthWire"],
            swiftSettings: strictSettings
        ),
        // The manual: links, the CLI reference, config keys and the dashboard checked against the code.
        .testTarget(
            name: "DocsTests",
            dependencies: ["BerthConfig", "BerthServer", "BerthClient", "BerthTestSupport"],
            swiftSettings: strictSettings
        ),
        // Against a real single-node Slurm the target starts once (munge, slurmctld, slurmd).
        .testTarget(
            name: "SlurmTests",
            dependencies: ["BerthTestSupport", "BerthWire", "BerthClient", "BerthExecutors", "BerthCore", "BerthConfig"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["BerthTestSupport", "BerthCore", "BerthWire", "BerthClient", "BerthStore"],
            swiftSettings: strictSettings
        ),
    ]
)
