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
        var tags: [String: JSONValue] = [
            "trainyard.job_id": .string(job.id),
            "trainyard.worker_host": .string(host),
            "trainyard.config_hash": .string(Self.hash(config)),
            "trainyard.attempt": .string(String(job.attempts)),
            "mlflow.source.name": "trainyard",
            "mlflow.source.type": "JOB",
            "model": .string(job.model),
            "type": .string(job.type.rawValue),
        ]
        if let commit = job.gitCommit { tags["mlflow.source.git.commit"] = .string(commit) }
        if let dirty = job.provenance?.gitDirty { tags["trainyard.git_dirty"] = .string(job.provenance?.gitDiff ?? "\(dirty)") }
        if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = .string(hash) }
        if let dataset = job.dataset { tags["trainyard.dataset"] = .string(dataset) }
        for (key, value) in config["metadata"]?.objectValue ?? [:] {
            let text = value.stringValue ?? Self.compact(value)
            if key == "content" { tags["mlflow.note.content"] = .string(text) } else { tags["metadata.\(MetricName.sanitize(key))"] = .string(text) }
        }
        var params: [String: JSONValue] = ["model": .string(job.model), "type": .string(job.type.rawValue)]
        for (key, value) in Self.flatten(config["train"] ?? [:], prefix: "") where !Redaction.isSecretKey(key) {
            params[MetricName.sanitize(key)] = .string(value)
        }
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
        var tags: [String: JSONValue] = [:]
        if let device = job.device { tags["device"] = .string(device) }
        for (name, version) in job.versions ?? [:] where !version.isEmpty { tags["\(name)_version"] = .string(version) }
        if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = .string(hash) }
        if let host = job.provenance?.host { tags["trainyard.host"] = .string(host) }
        if let parent = job.provenance?.parent { tags["trainyard.parent_model"] = .string("\(parent.name)@v\(parent.version)") }
        if let original = job.provenance?.rerunOf { tags["trainyard.rerun_of"] = .string(original) }
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
        let status: String
        switch job.state {
        case .succeeded: status = "FINISHED"
        case .failed: status = "FAILED"
        case .stopped, .pruned: status = "KILLED"
        default: return  // requeued: the run goes on with the next attempt
        }
        var tags: [String: JSONValue] = ["trainyard.state": .string(job.state.rawValue)]
        if let message = job.message { tags["trainyard.message"] = .string(String(message.prefix(5000))) }
        if let fitness = job.fitness { tags["trainyard.fitness"] = .string(String(fitness)) }
        // `mlflow.register_model` is the server's to do (its registry of
        // record registers the job and mirrors the version here).
        try await spool.append(jobID: job.id, ops: [["op": "tags", "tags": .object(tags)], ["op": "end", "status": .string(status), "end_time": .int(millis)]])
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
