import Foundation
import YardDomain

/// What trackers write about a run besides the job itself: its epochs and
/// kept files. The store takes them directly; a worker on another machine
/// sends them through its `JobLedger`.
public protocol RunRecords: Sendable {
    /// Stores an epoch; the same epoch again replaces it (a resumed run
    /// never duplicates a row).
    func recordEpoch(_ epoch: EpochRecord) async throws
    func recordArtifact(_ artifact: ArtifactRecord) async throws
}

/// Where a job's secret values are read: by the worker running it and its
/// trackers, never by the API.
public protocol JobSecrets: Sendable {
    /// The secret values taken out of the job's config.
    func secrets(of id: String) async throws -> [String: JSONValue]
}

/// One of the records a job accumulates besides its own fields.
public enum JobRecord: Sendable {
    case event(type: String, payload: JSONValue)
    case logs([String])
    case epoch(EpochRecord)
    case artifact(ArtifactRecord)
}

/// Jobs as `/metrics` counts them at a scrape.
public struct JobGauges: Sendable, Equatable {
    public struct Key: Sendable, Hashable {
        public var state: JobState
        public var experiment: String
        public init(state: JobState, experiment: String) {
            self.state = state
            self.experiment = experiment
        }
    }

    /// Jobs by state and experiment.
    public var counts: [Key: Int]
    /// Since when each queued job waits, oldest first.
    public var queuedSince: [Date]

    public init(counts: [Key: Int] = [:], queuedSince: [Date] = []) {
        self.counts = counts
        self.queuedSince = queuedSince
    }
}

/// One write of `JobStore.apply`: a change of a job and what is stored with it.
public struct JobWrite: Sendable {
    public enum Result: Sendable {
        /// Changed and stored, with the job as written.
        case applied(Job)
        /// The change asked for nothing to be written.
        case skipped
        /// No such job.
        case missing
        /// The change threw: nothing of this write was stored.
        case failed(any Error)
    }

    public var id: String
    public var change: @Sendable (inout Job) throws -> [JobRecord]?

    public init(id: String, change: @escaping @Sendable (inout Job) throws -> [JobRecord]?) {
        self.id = id
        self.change = change
    }
}

/// Where Trainyard keeps its records, one protocol per aggregate so that a
/// driver can be added (or moved to another database) one protocol at a
/// time, each with its own contract suite run on every driver:
/// - `JobRecords`: jobs (with their secrets apart), their epochs, artifacts
///   and training log;
/// - `EventLog`: the one ordered log of every change, with its feed;
/// - `RegistryStore`: model versions, aliases and serving settings;
/// - `SweepStore`: sweeps and their trials;
/// - `DatasetStore`: dataset versions;
/// - `UserStore`: users and their API tokens (UserStore.swift).
/// Every change that one of them records is written with its event, in the
/// same transaction. Drivers: `SQLiteJobStore` (the embedded default) and
/// `MemoryJobStore`; both publish what they commit on `feed`, in commit order.
public protocol JobStore: JobRecords, EventLog, RegistryStore, SweepStore, DatasetStore, UserStore, SessionRecords {}

/// Jobs, their epochs, artifacts and log lines.
public protocol JobRecords: RunRecords, JobSecrets {
    /// Adds a new job; a job with the same id is a `.conflict`. With a
    /// payload, the job's first `state` event is appended in the same
    /// transaction: a job is never in the store without the event that
    /// says it arrived, nor the event without the job.
    func insert(_ job: Job, secrets: [String: JSONValue], recording state: JSONValue?) async throws
    func job(_ id: String) async throws -> Job?
    /// Newest first, the query's conditions applied before its limit.
    func jobs(_ query: JobQuery) async throws -> [Job]
    func jobs(in states: Set<JobState>) async throws -> [Job]
    /// How many jobs are in each state (`/metrics`).
    func jobCounts() async throws -> [JobState: Int]
    /// What `/metrics` reads at each scrape: jobs by state and experiment,
    /// and since when the queued ones wait (their last `state` event: a
    /// resumed job waits from its resume, not from its submission).
    func jobGauges() async throws -> JobGauges
    /// Reads, changes and writes one job atomically; `.notFound` if absent.
    @discardableResult
    func update(_ id: String, _ change: @escaping @Sendable (inout Job) throws -> Void) async throws -> Job
    /// As `update`, and appends an event of `type` with the payload `change`
    /// returns, in the same transaction: a state change is never recorded
    /// without its event, nor its event without it.
    @discardableResult
    func update(_ id: String, recording type: String, _ change: @escaping @Sendable (inout Job) throws -> JSONValue) async throws -> (Job, JobEvent)
    /// Several writes in one transaction (one commit for all: the server
    /// applies workers' reports in batches). Each write reads its job,
    /// changes it, and stores the records its change returns with it; a
    /// change that returns nil writes nothing, one that throws writes
    /// nothing of its own and the others go on. Results in order.
    func apply(_ writes: [JobWrite]) async throws -> [JobWrite.Result]
    func epochs(of id: String) async throws -> [EpochRecord]
    func artifacts(of id: String) async throws -> [ArtifactRecord]
    /// Jobs whose `dataset` is `NAME@ID`, newest first.
    func jobs(usingDataset reference: String, limit: Int) async throws -> [Job]

    /// Stores lines and returns them with their ids.
    @discardableResult
    func appendLog(jobID: String, lines: [String]) async throws -> [LogLine]
    func logs(of id: String, after: Int64, limit: Int) async throws -> [LogLine]
    /// The last `count` lines, oldest first.
    func logs(of id: String, last count: Int) async throws -> [LogLine]
}

/// The ordered log: a global sequence number (gap-free, strictly
/// increasing in commit order), the entity, its kind and a small body.
public protocol EventLog: Sendable {
    /// Where what is committed is published, in commit order.
    var feed: JobFeed { get }

    @discardableResult
    func appendEvent(jobID: String, type: String, payload: JSONValue) async throws -> JobEvent
    /// Appends an event about a sweep, a model, a dataset or a worker (a
    /// job's go through `appendEvent(jobID:...)` and the job writes).
    @discardableResult
    func appendEvent(_ entity: EventEntity, id: String, type: String, payload: JSONValue) async throws -> JobEvent
    /// A job's events with an id above `after`, oldest first.
    func events(of id: String, after: Int64, limit: Int) async throws -> [JobEvent]
    /// The whole log above `after`, oldest first: the events `filter` takes
    /// (it applies before the limit).
    func events(after: Int64, limit: Int, filter: EventFilter) async throws -> [JobEvent]
    /// Removes jobs' events of `EventRetention.prunableTypes` older than
    /// `before` (state events and every other entity's stay); returns how many.
    @discardableResult
    func pruneEvents(before: Date) async throws -> Int
    /// The highest sequence number retention has removed (0: none): a reader
    /// whose cursor is below it missed events and is told so.
    func eventFloor() async throws -> Int64
    /// The newest sequence number given (0: none yet); never below the
    /// floor, so a reader that starts from it misses nothing that comes next.
    func eventHead() async throws -> Int64
}

/// The model registry of record.
public protocol RegistryStore: Sendable {
    /// A new version of `draft.name` gets the next number (1, 2, ...);
    /// registering the same job under the same name again returns the
    /// version it made (`created` false). Recorded with a `version` event.
    func createModelVersion(_ draft: ModelVersion) async throws -> (version: ModelVersion, created: Bool)
    /// Reads, changes and writes one version (its number and name stay); `.notFound` if absent.
    @discardableResult
    func updateModelVersion(name: String, version: String, _ change: @escaping @Sendable (inout ModelVersion) -> Void) async throws -> ModelVersion
    /// Points an alias at a version (nil removes it) and records the move
    /// with the version it pointed at before and the user who moved it (and
    /// an `alias` event); `.notFound` for an unknown version.
    @discardableResult
    func setModelAlias(name: String, alias: String, version: String?, reason: String, by: String?, time: Date) async throws -> AliasChange
    /// An alias's moves (all of a model's when `alias` is nil), newest first.
    func aliasHistory(name: String, alias: String?, limit: Int) async throws -> [AliasChange]
    func modelVersions(name: String?) async throws -> [ModelVersion]
    /// A model's serving settings (preprocessing); nil when none were set.
    func modelSettings(name: String) async throws -> ModelSettings?
    func setModelSettings(name: String, _ settings: ModelSettings) async throws
}

/// Sweeps: the record, and the base config's secrets apart (sealed like a job's).
public protocol SweepStore: Sendable {
    /// A sweep with the same id is a `.conflict`. Recorded with a `state` event.
    func insertSweep(_ sweep: Sweep, secrets: [String: JSONValue]) async throws
    func sweep(_ id: String) async throws -> Sweep?
    /// Newest first; with `active`, only sweeps that have not ended.
    func sweeps(limit: Int, active: Bool) async throws -> [Sweep]
    /// Reads, changes and writes one sweep atomically; `.notFound` if absent.
    /// A change of state is recorded with a `state` event, a trial asked or
    /// told with a `trial` event.
    @discardableResult
    func updateSweep(_ id: String, _ change: @escaping @Sendable (inout Sweep) throws -> Void) async throws -> Sweep
    func sweepSecrets(of id: String) async throws -> [String: JSONValue]
}

/// Dataset versions.
public protocol DatasetStore: Sendable {
    /// A version is numbered after its name's last one; the same name and
    /// id again adds nothing and returns the version stored. A new version
    /// is recorded with a `version` event.
    func recordDatasetVersion(_ version: DatasetVersion) async throws -> (DatasetVersion, created: Bool)
    /// All versions, or one dataset's; newest first.
    func datasetVersions(name: String?) async throws -> [DatasetVersion]
}

/// Which jobs a list wants: every condition given holds, newest first,
/// `before` a job (the last of the previous page) for the next page.
public struct JobQuery: Sendable, Hashable {
    public var limit: Int
    public var state: JobState?
    /// The user who submitted them.
    public var owner: String?
    public var experiment: String?
    /// The `model` of their config (`yolov8n.pt`, `models:/det@production`).
    public var model: String?
    /// A registered dataset's name (any version), or `NAME@ID` (that version).
    public var dataset: String?
    /// A job id: only jobs older than it (created before it, or at the same time with a smaller id).
    public var before: String?

    public init(limit: Int, state: JobState? = nil, owner: String? = nil, experiment: String? = nil, model: String? = nil,
                dataset: String? = nil, before: String? = nil) {
        self.limit = limit
        self.state = state
        self.owner = owner
        self.experiment = experiment
        self.model = model
        self.dataset = dataset
        self.before = before
    }

    /// Whether a job meets the conditions other than `before` and `limit`.
    public func matches(_ job: Job) -> Bool {
        if let state, job.state != state { return false }
        if let owner, job.owner != owner { return false }
        if let experiment, job.experiment != experiment { return false }
        if let model, job.model != model { return false }
        if let dataset {
            guard let used = job.dataset else { return false }
            if used != dataset, !used.hasPrefix(dataset + "@") { return false }
        }
        return true
    }
}

extension JobRecords {
    /// Newest first; with a `state`, only jobs in it, with an `owner`, only
    /// the jobs that user submitted (filtered before the limit).
    public func jobs(limit: Int, state: JobState?, owner: String?) async throws -> [Job] {
        try await jobs(JobQuery(limit: limit, state: state, owner: owner))
    }

    public func jobs(limit: Int) async throws -> [Job] { try await jobs(limit: limit, state: nil) }

    /// A job with no event of its arrival: fixtures and benchmarks (the job
    /// layer records one with every job it adds).
    public func insert(_ job: Job, secrets: [String: JSONValue]) async throws {
        try await insert(job, secrets: secrets, recording: nil)
    }

    /// Fetches a job or throws `.notFound` with a hint.
    public func require(_ id: String) async throws -> Job {
        guard let job = try await job(id) else {
            throw YardError(.notFound, field: "id", "no job \(id); `yard jobs` lists them")
        }
        return job
    }
}

extension YardError {
    /// A new job whose id is taken, or differs from a taken one only in case.
    static func duplicateJob(_ id: String, existing: String) -> YardError {
        let note = existing == id ? "" : " (as \(existing): ids are unique regardless of case)"
        return YardError(.conflict, field: "task_id", "a job with id \(id) already exists\(note); choose another task_id")
    }
}
