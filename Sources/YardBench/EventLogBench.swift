import Foundation
import GRDB
import YardDomain
import YardStore

/// `yard-bench events [EVENTS_PER_WRITER] [SECONDS]` (bench/events.sh): the
/// event log on the SQLite store, durable as `yard up` runs it.
/// - Appends: 8 writers, each event its own transaction, events/s; beside it,
///   in the same run, bare GRDB inserts into a one-column table on the same
///   disk (one row per transaction: the disk's commit ceiling; 100 rows per
///   transaction: what batching could reach).
/// - Latency: 100 readers of `/api/events` on real sockets while events are
///   appended at 1,000 a second; from just before the append to when a
///   reader has the event.
enum EventLogBench {
    static func run(perWriter: Int, seconds: Int) async throws {
        let folder = NSTemporaryDirectory() + "yard-bench-events-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)

        let baseline = try await bareInserts(path: folder + "/bare.sqlite", perWriter: perWriter, rowsPerTransaction: 1)
        let batched = try await bareInserts(path: folder + "/batched.sqlite", perWriter: perWriter, rowsPerTransaction: 100)
        let database = try YardDatabase(path: folder + "/yard.sqlite")
        let store = SQLiteJobStore(database: database, feed: JobFeed(bufferLimit: 100_000))
        let appended = try await appends(store: store, perWriter: perWriter)
        print(String(format: "appends, 8 writers x %d: %8.0f events/s (each its own durable transaction)", perWriter, appended))
        print(String(format: "baseline, bare GRDB inserts, 1 row per transaction: %8.0f rows/s  -> event log / baseline %.2fx", baseline, appended / baseline))
        print(String(format: "baseline, bare GRDB inserts, 100 rows per transaction: %8.0f rows/s -> event log / batched %.3fx", batched, appended / batched))
        print(String(format: "goal >= 20,000 events/s: %@", appended >= 20_000 ? "met" : "NOT met"))

        let server = try await BenchServer.start(store: store, database: database, folder: folder)
        defer { server.task.cancel() }
        let port = server.port
        let last = try await store.events(after: 0, limit: 1_000_000, filter: .all).last?.id ?? 0
        let events = seconds * 1000
        let readers = (0..<100).map { _ in SSEReader(port: port, path: "/api/events?after=\(last)&type=tick", expect: events) }
        for reader in readers { reader.start() }
        while readers.contains(where: { !$0.connected }) { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(300))
        let start = Monotonic.nanoseconds()
        for i in 0..<events {
            // Paced to 1,000 a second from the start, not 1 ms after each append.
            let due = start + UInt64(i) * 1_000_000
            let now = Monotonic.nanoseconds()
            if due > now { try await Task.sleep(for: .nanoseconds(Int(due - now))) }
            try await store.appendEvent(.worker, id: "bench", type: "tick", payload: ["i": .int(i), "t": .int(Int(Monotonic.nanoseconds()))])
        }
        let rate = Double(events) / (Double(Monotonic.nanoseconds() - start) / 1e9)
        for reader in readers { reader.wait() }
        let latencies = readers.flatMap(\.latencies)
        print(String(format: "event -> /api/events reader, 100 readers at %.0f events/s: p50 %.2f ms  p99 %.2f ms  (%d deliveries of %d)",
                     rate, latencies.percentile(0.5), latencies.percentile(0.99), latencies.count, events * 100))
        print(String(format: "goal p50 <= 2 ms: %@; p99 <= 20 ms: %@", latencies.percentile(0.5) <= 2 ? "met" : "NOT met",
                     latencies.percentile(0.99) <= 20 ? "met" : "NOT met"))
        await server.group.triggerGracefulShutdown()
    }

    static func appends(store: SQLiteJobStore, perWriter: Int) async throws -> Double {
        let start = Monotonic.nanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for n in 0..<perWriter { try await store.appendEvent(.worker, id: "w\(writer)", type: "heartbeat", payload: ["n": .int(n)]) }
                }
            }
            try await group.waitForAll()
        }
        return Double(8 * perWriter) / (Double(Monotonic.nanoseconds() - start) / 1e9)
    }

    /// GRDB alone on the same disk, with the store's settings: rows per second.
    static func bareInserts(path: String, perWriter: Int, rowsPerTransaction: Int) async throws -> Double {
        var config = Configuration()
        config.busyMode = .timeout(10)
        let pool = try DatabasePool(path: path, configuration: config)
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)") }
        let start = Monotonic.nanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var n = 0
                    while n < perWriter {
                        let count = min(rowsPerTransaction, perWriter - n)
                        try await pool.write { db in
                            for _ in 0..<count { try db.execute(sql: "INSERT INTO t (body) VALUES (?)", arguments: ["{\"n\":1}"]) }
                        }
                        n += count
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(8 * perWriter) / (Double(Monotonic.nanoseconds() - start) / 1e9)
    }
}
