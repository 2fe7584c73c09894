// swift-tools-version: 6.1
// Trainyard: a self-hosted YOLO training service. The targets follow the
// boundaries in DESIGN.md: a domain with no I/O, one target per boundary
// (store, queue, engine, tracker, artifacts), the worker and the server as
// libraries, and a thin `yard` executable.
import PackageDescription

let package = Package(
    name: "Trainyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "yard", targets: ["yard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.4.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Job spec, state machine, engine events, redaction. No I/O.
        .target(name: "YardDomain", dependencies: [
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Job records, epochs, events, logs, artifacts: SQLite (GRDB) and memory.
        .target(name: "YardStore", dependencies: [
            "YardDomain",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // Work queue: embedded (SQLite, survives restarts), memory, and Redis Streams (workers elsewhere).
        // The worker's seams (queue, ledger, worker registry) and their drivers: embedded
        // (SQLite), memory, and Redis (workers elsewhere; the server's report consumer,
        // job board and wyolo bridge beside them, handing what they read to the job layer).
        .target(name: "YardQueue", dependencies: [
            "YardDomain", "YardStore", "YardRedis",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The job layer: every transition of a job (submit, claim, state, stop, resume,
        // recover, prune, workers' reports), one place for each change of state.
        .target(name: "YardJobs", dependencies: [
            "YardDomain", "YardStore", "YardQueue",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // GNU extensions Swift's Glibc does not import: spawn/pipe for the engine runner, memmem for multipart.
        .target(name: "CYardSpawn"),
        // Spawns the Python engine and decodes its JSON-line events.
        .target(name: "YardEngine", dependencies: [
            "YardDomain", "CYardSpawn",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Where runs are recorded: the store, and MLflow (REST, spooled to disk).
        .target(name: "YardTracker", dependencies: [
            "YardDomain", "YardStore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Where weights and plots are kept: a local folder, or S3/MinIO (SigV4).
        .target(name: "YardArtifacts", dependencies: [
            "YardDomain",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Redis over SwiftNIO (RESP): the queue and worker seam for workers on other machines.
        .target(name: "YardRedis", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Sweeps: the study protocol with the engine's Optuna process, the sweep service.
        .target(name: "YardSweeps", dependencies: [
            "YardDomain", "YardEngine", "YardStore", "YardTracker", "YardJobs",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Datasets: DVC-compatible hashing, import (YOLO, flat, COCO, ZIP), validation, the version store.
        .target(name: "YardDatasets", dependencies: [
            "YardDomain", "YardArtifacts",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        // Claims jobs, runs the engine, routes its events.
        .target(name: "YardWorker", dependencies: [
            "YardDomain", "YardStore", "YardQueue", "YardEngine", "YardTracker", "YardArtifacts", "YardRedis", "YardDatasets",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The model registry of record, the weights cache, the predictor pool.
        .target(name: "YardServing", dependencies: [
            "YardDomain", "YardStore", "YardJobs", "YardEngine", "YardTracker", "YardArtifacts", "YardDatasets",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Webhooks: follows the event log and delivers signed, retried, persisted notifications.
        .target(name: "YardWebhooks", dependencies: [
            "YardDomain", "YardStore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Backup, restore and retention of a data dir: a tar of our own (hashed as it is written, checked before
        // anything is restored), SQLite's online backup of the store, what references what for `yard gc`.
        .target(name: "YardBackup", dependencies: [
            "YardDomain", "YardStore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // REST API, SSE, auth, error mapping.
        .target(name: "YardServer", dependencies: [
            "YardDomain", "YardStore", "YardQueue", "YardRedis", "YardJobs", "YardWorker", "YardEngine", "YardTracker", "YardArtifacts", "YardSweeps", "YardDatasets", "YardServing", "YardWebhooks",
            "YardBackup", "CYardSpawn",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            // Traces to an OTLP/HTTP collector (Telemetry/TraceExporter).
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            // `/api/events` writes its frames straight into the connection (EventFanout).
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            // `--tls-cert/--tls-key`: HTTPS without a proxy.
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The commands: argument parsing, HTTP client, progress bar.
        .target(name: "YardCLI", dependencies: [
            "YardDomain", "YardServer", "YardEngine", "YardJobs", "YardQueue", "YardWorker", "YardDatasets", "YardServing", "YardWebhooks", "YardBackup", "YardTracker", "YardStore", "YardArtifacts",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "yard", dependencies: ["YardCLI"]),
        // The Swift half of bench/mlflow_metrics.sh and bench/streams.sh.
        .executableTarget(name: "YardBench", dependencies: [
            "YardDomain", "YardStore", "YardQueue", "YardRedis", "YardTracker", "YardServer", "YardArtifacts", "YardEngine", "YardJobs", "YardWorker",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // Fixtures shared by the test suites: temp folders, a scripted engine.
        .target(name: "YardTestSupport", dependencies: ["YardDomain", "YardStore", "YardQueue", "YardEngine", "YardRedis", .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "Hummingbird", package: "hummingbird")], path: "Tests/YardTestSupport"),
        .testTarget(name: "YardDomainTests", dependencies: ["YardDomain", "YardEngine"]),
        .testTarget(name: "YardArtifactsTests", dependencies: ["YardArtifacts"]),
        .testTarget(name: "YardDatasetsTests", dependencies: ["YardDatasets", "YardArtifacts", "YardTestSupport"]),
        .testTarget(name: "YardRedisTests", dependencies: ["YardRedis", "YardQueue", "YardStore", "YardTestSupport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "YardStoreTests", dependencies: ["YardStore", "YardQueue", "YardRedis", "YardTestSupport"]),
        .testTarget(name: "YardServerTests", dependencies: [
            "YardServer", "YardCLI", "YardJobs", "YardQueue", "YardWorker", "YardTracker", "YardArtifacts", "YardRedis", "YardSweeps", "YardTestSupport", "YardDatasets", "YardServing", "YardWebhooks", "YardBackup",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .testTarget(name: "YardBackupTests", dependencies: [
            "YardBackup", "YardDomain", "YardStore", "YardTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "YardWebhooksTests", dependencies: [
            "YardWebhooks", "YardDomain", "YardStore", "YardTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "YardEndToEndTests", dependencies: [
            "YardDomain", "YardEngine", "YardArtifacts", "YardRedis", "YardSweeps", "YardTestSupport", "YardServer",
            "YardStore", "YardQueue", "YardJobs", "YardWorker", "YardTracker", "YardDatasets", "YardWebhooks",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
