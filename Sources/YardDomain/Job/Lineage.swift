import Foundation

/// "What made you": a model version's (or a job's) whole record in one
/// answer, as `yard lineage` and `GET /api/lineage/REF` give it. Every part
/// is read from records Trainyard already keeps; none is recomputed.
public struct Lineage: Sendable, Codable, Hashable {
    /// The version asked about (nil when a job was).
    public var model: ModelVersion?
    /// Every version registered from the job, under any name.
    public var registered: [ModelVersion]
    public var job: JobSummary
    /// Each attempt, from the event log (empty once retention pruned its events).
    public var attempts: [Attempt]
    /// The job's config as stored: secrets masked.
    public var config: JSONValue
    public var seed: Int?
    public var deterministic: Bool?
    public var dataset: DatasetLineage
    public var code: CodeLineage
    /// Python, torch, Ultralytics, numpy, CUDA, cuDNN and the engine's own version.
    public var engine: [String: String]
    public var device: String?
    public var host: String?
    public var worker: String?
    public var sweep: SweepLineage?
    public var parent: ParentModel?
    public var rerunOf: String?
    public var metrics: [String: Double]?
    /// The last epoch's numbers (training and validation losses, learning
    /// rates, metrics): what a rerun compares beside the final metrics.
    public var lastEpoch: [String: Double]?
    public var fitness: Double?
    /// The best weights on the dataset's test split.
    public var test: [String: Double]?
    /// Every move of an alias to or from the registered versions, newest first.
    public var aliasHistory: [AliasChange]

    public init(model: ModelVersion?, registered: [ModelVersion], job: JobSummary, attempts: [Attempt], config: JSONValue, seed: Int?, deterministic: Bool?,
                dataset: DatasetLineage, code: CodeLineage, engine: [String: String], device: String?, host: String?, worker: String?,
                sweep: SweepLineage?, parent: ParentModel?, rerunOf: String?, metrics: [String: Double]?, lastEpoch: [String: Double]?, fitness: Double?,
                test: [String: Double]?, aliasHistory: [AliasChange]) {
        self.model = model
        self.registered = registered
        self.job = job
        self.attempts = attempts
        self.config = config
        self.seed = seed
        self.deterministic = deterministic
        self.dataset = dataset
        self.code = code
        self.engine = engine
        self.device = device
        self.host = host
        self.worker = worker
        self.sweep = sweep
        self.parent = parent
        self.rerunOf = rerunOf
        self.metrics = metrics
        self.lastEpoch = lastEpoch
        self.fitness = fitness
        self.test = test
        self.aliasHistory = aliasHistory
    }

    enum CodingKeys: String, CodingKey {
        case model, registered, job, attempts, config, seed, deterministic, dataset, code, engine, device, host, worker, sweep, parent
        case rerunOf = "rerun_of", metrics, lastEpoch = "last_epoch", fitness, test, aliasHistory = "alias_history"
    }

    public struct JobSummary: Sendable, Codable, Hashable {
        public var id: String
        public var state: JobState
        public var experiment: String
        public var model: String
        public var createdAt: Date
        public var startedAt: Date?
        public var finishedAt: Date?
        /// Attempts a worker started (a resume counts) and how many a crash ended.
        public var attempts: Int
        public var crashes: Int?
        public var message: String?

        public init(_ job: Job) {
            id = job.id
            state = job.state
            experiment = job.experiment
            model = job.model
            createdAt = job.createdAt
            startedAt = job.startedAt
            finishedAt = job.finishedAt
            attempts = job.attempts
            crashes = job.crashes
            message = job.message
        }

        enum CodingKeys: String, CodingKey {
            case id, state, experiment, model, attempts, crashes, message
            case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        }
    }

    /// One attempt at the job, read from its `state` events: when a worker
    /// started it and how that attempt ended (nil while it runs).
    public struct Attempt: Sendable, Codable, Hashable {
        public var number: Int
        public var started: Date
        public var ended: Date?
        public var end: JobState?
        public var message: String?

        public init(number: Int, started: Date, ended: Date?, end: JobState?, message: String?) {
            self.number = number
            self.started = started
            self.ended = ended
            self.end = end
            self.message = message
        }

        /// The attempts in a job's `state` events, oldest first.
        public static func from(_ events: [JobEvent]) -> [Attempt] {
            var attempts: [Attempt] = []
            for event in events where event.type == "state" {
                guard let state = event.payload["state"]?.stringValue.flatMap(JobState.init(rawValue:)) else { continue }
                let time = event.payload["time"]?.doubleValue.map { Date(timeIntervalSince1970: $0) } ?? event.time
                if state == .running {
                    attempts.append(Attempt(number: attempts.count + 1, started: time, ended: nil, end: nil, message: nil))
                } else if state != .stopping, let last = attempts.indices.last, attempts[last].end == nil {
                    attempts[last].ended = time
                    attempts[last].end = state
                    attempts[last].message = event.payload["message"]?.stringValue
                }
            }
            return attempts
        }
    }

    public struct DatasetLineage: Sendable, Codable, Hashable {
        /// DVC's directory hash of what it trained on (`dvc add` prints the same).
        public var hash: String?
        /// `train.data` as the config has it (`dataset:NAME@ID`, a path, an `s3://` URI).
        public var data: String?
        /// The registered version, when it trained on one.
        public var version: DatasetVersion?
        /// Whether the version's files are still on the server (nil: not a registered version).
        public var present: Bool?

        public init(hash: String?, data: String?, version: DatasetVersion?, present: Bool?) {
            self.hash = hash
            self.data = data
            self.version = version
            self.present = present
        }
    }

    public struct CodeLineage: Sendable, Codable, Hashable {
        public var commit: String?
        public var dirty: Bool?
        /// sha256 of the uncommitted diff, when dirty.
        public var diff: String?

        public init(commit: String?, dirty: Bool?, diff: String?) {
            self.commit = commit
            self.dirty = dirty
            self.diff = diff
        }
    }

    public struct SweepLineage: Sendable, Codable, Hashable {
        public var id: String
        /// The trial's number as its job's metadata says it (from 1); nil for the sweep's retrain.
        public var trial: Int?
        public var params: [String: JSONValue]?

        public init(id: String, trial: Int?, params: [String: JSONValue]?) {
            self.id = id
            self.trial = trial
            self.params = params
        }
    }
}
