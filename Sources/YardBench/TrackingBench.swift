import Foundation
import Logging
import YardDomain
import YardStore
import YardTracker

/// `yard-bench TRACKING_URI EXPERIMENT POINTS` (bench/mlflow_metrics.sh):
/// POINTS metric points (ten per epoch) through the MLflow tracker, three ways.
///   live: the replayer runs while a job logs, as in a training; timed from
///     the first call until every point is in MLflow.
///   backlog: an outage: the run exists, POINTS are spooled with MLflow
///     "down" (no replayer), then the replay alone is timed.
///   concurrent: 8 jobs spool at once (8 workers on one host): operations
///     per commit show the group commit.
/// Prints one JSON object for the Python half to compare with the official client.
enum TrackingBench {
    static let perEpoch = 10

    static func run(uri: String, experiment: String, points: Int) async throws {
        let folder = NSTemporaryDirectory() + "yard-bench-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = MemoryJobStore()
        let epochs = max(1, points / perEpoch)
        var result: [String: JSONValue] = ["points": .int(epochs * perEpoch)]

        // live
        do {
            let spool = TrackingSpool(directory: folder + "/live", logger: Logger(label: "bench"))
            let tracker = MLflowTracker(spool: spool, secrets: store, defaultURI: nil)
            var job = try await newJob("live", store: store, uri: uri, experiment: experiment)
            let replayer = Task { try await spool.run() }
            let start = ContinuousClock.now
            _ = try await tracker.startRun(job)
            for epoch in 1...epochs { try await tracker.logEpoch(job, record(job, epoch)) }
            job.state = .succeeded
            try await tracker.endRun(job)
            result["live_spooled_seconds"] = .double(seconds(ContinuousClock.now - start))
            while !(await spool.pendingJobs().isEmpty) { try await Task.sleep(for: .milliseconds(5)) }
            result["live_seconds"] = .double(seconds(ContinuousClock.now - start))
            replayer.cancel()
            result["live_run_id"] = .string(try await runID(job, uri: uri, experiment: experiment))
        }

        // backlog
        do {
            let spool = TrackingSpool(directory: folder + "/backlog", logger: Logger(label: "bench"))
            let tracker = MLflowTracker(spool: spool, secrets: store, defaultURI: nil)
            var job = try await newJob("backlog", store: store, uri: uri, experiment: experiment)
            _ = try await tracker.startRun(job)
            await spool.replayAll()  // the run exists before the outage
            let spoolStart = ContinuousClock.now
            let commitsBefore = await spool.commits
            for epoch in 1...epochs { try await tracker.logEpoch(job, record(job, epoch)) }
            result["spool_seconds"] = .double(seconds(ContinuousClock.now - spoolStart))
            result["spool_commits"] = .int(await spool.commits - commitsBefore)
            let replayStart = ContinuousClock.now
            guard await spool.replayAll() else { throw YardError(.unavailable, "the backlog replay failed") }
            result["replay_seconds"] = .double(seconds(ContinuousClock.now - replayStart))
            job.state = .succeeded
            try await tracker.endRun(job)
            await spool.replayAll()
            result["backlog_run_id"] = .string(try await runID(job, uri: uri, experiment: experiment))
        }

        // concurrent spooling (no MLflow involved)
        do {
            let spool = TrackingSpool(directory: folder + "/concurrent", logger: Logger(label: "bench"))
            let tracker = MLflowTracker(spool: spool, secrets: store, defaultURI: nil)
            var jobs: [Job] = []
            for index in 0..<8 { jobs.append(try await newJob("concurrent\(index)", store: store, uri: uri, experiment: experiment)) }
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for job in jobs {
                    group.addTask { for epoch in 1...epochs { try await tracker.logEpoch(job, record(job, epoch)) } }
                }
                try await group.waitForAll()
            }
            result["concurrent_seconds"] = .double(seconds(ContinuousClock.now - start))
            result["concurrent_ops"] = .int(8 * epochs)
            result["concurrent_commits"] = .int(await spool.commits)
        }
        print(String(decoding: try JSONEncoder().encode(JSONValue.object(result)), as: UTF8.self))
    }

    static func newJob(_ name: String, store: MemoryJobStore, uri: String, experiment: String) async throws -> Job {
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\nexperiment: \(experiment)\ntrain: {data: /d.yaml}\nmlflow: {MLFLOW_TRACKING_URI: \(uri)}")
        var job = Job(id: "bench-\(name)-\(getpid())", config: config, redacted: config.json, createdAt: Date())
        job.attempts = 1
        try await store.insert(job, secrets: [:])
        return job
    }

    /// Nine bench metrics; the tracker adds epoch_seconds: ten points an epoch.
    static func record(_ job: Job, _ epoch: Int) -> EpochRecord {
        let metrics = Dictionary(uniqueKeysWithValues: (0..<(perEpoch - 1)).map { ("bench/m\($0)", Double(epoch) * 0.001 + Double($0)) })
        return EpochRecord(jobID: job.id, epoch: epoch, metrics: metrics, seconds: 0)
    }

    static func runID(_ job: Job, uri: String, experiment: String) async throws -> String {
        let client = MLflowClient(trackingURI: uri)
        return try await client.findRun(experimentID: try await client.experimentID(named: experiment), tag: "trainyard.job_id", value: job.id)?.runID ?? ""
    }

    static func seconds(_ d: Duration) -> Double { d.timeInterval }
}

/// `yard-bench spool-writer DIR TASKS OPS`: TASKS concurrent writers append
/// OPS operations each to one job's spool and print `TASK SEQ` once each
/// append has returned. The kill -9 test kills it midway and checks every
/// printed operation is in the file, whole.
enum SpoolWriter {
    static func run(directory: String, tasks: Int, ops: Int) async throws {
        let spool = TrackingSpool(directory: directory, logger: Logger(label: "spool-writer"))
        let out = FileHandle.standardOutput
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for seq in 0..<ops {
                        try await spool.append(jobID: "job", ["op": "metrics", "step": .int(seq), "task": .int(task), "seq": .int(seq),
                                                              "values": .object(["padding": .string(String(repeating: "x", count: 200))])])
                        out.write(Data("\(task) \(seq)\n".utf8))
                    }
                }
            }
            try await group.waitForAll()
        }
        out.write(Data("commits \(await spool.commits)\n".utf8))
    }
}
