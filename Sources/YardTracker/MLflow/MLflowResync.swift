import Foundation
import YardDomain
import YardStore

/// `yard tracking resync`: rebuilds an MLflow server's runs and registry
/// from Trainyard's own records, for a team whose MLflow database was lost
/// or that moves to a new server. Every job that started becomes a run
/// (tags, params, the config, one metric point per epoch and the test
/// split's numbers, its artifacts, its end), then every registered version
/// becomes an MLflow version of its run, and the aliases point where
/// Trainyard's do.
///
/// Idempotent: a job whose run is already there (found by its
/// `trainyard.job_id` tag, as the live tracker finds it) is left alone, a
/// version already made from its run is not made again. A run is tagged
/// `trainyard.resync=partial` while it is being rebuilt and `done` at the
/// end, so one cut off half-way (a crash, a lost connection) is deleted
/// and rebuilt by the next resync instead of kept with half its metrics.
/// Calls go straight to the server, in order, not through the spool: the
/// command's outcome is what the server holds when it returns.
public struct MLflowResync: Sendable {
    public struct Result: Sendable, Equatable {
        public var runsCreated = 0
        /// Runs found already there (from live tracking or an earlier resync).
        public var runsPresent = 0
        /// Half-made runs of a resync that was cut off, deleted and rebuilt.
        public var runsRebuilt = 0
        /// Jobs that never started (queued): no run to make yet.
        public var jobsSkipped = 0
        public var metrics = 0
        public var artifacts = 0
        /// Artifacts the records name whose file is gone (freed by `yard gc`, or kept elsewhere).
        public var artifactsMissing = 0
        public var versionsCreated = 0
        public var versionsPresent = 0
        /// Versions whose job has no run here (outside `--experiment`).
        public var versionsSkipped = 0
        public var aliases = 0

        public init() {}

        /// What changed in MLflow: zero on a second run.
        public var added: Int { runsCreated + runsRebuilt + versionsCreated }
    }

    public static let markerTag = "trainyard.resync"

    let client: MLflowClient
    let store: any JobStore
    /// The local file of an artifact key; nil when it is not on this machine.
    let localPath: @Sendable (String) -> String?
    let host: String
    let experiment: String?

    public init(client: MLflowClient, store: any JobStore, experiment: String? = nil, host: String = ProcessInfo.processInfo.hostName,
                localPath: @escaping @Sendable (String) -> String?) {
        self.client = client
        self.store = store
        self.experiment = experiment
        self.host = host
        self.localPath = localPath
    }

    /// Rebuilds everything; `progress` gets one line per job and version.
    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        var result = Result()
        var experiments: [String: String] = [:]
        var runs: [String: MLflowClient.RunInfo] = [:]
        // Oldest first, so MLflow's run list reads in the order they ran.
        for id in try await allJobIDs().reversed() {
            // Read one at a time: only the ids of every job are held at once.
            guard let job = try await store.job(id) else {
                progress("\(id): deleted since the resync started")
                continue
            }
            guard job.startedAt != nil || job.attempts > 0 else {
                result.jobsSkipped += 1
                continue
            }
            let experimentID: String
            if let known = experiments[job.experiment] { experimentID = known } else {
                experimentID = try await client.experimentID(named: job.experiment)
                experiments[job.experiment] = experimentID
            }
            if let existing = try await client.findRun(experimentID: experimentID, tag: "trainyard.job_id", value: job.id) {
                if existing.tags[Self.markerTag] == "partial" {
                    try await client.deleteRun(existing.runID)
                    result.runsRebuilt += 1
                } else {
                    result.runsPresent += 1
                    runs[job.id] = existing
                    progress("\(job.id): already in MLflow (run \(existing.runID))")
                    continue
                }
            } else {
                result.runsCreated += 1
            }
            let run = try await rebuild(job, experimentID: experimentID, result: &result)
            runs[job.id] = run
            progress("\(job.id): run \(run.runID) (\(job.experiment), \(job.state.rawValue))")
        }
        try await registry(runs: runs, result: &result, progress: progress)
        return result
    }

    /// The ids of the jobs to rebuild (of `experiment`, else all), newest
    /// first, read in pages of 1,000 records of which only the ids are kept.
    func allJobIDs() async throws -> [String] {
        var ids: [String] = [], before: String?
        while true {
            let page = try await store.jobs(JobQuery(limit: 1000, experiment: experiment, before: before))
            ids += page.map(\.id)
            guard page.count == 1000, let last = page.last else { return ids }
            before = last.id
        }
    }

    private func rebuild(_ job: Job, experimentID: String, result: inout Result) async throws -> MLflowClient.RunInfo {
        let started = job.startedAt ?? job.createdAt
        var tags = MLflowTracker.runTags(job, host: job.worker ?? host).merging(MLflowTracker.engineTags(job)) { _, engine in engine }
        tags[Self.markerTag] = "partial"
        let run = try await client.createRun(experimentID: experimentID, name: job.id, startTime: Self.millis(started), tags: tags)
        try await client.logBatch(runID: run.runID, params: MLflowTracker.params(job))

        // One point per epoch, stamped when the epoch ended (the start plus the epochs' durations).
        var metrics: [MLflowClient.Metric] = []
        var clock = started
        for epoch in try await store.epochs(of: job.id).sorted(by: { $0.epoch < $1.epoch }) {
            clock = clock.addingTimeInterval(max(0, epoch.seconds))
            let stamp = Self.millis(clock)
            for (key, value) in epoch.metrics.sorted(by: { $0.key < $1.key }) where value.isFinite {
                metrics.append(.init(key: MetricName.sanitize(key), value: value, timestamp: stamp, step: epoch.epoch))
            }
            metrics.append(.init(key: "epoch_seconds", value: epoch.seconds, timestamp: stamp, step: epoch.epoch))
        }
        for (key, value) in (job.testMetrics ?? [:]).sorted(by: { $0.key < $1.key }) where value.isFinite {
            metrics.append(.init(key: MetricName.sanitize(key), value: value, timestamp: Self.millis(clock), step: job.epoch ?? 0))
        }
        try await client.logBatch(runID: run.runID, metrics: metrics)
        result.metrics += metrics.count

        // The masked config, then every file the job's records name.
        let scratch = NSTemporaryDirectory() + "/yard-resync-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(job.config).write(to: URL(fileURLWithPath: scratch + "/config.redacted.json"))
        try await client.uploadArtifact(run: run, localPath: scratch + "/config.redacted.json", artifactPath: "config.redacted.json")
        // The training log as the store keeps it (masked when it was written), as the live run uploads it.
        let records = try await store.artifacts(of: job.id)
        if !records.contains(where: { $0.key == job.id + "/train.log" }) {
            var lines: [String] = [], after: Int64 = 0
            while true {
                let page = try await store.logs(of: job.id, after: after, limit: 5000)
                lines += page.map(\.line)
                guard page.count == 5000, let last = page.last else { break }
                after = last.id
            }
            if !lines.isEmpty {
                try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: scratch + "/train.log"))
                try await client.uploadArtifact(run: run, localPath: scratch + "/train.log", artifactPath: "train.log")
                result.artifacts += 1
            }
        }
        for artifact in records {
            let relative = artifact.key.hasPrefix(job.id + "/") ? String(artifact.key.dropFirst(job.id.count + 1)) : artifact.key
            guard let path = localPath(artifact.key), FileManager.default.isReadableFile(atPath: path) else {
                result.artifactsMissing += 1
                continue
            }
            try await client.uploadArtifact(run: run, localPath: path, artifactPath: relative)
            result.artifacts += 1
        }

        var end = MLflowTracker.endTags(job)
        end[Self.markerTag] = "done"
        if let status = MLflowTracker.endStatus(job.state) {
            try await client.logBatch(runID: run.runID, tags: end)
            try await client.updateRun(runID: run.runID, status: status, endTime: Self.millis(job.finishedAt ?? clock))
        } else {
            // Still running here: the live tracker goes on with this run (it finds it by the job's tag).
            try await client.logBatch(runID: run.runID, tags: [Self.markerTag: "done"])
        }
        return run
    }

    /// Each registered version as an MLflow version of its job's run, in
    /// Trainyard's order (so the numbers agree when every version is there),
    /// then the aliases where Trainyard has them.
    private func registry(runs: [String: MLflowClient.RunInfo], result: inout Result, progress: @Sendable (String) -> Void) async throws {
        let versions = try await store.modelVersions(name: nil)
            .sorted { ($0.name, Int($0.version) ?? 0) < ($1.name, Int($1.version) ?? 0) }
        for version in versions {
            guard let run = runs[version.jobID], let job = try await store.job(version.jobID) else {
                result.versionsSkipped += 1
                continue
            }
            try await client.createRegisteredModel(version.name)
            let mlflowVersion: String
            if let existing = try await client.modelVersion(name: version.name, runID: run.runID) {
                mlflowVersion = existing
                result.versionsPresent += 1
            } else {
                let tags = MLflowTracker.versionTags(job, version: version.version, sha256: version.sha256, metrics: version.metrics ?? [:])
                mlflowVersion = try await client.createModelVersion(name: version.name, source: run.artifactURI + "/weights/best.pt",
                                                                    runID: run.runID, tags: tags)
                result.versionsCreated += 1
                progress("\(version.name) v\(version.version): MLflow version \(mlflowVersion)")
            }
            for alias in version.aliases.sorted() {
                try await client.setAlias(name: version.name, alias: alias, version: mlflowVersion)
                result.aliases += 1
            }
        }
    }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
}
