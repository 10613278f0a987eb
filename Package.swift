// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "gpuledger",
    platforms: [.macOS(.v15)], // Synchronization.Mutex
    products: [
        .executable(name: "gpuledger", targets: ["gpuledger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // OTLP trace export bodies (POST /v1/traces): protobuf and its JSON mapping; gzip.
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        // Tracing of gpuledger itself: the API (spans in the stores and handlers) and, in the
        // service, OTLP/HTTP export (only the OTLPHTTP trait: no gRPC stack is built).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // HTTP client: Prometheus's query API (GPU hardware telemetry); the tests' (HummingbirdTesting builds it too).
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure core: records, validation, the fast record parser, time and money. No I/O.
        .target(name: "GPULedgerCore", swiftSettings: strict),
        // PostgreSQL: embedded cluster, migrations, keys, ingest.
        .target(
            name: "GPULedgerStore",
            dependencies: [
                "GPULedgerCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // ConnectionPoolError, to classify a database that cannot be reached by type.
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // The OpenTelemetry trace messages (opentelemetry-proto, Apache-2.0), generated once by
        // scripts/generate-otlp-swift and committed: no build runs protoc or its plugin.
        .target(
            name: "OTLPProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["OPENTELEMETRY_PROTO_VERSION"]
        ),
        // OTLP trace exports → usage records (contract section 5): decoding, the span mapping,
        // the answer. No I/O.
        .target(
            name: "GPULedgerOTLP",
            dependencies: [
                "GPULedgerCore", "OTLPProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // GPU hardware telemetry: dcgm-exporter's series through Prometheus's query API.
        .target(
            name: "GPULedgerTelemetry",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        // What the API and the console share over HTTP: the request context, AppError and its
        // mapping, the query string, responses, middleware, the service's configuration.
        .target(
            name: "GPULedgerHTTP",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // The HTTP API: one controller per resource, /metrics, the background services.
        .target(
            name: "GPULedgerAPI",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerOTLP", "GPULedgerTelemetry",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            // The OpenAPI description, served as is at GET /openapi.yaml.
            resources: [.copy("Resources/openapi.yaml")],
            swiftSettings: strict
        ),
        // The web console: pages rendered on the server from the same stores; a sibling of the API.
        .target(
            name: "GPULedgerConsole",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerTelemetry",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        // The service: the API's and the console's routes and the background services on one database.
        .target(
            name: "GPULedgerApp",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerAPI", "GPULedgerConsole", "GPULedgerTelemetry",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: strict
        ),
        // The thin executable: command-line parsing and wiring.
        .executableTarget(
            name: "gpuledger",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerAPI", "GPULedgerApp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GPULedgerTestSupport",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerAPI", "GPULedgerApp", "GPULedgerOTLP",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-ingest",
            dependencies: ["GPULedgerCore", "GPULedgerStore", "GPULedgerAPI", "GPULedgerTestSupport"],
            path: "Benchmarks/IngestBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-console",
            dependencies: ["GPULedgerCore", "GPULedgerStore", "GPULedgerTestSupport"],
            path: "Benchmarks/ConsoleBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-reports",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ReportsBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-planning",
            dependencies: ["GPULedgerCore", "GPULedgerTestSupport"],
            path: "Benchmarks/PlanningBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-metrics",
            dependencies: ["GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerAPI", "GPULedgerApp", "GPULedgerTestSupport"],
            path: "Benchmarks/MetricsBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-bench-otlp",
            dependencies: [
                "GPULedgerCore", "GPULedgerOTLP", "GPULedgerTestSupport", "OTLPProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/OTLPBenchmark",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-fuzz-otlp",
            dependencies: ["GPULedgerTestSupport"],
            path: "Benchmarks/OTLPFuzz",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gpuledger-backtest",
            dependencies: ["GPULedgerCore", "GPULedgerTestSupport"],
            path: "Benchmarks/ForecastBacktest",
            swiftSettings: strict
        ),
        .testTarget(name: "GPULedgerCoreTests", dependencies: ["GPULedgerCore", "GPULedgerTestSupport", "GPULedgerTelemetry"], swiftSettings: strict),
        .testTarget(
            name: "GPULedgerIntegrationTests",
            dependencies: [
                "GPULedgerCore", "GPULedgerStore", "GPULedgerHTTP", "GPULedgerAPI", "GPULedgerApp", "GPULedgerTestSupport", "GPULedgerTelemetry",
                "GPULedgerOTLP", "OTLPProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
