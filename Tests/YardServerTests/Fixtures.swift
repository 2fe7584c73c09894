import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardServer
import YardStore
import YardTestSupport

/// A Yard on the memory drivers with a scripted engine.
struct TestYard {
    let dir: TemporaryDirectory
    let yard: Yard
    let data: String

    init(token: String? = nil, store: (any JobStore)? = nil, allowDatasetSymlinks: Bool = false) throws {
        dir = try TemporaryDirectory("yard-server")
        var options = YardOptions()
        options.dataDirectory = dir.path
        options.token = token
        options.stopGrace = .seconds(2)
        options.allowDatasetSymlinks = allowDatasetSymlinks
        yard = Yard(options: options, store: store ?? MemoryJobStore(), queue: MemoryJobQueue(),
                    artifacts: LocalArtifactStore(root: dir.path + "/artifacts"),
                    engine: EngineEnvironment(python: "/nonexistent", engineDirectory: "/nonexistent", ultralyticsDirectory: dir.path))
        data = try dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
    }

    func config(_ extra: String = "", epochs: Int = 3) -> String {
        "model: yolov8n.yaml\ntrain: {data: \(data), epochs: \(epochs), imgsz: 32}\n" + extra
    }

    func worker(_ runner: ScriptedEngineRunner) -> YardWorkerHandle {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return YardWorkerHandle(worker: yard.workers(runner: runner, logger: logger)[0])
    }

    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: yard.buildRouter())
        try await app.test(.router, body)
    }

    /// The same router behind a real socket on 127.0.0.1; `body` gets its port.
    func live(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let app = Application(router: yard.buildRouter(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(client.port ?? 0) }
    }
}

import YardWorker

struct YardWorkerHandle {
    let worker: Worker
    func drain() async throws { try await worker.drain() }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null }
}

extension Data {
    init(buffer: ByteBuffer) { self = Data(buffer.readableBytesView) }
}
