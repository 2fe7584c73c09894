import Foundation
import YardDomain
import YardStore

/// The worker seam: everything a worker reads about a job (its record, its
/// secrets, whether a stop was asked for) and everything it tells the
/// system (state changes, field changes, events, log lines, epochs, kept
/// files). Drivers: `StoreLedger` (the embedded default: straight into the
/// server's store) and, for workers on other machines, one over Redis.
/// Changes are data (`JobChange`), so every driver applies them the same way.
public protocol JobLedger: RunRecords, JobSecrets {
    /// The job's record (config with secrets masked); nil when it is gone.
    func job(_ id: String) async throws -> Job?
    /// The record as this worker last wrote it, without asking for news (a
    /// stop request): for a remote worker running the job, no round trip,
    /// so what it records at the end of an attempt never waits for Redis.
    func current(_ id: String) async throws -> Job?
    /// Moves the job through the state machine and records the `state` event.
    @discardableResult
    func move(_ id: String, to state: JobState, message: String?, change: JobChange) async throws -> Job
    /// Changes recorded fields of the job.
    @discardableResult
    func update(_ id: String, _ change: JobChange) async throws -> Job
    func appendEvent(jobID: String, type: String, payload: JSONValue) async throws
    func appendLog(jobID: String, lines: [String]) async throws
    /// The worker starts an attempt at the job (its queue claim): what it
    /// records from now on belongs to that attempt.
    func begin(_ claim: QueueClaim) async throws
    /// The attempt has been settled; the ledger forgets it.
    func end(_ jobID: String) async
    /// Returns the job once a stop was asked for it (it is `stopping`), or
    /// nil when the task is cancelled first. The embedded ledger follows
    /// the event log; a ledger with no log to follow (workers over Redis:
    /// the server's stop flag) looks every `tick` on `clock`.
    func stopRequested(_ id: String, tick: Duration, clock: any Clock<Duration>) async -> Job?
    /// Returns once what was recorded about the job is where the server
    /// reads it (before a checkpoint is written, before the claim ends);
    /// throws when that cannot happen soon.
    func flush(_ jobID: String) async throws
}

/// The server's side of the seam when workers run elsewhere: what it
/// decided that they must read (the job and its secrets before it is
/// queued, a stop request). Driver: `RedisJobBoard`. The embedded default
/// has none: its workers read the store.
public protocol JobBoard: Sendable {
    /// Makes the job, as it is now, readable by workers (secrets sealed) and
    /// clears a stop request left from an earlier attempt.
    func publish(_ job: Job, secrets: [String: JSONValue]) async throws
    /// Asks the worker running the job to stop.
    func flagStop(_ id: String) async throws
    /// Says which key seals the secrets it publishes, so a worker checks its
    /// own key when it starts (the server's start-up).
    func announceKey() async throws
}

extension JobBoard {
    public func announceKey() async throws {}
}

extension JobLedger {
    public func begin(_ claim: QueueClaim) async throws {}
    public func end(_ jobID: String) async {}
    public func flush(_ jobID: String) async throws {}
    public func current(_ id: String) async throws -> Job? { try await job(id) }

    public func stopRequested(_ id: String, tick: Duration, clock: any Clock<Duration>) async -> Job? {
        while !Task.isCancelled {
            if let job = (try? await job(id)) ?? nil, job.state == .stopping { return job }
            do { try await clock.sleep(for: tick) } catch { return nil }
        }
        return nil
    }

    @discardableResult
    public func move(_ id: String, to state: JobState, message: String? = nil) async throws -> Job {
        try await move(id, to: state, message: message, change: JobChange())
    }

    public func require(_ id: String) async throws -> Job {
        guard let job = try await job(id) else { throw YardError(.notFound, field: "id", "no job \(id)") }
        return job
    }

    /// `current`, or notFound.
    public func requireCurrent(_ id: String) async throws -> Job {
        guard let job = try await current(id) else { throw YardError(.notFound, field: "id", "no job \(id)") }
        return job
    }
}

/// Where the server's side of the Redis seam hands what workers and queue
/// clients said to the job layer (`JobControl` in YardJobs): the drivers
/// here read Redis and acknowledge; the job layer decides what changes.
public protocol ReportSink: Sendable {
    /// Applies workers' reports, in order, in one transaction; throws when
    /// the store could not take them (the reports stay unacknowledged).
    func apply(_ reports: [ReportEnvelope]) async throws
}

/// Where a queue client's job message becomes a job (the wyolo bridge).
public protocol JobIntake: Sendable {
    /// Whether a job with this id is stored (the message was handled).
    func exists(_ id: String) async throws -> Bool
    /// Stores and queues a validated config.
    func submit(_ config: JobConfig) async throws -> Job
    /// Stores a message that could not be read as a failed job with the reason.
    func reject(taskID: String, source: [String: JSONValue], reason: String) async throws
}
