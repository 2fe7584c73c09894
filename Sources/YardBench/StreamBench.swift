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
        let folder = NSTemporaryDirectory() + "yard-bench-streams-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let database = try YardDatabase(path: folder + "/yard.sqlite")
        let store = SQLiteJobStore(database: database)
        let server = try await BenchServer.start(store: store, database: database, folder: folder)
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

/// A `Yard` over a bench's store, serving on a free port of 127.0.0.1 with
/// its logger quiet (the server's own shutdown notes are not results).
struct BenchServer {
    let yard: Yard
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    static func start(store: SQLiteJobStore, database: YardDatabase, folder: String) async throws -> BenchServer {
        var options = YardOptions()
        options.dataDirectory = folder
        options.port = 0
        let yard = Yard(options: options, store: store, queue: SQLiteJobQueue(database: database),
                        artifacts: LocalArtifactStore(root: folder + "/artifacts"),
                        engine: EngineEnvironment(python: "/nonexistent", engineDirectory: "/nonexistent", ultralyticsDirectory: folder))
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = yard.buildApplication(logger: logger) { announce.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var next = ports.makeAsyncIterator()
        guard let port = await next.next() else {
            task.cancel()
            throw YardError(.unavailable, field: "port", "the bench server did not start")
        }
        return BenchServer(yard: yard, port: port, group: group, task: task)
    }
}

enum Monotonic {
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// One SSE client on a thread of its own: reads the stream and notes, for
/// each event carrying a send time `t`, how long it took to arrive.
final class SSEReader: @unchecked Sendable {
    let port: Int
    let path: String
    let expect: Int
    private let lock = NSLock()
    private var fd: Int32 = -1
    private var done = DispatchSemaphore(value: 0)
    private var isConnected = false
    private(set) var latencies: [Double] = []

    init(port: Int, path: String, expect: Int) {
        self.port = port
        self.path = path
        self.expect = expect
    }

    var connected: Bool { lock.withLock { isConnected } }

    func start() { Thread { self.read() }.start() }
    func wait() { done.wait() }
    func close() { lock.withLock { if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) } } }

    private func read() {
        defer { done.signal() }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return }
        lock.withLock { self.fd = fd }
        defer { Glibc.close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lock.withLock { isConnected = true }
        var pending = ""
        var buffer = [UInt8](repeating: 0, count: 65536)
        var seen = 0
        while seen < expect {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { return }
            let now = Monotonic.nanoseconds()
            pending += String(decoding: buffer[0..<n], as: UTF8.self)
            while let end = pending.range(of: "\n") {
                let line = pending[..<end.lowerBound]
                if line.hasPrefix("data: "), let range = line.range(of: "\"t\":") {
                    let digits = line[range.upperBound...].prefix { $0.isNumber }
                    if let sent = UInt64(digits) {
                        latencies.append(Double(now - sent) / 1e6)
                        seen += 1
                    }
                }
                pending.removeSubrange(..<end.upperBound)
            }
        }
    }
}

extension Array where Element == Double {
    func percentile(_ p: Double) -> Double {
        guard !isEmpty else { return .nan }
        let sorted = self.sorted()
        return sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
    }
}
