import Foundation
import Logging
import YardDomain
import YardQueue
import YardStore

/// The job layer: every change of a job's state goes through here, whoever
/// asks for it: the API and the CLI (submit, stop, resume, prune), the
/// start-up recovery, an embedded worker (`StoreLedger`) and workers on
/// other machines (their reports, `apply(_:)` in JobReports.swift). Each
/// keeps the store and the queue consistent and records the `state` event
/// in the same transaction as the change.
public struct JobControl: Sendable {
    public let store: any JobStore
    public let queue: any JobQueue
    /// Where workers on other machines read what the server decided (nil:
    /// the workers share this process and read the store).
    public let board: (any JobBoard)?
    let now: @Sendable () -> Date
    let logger: Logger

    public init(store: any JobStore, queue: any JobQueue, board: (any JobBoard)? = nil, now: @escaping @Sendable () -> Date = { Date() },
                logger: Logger = Logger(label: "yard.jobs")) {
        self.store = store
        self.queue = queue
        self.board = board
        self.now = now
        self.logger = logger
    }

    /// Publishes the job for workers on other machines before it is queued
    /// (a worker that claims it finds its record).
    private func publish(_ job: Job) async throws {
        guard let board else { return }
        try await board.publish(job, secrets: try await store.secrets(of: job.id))
    }

    /// Stores and queues a validated config; returns the new job, owned by
    /// `owner` (by default the user whose request this is).
    public func submit(_ config: JobConfig, gitCommit: String? = nil, owner: String? = Caller.current?.name,
                       provenance: JobProvenance? = nil) async throws -> Job {
        try Self.authorise(config)
        let (pinned, dataset) = try await pinDataset(config)
        // Recorded, so a rerun is the same computation (`yard rerun`).
        var config = pinned.withReproducibility(seed: Int.random(in: 0...JobConfig.maxSeed))
        var provenance = provenance
        if ModelReference.isReference(config.model) {
            let parent = try await pinModel(config.model)
            config = config.withModel(parent.reference)
            provenance = provenance ?? JobProvenance()
            provenance?.parent = parent
        }
        let time = now()
        let id = config.taskID ?? JobID.generate(epochSeconds: Int(time.timeIntervalSince1970), random: UInt32.random(in: 0...UInt32.max))
        let full = config.withTaskID(id)
        let secrets = Redaction.secrets(of: full.json)
        // Masked by key and by value: a secret repeated elsewhere in the config
        // (a note, a header in extras) is hidden there too.
        var job = Job(id: id, config: full, redacted: SecretMasker(secrets: secrets).mask(Redaction.redact(full.json)), createdAt: time)
        job.gitCommit = gitCommit
        job.owner = owner
        job.dataset = dataset?.reference
        job.datasetHash = dataset?.id
        job.provenance = provenance
        try await store.insert(job, secrets: secrets, recording: Self.statePayload(job, message: "queued", time: time))
        try await publish(job)
        try await queue.enqueue(QueueTicket(job, at: time))
        return job
    }

    /// A config that moves an alias once its job succeeds (`deploy:`,
    /// `mlflow.register_alias`) needs an admin, like moving it by hand: the
    /// server makes that move later, for nobody in particular.
    public static func authorise(_ config: JobConfig) throws(YardError) {
        try JobPriority.authorise(config.priority, caller: Caller.current)
        let document = config.document
        if document["deploy"] != nil && document["deploy"] != .null {
            try RegistryControl.authoriseAliasMove(field: "deploy")
        }
        if let alias = document["mlflow"]?["register_alias"]?.stringValue, !alias.isEmpty {
            try RegistryControl.authoriseAliasMove(field: "mlflow.register_alias")
        }
    }

    /// A config whose `train.data` is `dataset:NAME` or `dataset:NAME@3`
    /// comes back pinned to one version (`dataset:NAME@ID`), so the job
    /// trains on the version that was current when it was submitted, on
    /// every attempt. Other configs come back as they are.
    public func pinDataset(_ config: JobConfig) async throws -> (JobConfig, DatasetVersion?) {
        guard DatasetReference.isReference(config.data) else { return (config, nil) }
        let reference = try DatasetReference.parse(config.data)
        let version = try await Self.resolve(reference, in: store)
        return (config.withTrainData(DatasetReference.scheme + version.reference), version)
    }

    /// `model: models:/NAME@ALIAS` (or `@vN`, or the latest) pinned to the
    /// version it names now, with the sha256 the worker checks its weights against.
    public func pinModel(_ model: String) async throws -> ParentModel {
        let reference = try ModelReference.parse(model)
        let versions = try await store.modelVersions(name: reference.name)
        guard !versions.isEmpty else {
            throw YardError(.notFound, field: "model", "model: no registered model \(reference.name); `yard models list` shows them")
        }
        guard let version = reference.pick(from: versions) else {
            throw YardError(.notFound, field: "model", "model: \(reference.missing(among: versions))")
        }
        guard let sha256 = version.sha256 else {
            throw YardError(.conflict, field: "model", "model: \(reference.name) version \(version.version) has no weights hash; register its job again")
        }
        let locations = version.locations ?? [WeightsLocation(kind: .artifact, key: version.source)]
        return ParentModel(name: version.name, version: version.version, requested: model, sha256: sha256, locations: locations)
    }

    /// The version a reference names: the latest, a number, or an id prefix.
    public static func resolve(_ reference: DatasetReference, in store: any JobStore) async throws -> DatasetVersion {
        let versions = try await store.datasetVersions(name: reference.name)
        guard !versions.isEmpty else {
            throw YardError(.notFound, field: "train.data", "train.data: no dataset \(reference.name); `yard datasets add \(reference.name) FOLDER` registers one, `yard datasets list` lists them")
        }
        guard let wanted = reference.version else { return versions.max { $0.number < $1.number }! }
        let matches = versions.filter { Int(wanted) == $0.number || $0.id.hasPrefix(wanted) }
        guard matches.count == 1 else {
            throw YardError(matches.isEmpty ? .notFound : .invalidInput, field: "train.data",
                            "train.data: dataset \(reference.name) has \(matches.isEmpty ? "no" : "several") version \(wanted); `yard datasets show \(reference.name)` lists them")
        }
        return matches[0]
    }

    /// Records a submission that could not be read as a failed job with the
    /// reason (a queue client's bad message is kept, not dropped).
    @discardableResult
    public func reject(taskID: String, source: [String: JSONValue], reason: String) async throws -> Job {
        let time = now()
        let config = JobConfig.unreadable(taskID: taskID, source: source)
        var job = Job(id: taskID, config: config, redacted: Redaction.redact(config.json), createdAt: time)
        // Born failed: it never was queued.
        job.state = .failed
        job.message = LogLine.bounded(reason, limit: 2000)
        job.finishedAt = time
        job.epochs = nil
        try await store.insert(job, secrets: [:], recording: Self.statePayload(job, message: job.message ?? "", time: time))
        return job
    }

    /// Stops a job: a queued one at once, a running one gracefully (its
    /// worker sees `stopping` and signals the engine). A running or stopping
    /// job that no worker holds any more (its attempt ended without settling
    /// it) is stopped at once: there is no engine left to wait for.
    public func stop(_ id: String) async throws -> Job {
        let job = try await store.require(id)
        switch job.state {
        case .queued:
            if try await queue.cancel(id) {
                return try await move(id, to: .stopped, message: "stopped before it started")
            }
            // A worker has it but has not reported it running yet.
            return try await requestStop(job)
        case .running, .stopping:
            if try await queue.claimant(of: id) == nil {
                return try await move(id, to: .stopped, message: "stopped; no worker was running it any more (`yard resume \(id)` continues it)")
            }
            return try await requestStop(job)
        case .succeeded, .failed, .stopped, .pruned:
            throw YardError(.conflict, field: "state", "job \(id) already ended (\(job.state.rawValue)); nothing to stop")
        }
    }

    /// Stops a sweep's trial because its pruner said so: the reason is
    /// recorded first, so the stop it causes (through the ordinary stop
    /// path, on any worker) ends the job `pruned` with it.
    @discardableResult
    public func prune(_ id: String, reason: String) async throws -> Job {
        let job = try await store.update(id) { job in
            guard !job.state.isTerminal else { return }
            job.pruning = reason
        }
        guard !job.state.isTerminal else { return job }
        return try await stop(id)
    }

    /// Moves the job to `stopping` (once) and asks its worker to stop: the
    /// embedded worker reads the state, a remote one the board's flag.
    private func requestStop(_ job: Job) async throws -> Job {
        let stopping = job.state == .stopping ? job : try await move(job.id, to: .stopping, message: "stop requested")
        try await board?.flagStop(job.id)
        return stopping
    }

    /// Queues a stopped or failed job again; its worker resumes from the
    /// last checkpoint.
    public func resume(_ id: String) async throws -> Job {
        let job = try await store.require(id)
        guard job.state == .stopped || job.state == .failed else {
            throw YardError(.conflict, field: "state", "job \(id) is \(job.state.rawValue); only stopped or failed jobs can be resumed")
        }
        let queued = try await move(id, to: .queued, message: "resume requested")
        try await publish(queued)
        try await queue.enqueue(QueueTicket(queued, at: now()))
        return queued
    }

    /// At start-up of the process that owns the embedded queue: claims of
    /// the previous process are released, and jobs it was running are queued
    /// again to resume from their checkpoint, unless they have now crashed
    /// `max_attempts` times: those fail with their last log lines, so a job
    /// that kills its host is not retried forever. Returns the ids requeued.
    /// With workers elsewhere, the key that seals their jobs' secrets is
    /// announced first.
    @discardableResult
    public func recover() async throws -> [String] {
        // Workers on other machines check their key against the server's when they start.
        try await board?.announceKey()
        if queue.lease != nil { return try await recoverShared() }
        _ = try await queue.releaseAllClaims()
        var requeued: [String] = []
        for job in try await store.jobs(in: [.running, .stopping, .queued]) {
            switch job.state {
            case .running:
                let crashes = (job.crashes ?? 0) + 1
                let limit = job.config["max_attempts"]?.intValue ?? JobConfig.defaultMaxAttempts
                if crashes >= limit {
                    let tail = (try? await store.logs(of: job.id, last: 5).map(\.line)) ?? []
                    let last = tail.isEmpty ? "no log lines" : "last log lines: " + tail.map { String($0.prefix(300)) }.joined(separator: " | ")
                    _ = try await move(job.id, to: .failed, message: "crashed \(crashes) times (max_attempts: \(limit)); \(last)") {
                        $0.crashes = crashes
                    }
                    try await queue.complete(job.id)
                    continue
                }
                _ = try await move(job.id, to: .queued, message: "interrupted (crash \(crashes) of at most \(limit)); will resume from its last checkpoint") {
                    $0.crashes = crashes
                }
                requeued.append(job.id)
            case .stopping:
                _ = try await move(job.id, to: .stopped, message: "stopped (the service ended while stopping)")
                _ = try await queue.cancel(job.id)
                try await queue.complete(job.id)
                continue
            default: break
            }
            try await queue.enqueue(QueueTicket(job, at: now()))
        }
        return requeued
    }

    /// At start-up of a server whose workers live elsewhere (a queue with
    /// leases): running jobs belong to their workers (a dead worker's job
    /// is reclaimed when its lease runs out; their reports say how each
    /// ended), so none is touched. Queued jobs are published and queued
    /// again (a no-op for those still in the queue, a repair for any the
    /// queue lost); a stop asked for while no worker held the job ends it.
    /// Returns the ids queued again.
    private func recoverShared() async throws -> [String] {
        var queued: [String] = []
        for job in try await store.jobs(in: [.stopping, .queued]) {
            if job.state == .stopping {
                if try await queue.claimant(of: job.id) == nil {
                    _ = try await queue.cancel(job.id)
                    _ = try await move(job.id, to: .stopped, message: "stopped (no worker held it when the server started)")
                } else {
                    try await board?.flagStop(job.id)
                }
                continue
            }
            try await publish(job)
            try await queue.enqueue(QueueTicket(job, at: now()))
            queued.append(job.id)
        }
        return queued
    }

    /// Changes a job's state through the state machine and records it.
    @discardableResult
    public func move(_ id: String, to state: JobState, message: String? = nil, at when: Date? = nil,
                     change: @escaping @Sendable (inout Job) -> Void = { _ in }) async throws -> Job {
        let time = when ?? now()
        let (job, _) = try await store.update(id, recording: "state") { job in
            try Self.transition(&job, to: state, message: message, at: time, change: change)
        }
        return job
    }

    /// One transition through the state machine and the `state` event that
    /// records it (its payload), stored together (local calls and workers' reports alike).
    static func transition(_ job: inout Job, to state: JobState, message: String?, at time: Date,
                           change: (inout Job) -> Void = { _ in }) throws -> JSONValue {
        try job.move(to: state, message: message, at: time)
        change(&job)
        return statePayload(job, message: message, time: time)
    }

    /// `{state, message, time}`; `time` in epoch seconds, as the engine's events carry it.
    static func statePayload(_ job: Job, message: String?, time: Date) -> JSONValue {
        var payload: [String: JSONValue] = ["state": .string(job.state.rawValue), "time": .double((time.timeIntervalSince1970 * 1000).rounded() / 1000)]
        if let message { payload["message"] = .string(message) }
        return .object(payload)
    }
}
