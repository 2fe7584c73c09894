import Foundation
import GRDB
import Logging
import Synchronization
import YardArtifacts
import YardDomain
import YardJobs
import YardEngine
import YardQueue
import YardRedis
import YardStore
import YardTracker
import YardWorker

/// bench/redis_queue.sh, second half: a job's whole way through Redis with
/// an in-process engine that does nothing (no process is spawned). The
/// server submits (publishes the job, queues it); each worker, on its own
/// connections as on its own machine, claims it, reads the record and the
/// sealed secrets, runs the no-op engine (started, one epoch, finished) and
/// reports every change through its outbox; the server's consumer applies
/// the reports to its SQLite store. Measured: jobs/s from the first submit
/// until the store has every job succeeded; per job, submit -> engine start
/// (dispatch) and submit -> end recorded on the server.
enum EventPathBench {
    static func run(url: String, jobs: Int, workers: Int, baseline: Double) async throws {
        let configuration = try RedisConfiguration(url: url)
        let admin = RedisClient(configuration)
        try await admin.send(["FLUSHDB"])
        let folder = NSTemporaryDirectory() + "yard-bench-path-\(getpid())-\(workers)"
        try FileManager.default.createDirectory(atPath: folder + "/data/images", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let data = folder + "/data/data.yaml"
        try "path: .\ntrain: images\nval: images\nnames: {0: a}\n".write(toFile: data, atomically: true, encoding: .utf8)
        try Data([0]).write(to: URL(fileURLWithPath: folder + "/data/images/a.jpg"))

        var quiet = Logger(label: "bench")
        quiet.logLevel = .error
        let keys = RedisKeys(prefix: "path")
        let box = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "bench"))
        // The server: its store, queue, board and report consumer.
        let database = try YardDatabase(path: folder + "/yard.sqlite")
        let store = SQLiteJobStore(database: database)
        let serverRedis = RedisClient(configuration)
        let control = JobControl(store: store, queue: RedisJobQueue(redis: serverRedis, keys: keys),
                                 board: RedisJobBoard(redis: serverRedis, keys: keys, box: box))
        let consumer = ReportConsumer(redis: RedisClient(configuration), keys: keys, sink: control, logger: quiet)
        // The workers, each with its own connections and folder.
        let marks = Marks()
        let nodes = (0..<workers).map { index -> Worker in
            let redis = RedisClient(configuration)
            let ledger = RedisLedger(redis: redis, keys: keys, box: box, logger: quiet)
            return Worker(configuration: Worker.Configuration(id: "bench-\(index)", dataDirectory: folder + "/worker\(index)"),
                          ledger: ledger, queue: RedisJobQueue(redis: redis, keys: keys), runner: NoOpEngine(marks: marks),
                          trackers: [StoreTracker(records: ledger)], artifacts: LocalArtifactStore(root: folder + "/artifacts\(index)"),
                          logger: quiet)
        }
        let parser = JobConfigParser { FileManager.default.fileExists(atPath: $0) }
        func config(_ id: String) throws -> JobConfig { try parser.parse("task_id: \(id)\nmodel: yolov8n.yaml\ntrain: {data: \(data), epochs: 1}\n") }
        let backlog = try (0..<jobs).map { try config("path-\($0)") }
        let late = try (0..<300).map { try config("late-\($0)") }
        func succeeded() async throws -> Int {
            try await database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM job WHERE state = 'succeeded'") ?? 0 }
        }

        // 1. The server alone: submits (store, publish, queue) one after another.
        var clock = ContinuousClock.now
        for config in backlog { _ = try await control.submit(config) }
        let submitRate = Double(jobs) / QueueBench.seconds(ContinuousClock.now - clock)
        var drainRate = 0.0
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled { _ = try await consumer.drain(block: .milliseconds(100)) }
            }
            // 2. The backlog through the workers, until the server has recorded every end.
            clock = .now
            for node in nodes { group.addTask { try await node.run() } }
            while try await succeeded() < jobs { try await Task.sleep(for: .milliseconds(10)) }
            drainRate = Double(jobs) / QueueBench.seconds(ContinuousClock.now - clock)
            // 3. Jobs arriving every 5 ms at idle workers: the latencies.
            for config in late {
                marks.submitted(config.taskID!)
                _ = try await control.submit(config)
                try await Task.sleep(for: .milliseconds(5))
            }
            while try await succeeded() < jobs + late.count { try await Task.sleep(for: .milliseconds(10)) }
            group.cancelAll()
        }
        // When each late job's end was applied, from its state event (the store's clock).
        let ends = try await database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT job.created_at, event.time FROM job JOIN event ON event.job_id = job.id
                WHERE job.id LIKE 'late-%' AND event.type = 'state' AND json_extract(event.payload, '$.state') = 'succeeded'
                """).map { (($0[1] as Double) - ($0[0] as Double)) * 1000 }
        }
        let dispatch = marks.dispatch()
        QueueBench.say(String(format: "whole path, %d worker(s): submit %5.0f jobs/s; backlog %5.0f jobs/s (%.2f x baseline); submit->engine p50 %.2f ms p99 %.2f ms; submit->end recorded p50 %.1f ms p99 %.1f ms",
                              workers, submitRate, drainRate, drainRate / baseline, percentile(dispatch, 0.5), percentile(dispatch, 0.99),
                              percentile(ends, 0.5), percentile(ends, 0.99)))
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    /// When each job was submitted and when its engine started.
    final class Marks: Sendable {
        private let times = Mutex<(submitted: [String: ContinuousClock.Instant], started: [String: ContinuousClock.Instant])>(([:], [:]))
        func submitted(_ id: String) { times.withLock { $0.submitted[id] = .now } }
        func started(_ id: String) { times.withLock { $0.started[id] = .now } }
        /// Submit -> engine start, in ms.
        func dispatch() -> [Double] {
            times.withLock { times in
                times.started.compactMap { id, start in times.submitted[id].map { (start - $0).milliseconds } }
            }
        }
    }

    /// An engine that reports a one-epoch training at once.
    struct NoOpEngine: EngineRunner {
        let marks: Marks
        func start(_ request: EngineRequest) async throws -> any EngineProcess {
            marks.started(request.jobID)
            let run = "\(request.spec["project"]?.stringValue ?? "/runs")/\(request.jobID)"
            return NoOpProcess(events: [
                EngineEvent(kind: .started, payload: ["device": "cpu", "epochs": 1, "start_epoch": 0, "save_dir": .string(run)]),
                EngineEvent(kind: .epoch, payload: ["epoch": 1, "epochs": 1, "seconds": 0.001, "metrics": ["metrics/mAP50(B)": 0.5]]),
                EngineEvent(kind: .finished, payload: ["best": .string(run + "/weights/best.pt"), "fitness": 0.5]),
            ])
        }
    }

    final class NoOpProcess: EngineProcess {
        let output: AsyncStream<EngineOutput>
        init(events: [EngineEvent]) {
            let (stream, continuation) = AsyncStream.makeStream(of: EngineOutput.self)
            for event in events { continuation.yield(.event(event)) }
            continuation.finish()
            output = stream
        }
        func requestStop() {}
        func kill() {}
        func waitForExit() async -> Int32 { 0 }
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
