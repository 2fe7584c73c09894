import Foundation
import YardDomain
import YardStore

/// Records a sweep in MLflow as one parent run, its trials' runs as its
/// children (`mlflow.parentRunId`, set by each trial's own tracker from its
/// `metadata.sweep_id`). The parent carries the sweep's settings as params
/// (`sweeper.*`), the best value so far as a metric named like the fitness
/// (one point each time a trial improves on it), and at the end the best
/// trial's params under the names its run uses (`lr0`, `model`) with tags
/// naming the trial. Every call goes through the server's `TrackingSpool`,
/// like a job's, so MLflow being down never holds a sweep.
public struct MLflowSweepTracker: Sendable {
    /// The tag a sweep's run is found by (its children look for it too).
    public static let keyTag = "trainyard.sweep_id"

    let spool: TrackingSpool
    /// The server's own `MLFLOW_TRACKING_URI`, used when a sweep's config names none.
    let defaultURI: String?
    /// Where the redacted config is written for upload (`DATA/sweeps`).
    let directory: String
    let now: @Sendable () -> Date

    public init(spool: TrackingSpool, defaultURI: String?, directory: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.spool = spool
        self.defaultURI = defaultURI
        self.directory = directory
        self.now = now
    }

    /// The sweep's spool file: `@ID` is never a job id (ids start with a letter or digit).
    static func key(_ sweep: Sweep) -> String { TrackingSpool.sweepKey(sweep.id) }

    /// The MLflow server of a sweep (its config has its secrets), else the server's default.
    func trackingURI(_ config: JobConfig) -> String? {
        let uri = config.json["mlflow"]?["MLFLOW_TRACKING_URI"]?.stringValue ?? defaultURI
        guard let uri, uri.hasPrefix("http://") || uri.hasPrefix("https://") else { return nil }
        return uri
    }

    var millis: Int { Int(now().timeIntervalSince1970 * 1000) }

    /// The parent run: the sweep's settings and search space as params, its
    /// redacted config as an artifact. Nothing when MLflow is not configured.
    public func started(_ sweep: Sweep, config: JobConfig) async throws {
        guard let uri = trackingURI(config), let spec = config.sweep else { return }
        var params: [String: JSONValue] = [
            "sweeper.study_name": .string(sweep.study), "sweeper.n_trials": .string(String(spec.trials)),
            "sweeper.direction": .string(spec.direction.rawValue), "sweeper.sampler": .string(spec.sampler.rawValue),
            "sweeper.pruner": .string(spec.pruner.rawValue), "sweeper.fitness": .string(spec.fitness),
            "sweeper.grace_period": .string(String(spec.gracePeriod)), "sweeper.max_concurrent": .string(String(spec.maxConcurrent)),
            "model": .string(config.model),
        ]
        if let seed = spec.seed { params["sweeper.seed"] = .string(String(seed)) }
        if let factor = spec.reductionFactor { params["sweeper.reduction_factor"] = .string(String(factor)) }
        if let count = spec.bootstrapCount { params["sweeper.bootstrap_count"] = .string(String(count)) }
        for parameter in spec.parameters {
            params[MetricName.sanitize("search_space." + parameter.name)] = .string(parameter.distribution.syntax)
        }
        // Base values a trial never changes (searched ones are logged with the best trial).
        let searched = Set(spec.parameters.map(\.name))
        for (key, value) in MLflowTracker.flatten(sweep.config["train"] ?? [:], prefix: "")
        where !Redaction.isSecretKey(key) && !searched.contains("train." + key) {
            params[MetricName.sanitize(key)] = .string(value)
        }
        if searched.contains("model") { params["model"] = nil }
        let tags: [String: JSONValue] = [
            Self.keyTag: .string(sweep.id), "trainyard.study": .string(sweep.study),
            "mlflow.source.name": "trainyard", "mlflow.source.type": "JOB", "trainyard.kind": "sweep",
        ]
        try await spool.append(jobID: Self.key(sweep), [
            "op": "start", "tracking_uri": .string(uri), "experiment": .string(sweep.experiment), "run_name": .string(sweep.id),
            "start_time": .int(Int(sweep.createdAt.timeIntervalSince1970 * 1000)), "key_tag": .string(Self.keyTag),
            "tags": .object(tags), "params": .object(params.filter { !$0.key.isEmpty }),
        ])
        let folder = directory + "/" + sweep.id
        let path = folder + "/config.redacted.json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if (try? AtomicFile.write(encoder.encode(sweep.config), to: path, permissions: 0o644)) != nil {
            try await spool.append(jobID: Self.key(sweep), ["op": "artifact", "local_path": .string(path), "artifact_path": "config.redacted.json"])
        }
    }

    /// A trial did better than all before it: a point of the best-so-far
    /// curve (step: trials told so far).
    public func improved(_ sweep: Sweep, config: JobConfig, best: Sweep.Best, told: Int) async throws {
        guard trackingURI(config) != nil, let spec = config.sweep else { return }
        try await spool.append(jobID: Self.key(sweep), ["op": "metrics", "step": .int(told), "timestamp": .int(millis),
                                                         "values": [spec.fitness: .double(best.value)]])
        try await spool.append(jobID: Self.key(sweep), ["op": "tags", "tags": [
            "trainyard.best_trial": .string(String(best.number)), "trainyard.best_job_id": .string(best.jobID),
            "trainyard.best_value": .string(String(best.value)),
        ]])
    }

    /// The sweep ended: the best trial's params (as its run names them), a
    /// summary, and the run's status (FINISHED, or KILLED when stopped).
    public func ended(_ sweep: Sweep, config: JobConfig) async throws {
        guard trackingURI(config) != nil else { return }
        var ops: [[String: JSONValue]] = []
        if let best = sweep.best {
            var params: [String: JSONValue] = [:]
            for (name, value) in best.params {
                let key = name.hasPrefix("train.") ? String(name.dropFirst("train.".count)) : name
                params[MetricName.sanitize(key)] = .string(value.stringValue ?? MLflowTracker.compact(value))
            }
            ops.append(["op": "params", "params": .object(params)])
        }
        var tags: [String: JSONValue] = ["trainyard.state": .string(sweep.state.rawValue)]
        if let message = sweep.message { tags["trainyard.message"] = .string(String(message.prefix(5000))) }
        if let retrain = sweep.retrainJobID { tags["trainyard.retrain_job_id"] = .string(retrain) }
        ops.append(["op": "tags", "tags": .object(tags)])
        let status = switch sweep.state {
        case .finished: "FINISHED"
        case .failed: "FAILED"
        default: "KILLED"
        }
        ops.append(["op": "end", "status": .string(status), "end_time": .int(millis)])
        try await spool.append(jobID: Self.key(sweep), ops: ops)
    }
}
