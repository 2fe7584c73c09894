import Foundation

/// A job as Trainyard records it. `config` is always the redacted config:
/// secrets live apart from the record and never reach the API.
public struct Job: Sendable, Codable, Hashable {
    public var id: String
    public var experiment: String
    public var model: String
    public var type: JobConfig.ModelType
    public var state: JobState
    public var config: JSONValue
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Why the job failed or stopped, in one line.
    public var message: String?
    /// How many times a worker has started it (a resume counts).
    public var attempts: Int
    /// How many attempts ended because a process died under it (nil: none).
    public var crashes: Int?
    public var worker: String?
    public var device: String?
    public var saveDir: String?
    public var epoch: Int?
    public var epochs: Int?
    public var bestWeights: String?
    public var lastWeights: String?
    public var fitness: Double?
    public var finalMetrics: [String: Double]?
    /// The best weights on the dataset's test split (`test/precision`,
    /// `test/mAP50-95`, …), when it has one; per class in the run's
    /// test/evaluation.json and the job's `evaluation` event.
    public var testMetrics: [String: Double]?
    public var versions: [String: String]?
    /// The tracker's id for this job's run (the job id for the store).
    public var runID: String?
    /// The MLflow run id, once the run exists on the tracking server.
    public var mlflowRunID: String?
    /// `pending` while tracking calls wait to be sent, `synced` when all are,
    /// nil when the job has no external tracker.
    public var tracking: String?
    /// Why tracking is pending (the tracker's last error), if it is.
    public var trackingError: String?
    /// The git commit of the folder the job was submitted from, when it is a repo.
    public var gitCommit: String?
    /// DVC's directory hash of the dataset it trained on (`dvc add` prints
    /// the same for that folder).
    public var datasetHash: String?
    /// `NAME@ID` when `train.data` named a registered dataset (`dataset:NAME`).
    public var dataset: String?
    /// The queue attempt whose reports are recorded (workers over Redis);
    /// reports of an older attempt are dropped.
    public var claim: Int?
    /// The last report of that attempt applied, so one delivered twice is
    /// applied once.
    public var reportSeq: Int?
    /// Why a sweep's pruner stopped this trial; set before the stop is
    /// asked, so the stop it causes ends the job `pruned`, not `stopped`.
    public var pruning: String?
    /// The user who submitted it (nil: before users, or a server with no token).
    public var owner: String?
    /// Code state, parent model, rerun origin and host (`yard lineage`).
    public var provenance: JobProvenance?
    /// `priority:` from its config, 0-9 (9 first); nil in records made before priorities (5).
    public var priority: Int?

    public init(id: String, config: JobConfig, redacted: JSONValue, createdAt: Date) {
        self.id = id
        self.experiment = config.experiment
        self.model = config.model
        self.type = config.type
        self.state = .queued
        self.config = redacted
        self.createdAt = createdAt
        self.attempts = 0
        self.epochs = config.epochs
        self.priority = config.priority
    }

    enum CodingKeys: String, CodingKey {
        case id, experiment, model, type, state, config, message, attempts, crashes, worker, device, epoch, epochs, fitness, versions
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case saveDir = "save_dir", bestWeights = "best_weights", lastWeights = "last_weights"
        case finalMetrics = "final_metrics", testMetrics = "test_metrics", runID = "run_id", mlflowRunID = "mlflow_run_id", tracking
        case trackingError = "tracking_error", gitCommit = "git_commit", datasetHash = "dataset_hash"
        case claim, reportSeq = "report_seq", pruning, dataset
        case owner, priority
        case provenance
    }
}

/// One row per finished epoch: the numbers of the engine's `epoch` event,
/// which are the same as that epoch's row of Ultralytics' results.csv.
public struct EpochRecord: Sendable, Codable, Hashable {
    public var jobID: String
    public var epoch: Int
    public var metrics: [String: Double]
    public var seconds: Double

    public init(jobID: String, epoch: Int, metrics: [String: Double], seconds: Double) {
        self.jobID = jobID
        self.epoch = epoch
        self.metrics = metrics
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey { case jobID = "job_id", epoch, metrics, seconds }
}

/// A file a job produced, kept by the artifact store under `key`.
public struct ArtifactRecord: Sendable, Codable, Hashable {
    public var jobID: String
    public var key: String
    public var kind: String
    public var size: Int64

    public init(jobID: String, key: String, kind: String, size: Int64) {
        self.jobID = jobID
        self.key = key
        self.kind = kind
        self.size = size
    }

    enum CodingKeys: String, CodingKey { case jobID = "job_id", key, kind, size }
}

/// Something that happened, in the one log of the whole system: a job's
/// engine events and state changes, a sweep's state, a model version or
/// alias move, a dataset version. `id` is the log's sequence number: strictly
/// increasing in commit order, never reused, no gaps but those retention
/// made. The server streams these as Server-Sent Events.
public struct JobEvent: Sendable, Codable, Hashable {
    public var id: Int64
    /// The entity's id: a job id, a sweep id, a model or dataset name.
    public var jobID: String
    public var type: String
    public var payload: JSONValue
    public var time: Date
    public var entity: EventEntity
    /// The experiment of the job or sweep it is about, as it was when the
    /// event was written (nil for models, datasets and workers).
    public var experiment: String?

    public init(id: Int64, jobID: String, type: String, payload: JSONValue, time: Date, entity: EventEntity = .job,
                experiment: String? = nil) {
        self.id = id
        self.jobID = jobID
        self.type = type
        self.payload = payload
        self.time = time
        self.entity = entity
        self.experiment = experiment
    }

    enum CodingKeys: String, CodingKey { case id, jobID = "job_id", type, payload, time, entity, experiment }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        jobID = try c.decode(String.self, forKey: .jobID)
        type = try c.decode(String.self, forKey: .type)
        payload = try c.decode(JSONValue.self, forKey: .payload)
        time = try c.decode(Date.self, forKey: .time)
        entity = try c.decodeIfPresent(EventEntity.self, forKey: .entity) ?? .job
        experiment = try c.decodeIfPresent(String.self, forKey: .experiment)
    }
}

/// One line of a job's training log.
public struct LogLine: Sendable, Codable, Hashable {
    public var id: Int64
    public var line: String

    /// The most bytes of one stored line; the rest is cut, and the cut said.
    public static let maxBytes = 16 << 10

    /// `line` cut to `maxBytes` (on a character boundary), with how much was left out.
    public static func bounded(_ line: String, limit: Int = maxBytes) -> String {
        guard line.utf8.count > limit else { return line }
        // Back from the byte limit to the start of a character.
        var end = line.utf8.index(line.utf8.startIndex, offsetBy: limit)
        while end > line.startIndex, String.Index(end, within: line) == nil { end = line.utf8.index(before: end) }
        let kept = line[..<end]
        return kept + " … (\(line.utf8.count - kept.utf8.count) more bytes cut)"
    }

    public init(id: Int64, line: String) {
        self.id = id
        self.line = line
    }
}

extension Job {
    /// A state change applied to the record, through the state machine:
    /// the one place that says what moving a job sets (its end time, its
    /// message), wherever the move is recorded (the store, a remote worker).
    /// A stop of a trial being pruned ends it `pruned` with the pruner's reason.
    public mutating func move(to requested: JobState, message: String?, at time: Date) throws(YardError) {
        let pruned = requested == .stopped && pruning != nil
        let next: JobState = pruned ? .pruned : requested
        try state.checkMove(to: next, job: id)
        state = next
        if next.isTerminal { finishedAt = time }
        if next == .queued || next == .running { finishedAt = nil }
        if let message { self.message = message }
        if pruned, let pruning { self.message = pruning }
    }
}
