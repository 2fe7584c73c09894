import Foundation
import GRDB
import YardDomain
import YardStore

/// `yard-bench store-scale [JOBS] [EPOCHS_PER_JOB]` (bench/store_scale.sh):
/// a SQLite store with JOBS jobs (states mixed) and JOBS x EPOCHS_PER_JOB
/// epoch rows, generated here; then, on a real socket, `GET /api/jobs`
/// (first page, filtered by state) and `GET /api/jobs/{id}` (the job with
/// its epochs and artifacts), p50/p99 over sequential requests; beside them,
/// in the same run, `GET /health` (the HTTP round trip alone) as the baseline;
/// and `GET /metrics`, whose job gauges are read from the store at each scrape.
enum StoreScaleBench {
    static func run(jobs: Int, epochsPerJob: Int) async throws {
        let folder = try BenchFolder("scale")
        defer { folder.remove() }
        let database = try YardDatabase(path: folder.file("yard.sqlite"))
        let started = Monotonic.nanoseconds()
        try await generate(database, jobs: jobs, epochsPerJob: epochsPerJob)
        print(String(format: "generated %d jobs and %d epoch rows in %.1f s", jobs, jobs * epochsPerJob,
                     Double(Monotonic.nanoseconds() - started) / 1e9))
        let store = SQLiteJobStore(database: database)
        let server = try await BenchServer.start(store: store, database: database, folder: folder.path)
        defer { server.task.cancel() }
        let requests = 300
        let health = try time(port: server.port, requests: requests) { _ in "/health" }
        let states = ["failed", "succeeded", "stopped", "queued"]
        let list = try time(port: server.port, requests: requests) { "/api/jobs?state=\(states[$0 % states.count])&limit=50" }
        let show = try time(port: server.port, requests: requests) { "/api/jobs/scale-\(($0 * 7919) % jobs)" }
        // A Prometheus scrape: jobs by state and experiment and the queue's waits are read from the store each time.
        let scrape = try time(port: server.port, requests: 30) { _ in "/metrics" }
        for (name, latencies) in [("GET /health (baseline)", health), ("GET /api/jobs?state=S&limit=50", list), ("GET /api/jobs/{id}", show),
                                  ("GET /metrics (30 scrapes)", scrape)] {
            print(String(format: "%-34@ p50 %7.2f ms  p99 %7.2f ms  (p99 / baseline p99 %.1fx)", name as NSString,
                         latencies.percentile(0.5), latencies.percentile(0.99), latencies.percentile(0.99) / health.percentile(0.99)))
        }
        print(String(format: "goal p99 <= 20 ms: list %@, show %@", list.percentile(0.99) <= 20 ? "met" : "NOT met",
                     show.percentile(0.99) <= 20 ? "met" : "NOT met"))
        await server.group.triggerGracefulShutdown()
    }

    /// Jobs through the store's own encoding, written in large transactions.
    /// A job of `epochs` epochs, running now, as a worker's claim leaves it.
    static func insertRunning(_ store: SQLiteJobStore, id: String, epochs: Int) async throws {
        let parser = JobConfigParser { _ in true }
        let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: /d/data.yaml, epochs: \(epochs), imgsz: 320}\n")
        var job = Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date())
        job.state = .running
        job.startedAt = Date()
        try await store.insert(job, secrets: [:], recording: ["state": "running", "message": "bench"])
    }

    static func generate(_ database: YardDatabase, jobs: Int, epochsPerJob: Int) async throws {
        let parser = JobConfigParser { _ in true }
        let states: [JobState] = [.succeeded, .failed, .stopped, .succeeded, .queued, .running, .succeeded]
        let batch = 2000
        for start in stride(from: 0, to: jobs, by: batch) {
            var rows: [(String, String, Double, String)] = []
            var epochs: [(String, Int, String, Double)] = []
            for n in start..<min(jobs, start + batch) {
                let id = "scale-\(n)"
                let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: /d/data.yaml, epochs: \(epochsPerJob), imgsz: 320}\n")
                var job = Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n)))
                job.state = states[n % states.count]
                rows.append((id, job.state.rawValue, job.createdAt.timeIntervalSince1970, try JSONCoding.string(job)))
                for epoch in 1...max(1, epochsPerJob) {
                    let metrics = ["metrics/mAP50(B)": Double(epoch) / 10, "train/box_loss": 2.0 / Double(epoch), "lr/pg0": 0.01]
                    epochs.append((id, epoch, try JSONCoding.string(metrics), 1.5))
                }
            }
            let jobRows = rows, epochRows = epochs
            try await database.write { db in
                for row in jobRows {
                    try db.execute(sql: "INSERT INTO job (id, state, created_at, record) VALUES (?, ?, ?, ?)", arguments: [row.0, row.1, row.2, row.3])
                    try db.execute(sql: "INSERT INTO job_secret (job_id, secrets) VALUES (?, '{}')", arguments: [row.0])
                }
                for row in epochRows {
                    try db.execute(sql: "INSERT INTO epoch (job_id, epoch, metrics, seconds) VALUES (?, ?, ?, ?)", arguments: [row.0, row.1, row.2, row.3])
                }
            }
        }
    }

    /// Sequential GETs on fresh connections; each request's ms, status 200 required.
    static func time(port: Int, requests: Int, path: (Int) -> String) throws -> [Double] {
        var latencies: [Double] = []
        for i in 0..<requests {
            let started = Monotonic.nanoseconds()
            let status = try BenchServer.get(port: port, path: path(i))
            guard status == 200 else { throw YardError(.internal, "GET \(path(i)) answered \(status)") }
            latencies.append(Double(Monotonic.nanoseconds() - started) / 1e6)
        }
        return latencies
    }
}
