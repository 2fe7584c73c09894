import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardServer
import YardStore

/// `yard-bench streams`: the SSE route of a real server (SQLite store, real
/// sockets on 127.0.0.1). Event-to-client latency is measured from just
/// before the event is recorded to when a client has read it; CPU is the
/// process's own over an idle window.
enum StreamBench {
    static func run(events: Int, idleSeconds: Int) async throws {
        let folder = try BenchFolder("streams")
        defer { folder.remove() }
        let database = try YardDatabase(path: folder.file("yard.sqlite"))
        let store = SQLiteJobStore(database: database)
        let server = try await BenchServer.start(store: store, database: database, folder: folder.path)
        defer { server.task.cancel() }
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntask_id: bench\ntrain: {data: /d.yaml, epochs: 1}")
        _ = try await server.yard.control.submit(config)
        try await server.yard.control.move("bench", to: .running)
        let port = server.port
        do {
            var p50: [Int: Double] = [:]
            for clients in [1, 100] {
                let latencies = try await latency(port: port, store: store, clients: clients, events: events)
                p50[clients] = latencies.percentile(0.5)
                print(String(format: "event->client latency, %3d clients: p50 %6.2f ms  p99 %6.2f ms  (%d deliveries)",
                             clients, latencies.percentile(0.5), latencies.percentile(0.99), latencies.count))
            }
            let alone = try await cpuPercent(port: port, clients: 0, seconds: idleSeconds)
            let idle = try await cpuPercent(port: port, clients: 100, seconds: idleSeconds)
            print(String(format: "server CPU over %d s idle: no clients %.2f %%, 100 idle SSE clients %.2f %%", idleSeconds, alone, idle))
            print(String(format: "latency ratio 100 clients / 1 client: %.2fx (goal: p50 <= 10 ms at 100 clients: %@)",
                         p50[100]! / p50[1]!, p50[100]! <= 10 ? "met" : "NOT met"))
            print(String(format: "idle CPU added by 100 clients: %+.2f percentage points", idle - alone))
        }
        await server.group.triggerGracefulShutdown()
    }

    /// Publishes `events` events 20 ms apart to `clients` open streams;
    /// returns every delivery's latency in ms.
    static func latency(port: Int, store: any JobStore, clients: Int, events: Int) async throws -> [Double] {
        let last = try await store.events(of: "bench", after: 0, limit: 100_000).last?.id ?? 0
        let readers = (0..<clients).map { _ in SSEReader(port: port, path: "/api/jobs/bench/events?after=\(last)", expect: events) }
        for reader in readers { reader.start() }
        while readers.contains(where: { !$0.connected }) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))  // every stream has caught up and subscribed
        for i in 0..<events {
            try await store.appendEvent(jobID: "bench", type: "epoch", payload: ["epoch": .int(i), "t": .int(Int(Monotonic.nanoseconds()))])
            try await Task.sleep(for: .milliseconds(20))
        }
        for reader in readers { reader.wait() }
        return readers.flatMap(\.latencies)
    }

    static func cpuPercent(port: Int, clients: Int, seconds: Int) async throws -> Double {
        let readers = (0..<clients).map { _ in SSEReader(port: port, path: "/api/jobs/bench/events?after=1000000000", expect: .max) }
        for reader in readers { reader.start() }
        while readers.contains(where: { !$0.connected }) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(500))
        let before = Monotonic.cpuSeconds(), start = Monotonic.nanoseconds()
        try await Task.sleep(for: .seconds(seconds))
        let cpu = Monotonic.cpuSeconds() - before
        let wall = Double(Monotonic.nanoseconds() - start) / 1e9
        for reader in readers { reader.close() }
        return cpu / wall * 100
    }
}
