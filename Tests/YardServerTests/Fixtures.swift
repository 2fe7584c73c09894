import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import YardArtifacts
import YardBackup
import YardDomain
import YardEngine
import YardQueue
import YardServer
import YardStore
import YardTestSupport
import YardWebhooks

/// A Yard on the memory drivers with a scripted engine.
struct TestYard {
    let dir: TemporaryDirectory
    let yard: Yard
    let data: String

    /// With `sqlite`, the store and queue are the embedded drivers on a file in the temp folder.
    /// `directory` is an existing folder to use as the data dir.
    init(token: String? = nil, store: (any JobStore)? = nil, queue: (any JobQueue)? = nil, allowDatasetSymlinks: Bool = false,
         sqlite: Bool = false, directory: String? = nil, datasetRoots: [String] = [], webhooks: WebhookSettings = WebhookSettings(),
         tls: ServerTLS? = nil, engine: EngineEnvironment? = nil, remote: RemoteWorkers? = nil,
         tracing: TraceSettings? = nil, retention: RetentionSchedule? = nil) throws {
        dir = try directory.map(TemporaryDirectory.init(at:)) ?? TemporaryDirectory("yard-server")
        var options = YardOptions()
        options.dataDirectory = dir.path
        options.token = token
        options.stopGrace = .seconds(2)
        options.port = 0  // `live` listens on a free port
        options.allowDatasetSymlinks = allowDatasetSymlinks
        options.datasetRoots = datasetRoots
        options.webhooks = webhooks
        options.tls = tls
        options.tracing = tracing
        options.retention = retention
        var store = store ?? MemoryJobStore()
        var queue: any JobQueue = queue ?? MemoryJobQueue()
        if sqlite {
            let database = try YardDatabase(path: dir.file("yard.sqlite"))
            store = SQLiteJobStore(database: database)
            queue = SQLiteJobQueue(database: database)
        }
        yard = Yard(options: options, store: store, queue: queue,
                    artifacts: LocalArtifactStore(root: dir.path + "/artifacts"),
                    engine: engine ?? EngineEnvironment(python: "/nonexistent", engineDirectory: "/nonexistent", ultralyticsDirectory: dir.path),
                    remote: remote)
        data = try dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
    }

    func config(_ extra: String = "", epochs: Int = 3) -> String {
        "model: yolov8n.yaml\ntrain: {data: \(data), epochs: \(epochs), imgsz: 32}\n" + extra
    }

    /// A worker that retries recording how a job ended at once (`settleBackoff`).
    func worker(_ runner: ScriptedEngineRunner, settleBackoff: [Duration] = [.milliseconds(20)],
                configure: (inout Worker.Configuration) -> Void = { _ in }) -> YardWorkerHandle {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return YardWorkerHandle(worker: yard.workers(runner: runner, logger: logger)[0].reconfigured {
            $0.settleBackoff = settleBackoff
            configure(&$0)
        })
    }

    /// The application `yard up` serves (`Yard.buildApplication`), without a socket.
    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await yard.buildApplication(logger: Self.quiet).test(.router, body)
    }

    /// The same application behind a real socket on 127.0.0.1; `body` gets its port.
    func live(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await yard.buildApplication(logger: Self.quiet).test(.live) { client in try await body(client.port ?? 0) }
    }

    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }
}

import YardWorker

struct YardWorkerHandle {
    let worker: Worker
    func drain() async throws { try await worker.drain() }
    /// The worker's service loop in a task; cancel it to end.
    func start() -> Task<Void, any Error> { Task { try await worker.run() } }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null }
}

extension Data {
    init(buffer: ByteBuffer) { self = Data(buffer.readableBytesView) }
}
