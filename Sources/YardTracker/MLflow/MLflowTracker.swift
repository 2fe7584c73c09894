import Crypto
import Foundation
import YardDomain
import YardStore

/// Records runs in MLflow, for jobs whose config names a tracking server
/// (`mlflow.MLFLOW_TRACKING_URI`) or when the worker has a default. Every
/// call only appends to the `TrackingSpool`, so MLflow being slow or down
/// never touches the training.
public struct MLflowTracker: Tracker {
    let spool: TrackingSpool
    /// Where the job's tracking URI credentials are read.
    let secrets: any JobSecrets
    /// The worker's own `MLFLOW_TRACKING_URI`, used when a job names none.
    let defaultURI: String?
    let host: String
    /// Where job folders are (`DATA/jobs`), for the redacted config artifact.
    let jobsDirectory: String?
    let now: @Sendable () -> Date

    public init(spool: TrackingSpool, secrets: any JobSecrets, defaultURI: String?, jobsDirectory: String? = nil,
                host: String = ProcessInfo.processInfo.hostName, now: @escaping @Sendable () -> Date = { Date() }) {
        self.jobsDirectory = jobsDirectory
        self.spool = spool
        self.secrets = secrets
        self.defaultURI = defaultURI
        self.host = host
        self.now = now
    }

    /// The tracking URI for a job (with credentials: it comes from the secrets).
    func trackingURI(_ job: Job) async throws -> String? {
        try await Self.trackingURI(job, secrets: secrets, defaultURI: defaultURI)
    }

    /// The job's MLflow server (credentials included: read from its secrets),
    /// else the worker's default; nil when neither is an http(s) URL.
    public static func trackingURI(_ job: Job, secrets: any JobSecrets, defaultURI: String?) async throws -> String? {
        let full = Redaction.restore(job.config, secrets: try await secrets.secrets(of: job.id))
        let uri = full["mlflow"]?["MLFLOW_TRACKING_URI"]?.stringValue ?? defaultURI
        guard let uri, uri.hasPrefix("http://") || uri.hasPrefix("https://") else { return nil }
        return uri
    }

    var millis: Int { Int(now().timeIntervalSince1970 * 1000) }

    public func startRun(_ job: Job) async throws -> String? {
        guard let uri = try await trackingURI(job) else { return nil }
        let config = job.config
        let tags = Self.runTags(job, host: host).mapValues(JSONValue.string)
        let params = Self.params(job).mapValues(JSONValue.string)
        var start: [String: JSONValue] = [
            "op": "start", "tracking_uri": .string(uri), "experiment": .string(job.experiment), "run_name": .string(job.id),
            "start_time": .int(millis), "tags": .object(tags), "params": .object(params), "first": .bool(job.attempts <= 1),
        ]
        // A sweep's trial (and its retraining) is a child of the sweep's run.
        if let sweep = config["metadata"]?["sweep_id"]?.stringValue {
            start["parent"] = ["tag": .string(MLflowSweepTracker.keyTag), "value": .string(sweep)]
        }
        try await spool.append(jobID: job.id, start)
        if job.attempts <= 1, let folder = jobFolder(job) {
            // The redacted config, as an artifact of the run.
            let path = folder + "/config.redacted.json"
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            if (try? AtomicFile.write(encoder.encode(config), to: path, permissions: 0o644)) != nil {
                try await spool.append(jobID: job.id, ["op": "artifact", "local_path": .string(path), "artifact_path": "config.redacted.json"])
            }
        }
        return nil
    }

    public func engineStarted(_ job: Job) async throws {
        guard try await trackingURI(job) != nil else { return }
        let tags = Self.engineTags(job).mapValues(JSONValue.string)
        guard !tags.isEmpty else { return }
        try await spool.append(jobID: job.id, ["op": "tags", "tags": .object(tags)])
    }

    /// `DATA/jobs/JOB`, where the worker keeps the spec and log.
    func jobFolder(_ job: Job) -> String? { jobsDirectory.map { "\($0)/\(job.id)" } }

    public func logEpoch(_ job: Job, _ epoch: EpochRecord) async throws {
        guard try await trackingURI(job) != nil else { return }
        var values: [String: JSONValue] = epoch.metrics.mapValues { .double($0) }
        values["epoch_seconds"] = .double(epoch.seconds)
        try await spool.append(jobID: job.id, ["op": "metrics", "step": .int(epoch.epoch), "timestamp": .int(millis), "values": .object(values)])
    }

    /// Sent at the last epoch's step, so they sit beside the final numbers.
    public func logEvaluation(_ job: Job, _ metrics: [String: Double]) async throws {
        guard try await trackingURI(job) != nil, !metrics.isEmpty else { return }
        try await spool.append(jobID: job.id, ["op": "metrics", "step": .int(job.epoch ?? 0), "timestamp": .int(millis),
                                               "values": .object(metrics.mapValues { .double($0) })])
    }

    public func logArtifact(_ job: Job, _ artifact: ArtifactRecord, localPath: String) async throws {
        guard try await trackingURI(job) != nil else { return }
        let relative = artifact.key.hasPrefix(job.id + "/") ? String(artifact.key.dropFirst(job.id.count + 1)) : artifact.key
        try await spool.append(jobID: job.id, ["op": "artifact", "local_path": .string(localPath), "artifact_path": .string(relative)])
    }

    public func endRun(_ job: Job) async throws {
        guard try await trackingURI(job) != nil else { return }
        guard let status = Self.endStatus(job.state) else { return }  // requeued: the run goes on with the next attempt
        let tags = Self.endTags(job).mapValues(JSONValue.string)
        // `mlflow.register_model` is the server's to do (its registry of
        // record registers the job and mirrors the version here).
        try await spool.append(jobID: job.id, ops: [["op": "tags", "tags": .object(tags)], ["op": "end", "status": .string(status), "end_time": .int(millis)]])
    }

    // What a run records, shared by the live tracker and `yard tracking resync`.

    /// The tags a run starts with.
    public static func runTags(_ job: Job, host: String) -> [String: String] {
        var tags: [String: String] = [
            "trainyard.job_id": job.id,
            "trainyard.worker_host": host,
            "trainyard.config_hash": hash(job.config),
            "trainyard.attempt": String(job.attempts),
            "mlflow.source.name": "trainyard",
            "mlflow.source.type": "JOB",
            "model": job.model,
            "type": job.type.rawValue,
        ]
        if let commit = job.gitCommit { tags["mlflow.source.git.commit"] = commit }
        if let dirty = job.provenance?.gitDirty { tags["trainyard.git_dirty"] = job.provenance?.gitDiff ?? "\(dirty)" }
        if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = hash }
        if let dataset = job.dataset { tags["trainyard.dataset"] = dataset }
        for (key, value) in job.config["metadata"]?.objectValue ?? [:] {
            let text = value.stringValue ?? compact(value)
            if key == "content" { tags["mlflow.note.content"] = text } else { tags["metadata.\(MetricName.sanitize(key))"] = text }
        }
        return tags
    }

    /// The run's params: the model, the job type and every `train:` key (secrets left out).
    public static func params(_ job: Job) -> [String: String] {
        var params = ["model": job.model, "type": job.type.rawValue]
        for (key, value) in flatten(job.config["train"] ?? [:], prefix: "") where !Redaction.isSecretKey(key) {
            params[MetricName.sanitize(key)] = value
        }
        return params
    }

    /// What the engine reported when it started: device, versions, dataset hash, host, parent model.
    public static func engineTags(_ job: Job) -> [String: String] {
        var tags: [String: String] = [:]
        if let device = job.device { tags["device"] = device }
        for (name, version) in job.versions ?? [:] where !version.isEmpty { tags["\(name)_version"] = version }
        if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = hash }
        if let host = job.provenance?.host { tags["trainyard.host"] = host }
        if let parent = job.provenance?.parent { tags["trainyard.parent_model"] = "\(parent.name)@v\(parent.version)" }
        if let original = job.provenance?.rerunOf { tags["trainyard.rerun_of"] = original }
        return tags
    }

    /// MLflow's status for a finished job; nil while it may go on (queued again, running).
    public static func endStatus(_ state: JobState) -> String? {
        switch state {
        case .succeeded: "FINISHED"
        case .failed: "FAILED"
        case .stopped, .pruned: "KILLED"
        default: nil
        }
    }

    /// The tags a run ends with: state, the reason, the fitness.
    public static func endTags(_ job: Job) -> [String: String] {
        var tags = ["trainyard.state": job.state.rawValue]
        if let message = job.message { tags["trainyard.message"] = String(message.prefix(5000)) }
        if let fitness = job.fitness { tags["trainyard.fitness"] = String(fitness) }
        return tags
    }

    /// The tags of a registered version's MLflow mirror.
    public static func versionTags(_ job: Job, version: String, sha256: String?, metrics: [String: Double]) -> [String: String] {
        var tags = ["trainyard.job_id": job.id, "trainyard.experiment": job.experiment, "trainyard.version": version,
                    "model": job.model, "trainyard.config_hash": hash(job.config)]
        if let sha256 { tags["trainyard.sha256"] = sha256 }
        if let fitness = job.fitness { tags["trainyard.fitness"] = String(fitness) }
        if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = hash }
        if let commit = job.gitCommit { tags["git_commit"] = commit }
        for (key, value) in metrics { tags[MetricName.sanitize(key)] = String(value) }
        return tags
    }

    /// `{a: {b: 1}}` → `a.b = "1"`; lists as compact JSON.
    static func flatten(_ value: JSONValue, prefix: String) -> [(String, String)] {
        switch value {
        case .object(let object):
            return object.sorted { $0.key < $1.key }.flatMap { flatten($0.value, prefix: prefix.isEmpty ? $0.key : "\(prefix).\($0.key)") }
        case .string(let s): return [(prefix, s)]
        case .null: return [(prefix, "None")]
        default: return [(prefix, compact(value))]
        }
    }

    static func compact(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// sha256 of the canonical (sorted-key) JSON of the redacted config.
    public static func hash(_ value: JSONValue) -> String {
        SHA256.hash(data: Data(compact(value).utf8)).hex
    }
}
