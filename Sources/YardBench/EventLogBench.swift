import Foundation
import GRDB
import Synchronization
import YardDomain
import YardStore

/// `yard-bench events [EVENTS_PER_WRITER] [SECONDS]` (bench/events.sh): the
/// event log on the SQLite store as `yard up` runs it (WAL with GRDB's
/// `synchronous = NORMAL`: an append returns once its transaction is
/// committed to the WAL, which a killed process keeps; the WAL is fsynced
/// at checkpoints, so a power cut can lose the last commits), and, for
/// reference, with `--sync full` (every group commit fsynced), beside the
/// disk's own write+fdatasync latency.
/// - Appends: 8 writers, each awaiting its own appends one after another,
///   events/s; beside it, in the same run, bare GRDB inserts into a
///   one-column table on the same disk by 8 writers (one row per
///   transaction: the disk's commit rate, the baseline; 100 rows per
///   transaction: what batching alone reaches).
/// - Latency: events offered at 1,000 a second (open loop: each append is
///   started at its time, whether the ones before it returned or not) to
///   `/api/events` readers on real sockets; from just before the append to
///   when a reader has the event. One reader first (the baseline), then 100;
///   the achieved rates (appends and deliveries) are printed beside them.
///   The readers run in a process of their own, one thread polling every
///   socket as clients elsewhere would (`SSEReaders`); the CPU of both
///   processes over the run is printed, since they share this machine's
///   cores. `SECONDS` 0 measures the appends only (for profiling them).
enum EventLogBench {
    static func run(perWriter: Int, seconds: Int) async throws {
        let folder = try BenchFolder("events")
        defer { folder.remove() }

        var cpu = Monotonic.cpuSeconds()
        let baseline = try await bareInserts(path: folder.file("bare.sqlite"), perWriter: perWriter, rowsPerTransaction: 1)
        let baselineCPU = (Monotonic.cpuSeconds() - cpu) / Double(8 * perWriter) * 1e6
        let batched = try await bareInserts(path: folder.file("batched.sqlite"), perWriter: perWriter, rowsPerTransaction: 100)
        let database = try YardDatabase(path: folder.file("yard.sqlite"))
        let store = SQLiteJobStore(database: database, feed: JobFeed(bufferLimit: 100_000))
        cpu = Monotonic.cpuSeconds()
        let appended = try await appends(store: store, perWriter: perWriter)
        let appendCPU = (Monotonic.cpuSeconds() - cpu) / Double(8 * perWriter) * 1e6
        print(String(format: "appends, 8 writers x %d, durable: %8.0f events/s (CPU %.1f us each)", perWriter, appended, appendCPU))
        print(String(format: "baseline, bare GRDB, 8 writers, 1 row per transaction:   %8.0f rows/s -> event log / baseline %.2fx (CPU %.1f us a row)",
                     baseline, appended / baseline, baselineCPU))
        print(String(format: "reference, bare GRDB, 8 writers, 100 rows per transaction: %8.0f rows/s -> event log / batched %.3fx", batched, appended / batched))
        print(String(format: "goal >= 20,000 events/s: %@", appended >= 20_000 ? "met" : "NOT met"))
        // `--sync full`: each group commit fsynced before its appends return (survives a power cut).
        let fullStore = SQLiteJobStore(database: try YardDatabase(path: folder.file("full.sqlite"), sync: .full), feed: JobFeed(bufferLimit: 100_000))
        let fullPerWriter = max(100, perWriter / 4)
        let fsync = try fsyncLatency(path: folder.file("fsync.bin"))
        let appendedFull = try await appends(store: fullStore, perWriter: fullPerWriter)
        print(String(format: "appends, 8 writers x %d, --sync full (fsync each commit): %8.0f events/s -> / normal %.2fx (a 4 KiB write + fdatasync in place on this disk: %.2f ms)",
                     fullPerWriter, appendedFull, appendedFull / appended, fsync * 1e3))
        guard seconds > 0 else { return }  // appends only (profiling them)

        let server = try await BenchServer.start(store: store, database: database, folder: folder.path)
        defer { server.task.cancel() }
        let one = try await latency(store: store, port: server.port, readers: 1, seconds: seconds)
        let hundred = try await latency(store: store, port: server.port, readers: 100, seconds: seconds)
        for (name, run) in [("1 reader (baseline)", one), ("100 readers", hundred)] {
            print(String(format: "event -> /api/events, %-19@ offered 1000/s: appended %6.0f/s, delivered %8.0f/s; p50 %6.2f ms  p99 %6.2f ms  (%d of %d deliveries)",
                         name as NSString, run.appendRate, run.deliveryRate, run.p50, run.p99, run.deliveries, run.expected))
            print(String(format: "  CPU over %.1f s: server (and appends) %.2f s = %.0f%% of a core; readers' process %.2f s = %.0f%%",
                         run.seconds, run.serverCPU, 100 * run.serverCPU / run.seconds, run.readerCPU, 100 * run.readerCPU / run.seconds))
        }
        print(String(format: "100 readers / 1 reader: p50 %.2fx  p99 %.2fx", hundred.p50 / one.p50, hundred.p99 / one.p99))
        print(String(format: "goal at 100 readers, 1,000 events/s: rate %@; p50 <= 2 ms %@; p99 <= 20 ms %@",
                     hundred.appendRate >= 990 && hundred.deliveries == hundred.expected ? "met" : "NOT met",
                     hundred.p50 <= 2 ? "met" : "NOT met", hundred.p99 <= 20 ? "met" : "NOT met"))
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

    struct Run {
        var deliveries: Int
        var p50: Double
        var p99: Double
        var expected: Int
        var appendRate: Double
        var deliveryRate: Double
        /// CPU seconds of this process (the server and the appends) and of the readers' process, over the run.
        var serverCPU: Double
        var readerCPU: Double
        var seconds: Double
    }

    /// `readers` streams of `/api/events`, read by a process of their own
    /// (`SSEReaders`), while events are offered at 1,000 a second for `seconds`.
    static func latency(store: SQLiteJobStore, port: Int, readers count: Int, seconds: Int) async throws -> Run {
        let last = try await store.events(after: 0, limit: 1_000_000, filter: .all).last?.id ?? 0
        let events = seconds * 1000
        let readers = try SSEReaders.spawn(port: port, path: "/api/events?after=\(last)&type=tick", count: count, expect: events,
                                           seconds: seconds + 60)
        // Every stream has caught up and follows (subscribed, and handed to its event loop).
        while store.feed.subscriberCount < count { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(300))
        let cpu = Monotonic.cpuSeconds()
        let start = Monotonic.nanoseconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<events {
                // Paced from the start, not 1 ms after each append returned.
                let due = start + UInt64(i) * 1_000_000
                let now = Monotonic.nanoseconds()
                if due > now { try await Task.sleep(for: .nanoseconds(Int(due - now))) }
                group.addTask {
                    try await store.appendEvent(.worker, id: "bench", type: "tick", payload: ["i": .int(i), "t": .int(Int(Monotonic.nanoseconds()))])
                }
            }
            try await group.waitForAll()
        }
        let appendRate = Double(events) / (Double(Monotonic.nanoseconds() - start) / 1e9)
        let result = try await Task.detached { try readers.result() }.value
        let serverCPU = Monotonic.cpuSeconds() - cpu
        let finished = max(result.lastArrival, start + 1)
        let elapsed = Double(finished - start) / 1e9
        return Run(deliveries: result.deliveries, p50: result.p50, p99: result.p99, expected: events * count, appendRate: appendRate,
                   deliveryRate: Double(result.deliveries) / elapsed, serverCPU: serverCPU, readerCPU: result.cpuSeconds, seconds: elapsed)
    }

    /// Seconds one 4 KiB write + fdatasync takes on the disk of `path`,
    /// written in place in a file that does not grow (as SQLite rewrites its
    /// WAL after a checkpoint: no metadata to journal), median of 50.
    static func fsyncLatency(path: String) throws -> Double {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw BenchError("cannot create \(path)") }
        defer { close(fd); unlink(path) }
        let page = [UInt8](repeating: 1, count: 4096)
        for offset in stride(from: 0, to: 1 << 20, by: 4096) { _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) } }
        fsync(fd)
        var times: [Double] = []
        for n in 0..<50 {
            let start = Monotonic.nanoseconds()
            _ = page.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t((n % 256) * 4096)) }
            fdatasync(fd)
            times.append(Double(Monotonic.nanoseconds() - start) / 1e9)
        }
        return times.sorted()[times.count / 2]
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
