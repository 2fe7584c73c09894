import Foundation
import Logging
import Synchronization
import YardDomain
import YardQueue
import YardRedis
import YardStore

/// The ledger of a worker on another machine: it reads the job the server
/// published in Redis and sends every change as a `ReportEnvelope` on the
/// reports stream. While it runs an attempt it keeps the job's record
/// itself (it is the only writer until the attempt ends), so reading back
/// its own changes needs no round trip; the stop flag is read from Redis.
/// Reports leave through an outbox: recording never waits for Redis, and
/// `flush` waits until they are there (before a checkpoint is written and
/// before the claim ends).
public final class RedisLedger: JobLedger {
    let redis: RedisClient
    let keys: RedisKeys
    let box: SecretBox
    /// The GPUs' last stats (the worker's heartbeat reads them), for wyolo's progress hash.
    let gpus: @Sendable () -> [GPUStats]
    let outbox: ReportOutbox
    /// How long `flush` waits for an unreachable Redis before it gives up
    /// (the caller retries; the reports stay queued).
    let flushTimeout: Duration
    private let attempts = Mutex<[String: Attempt]>([:])
    /// The last record and attempt of jobs whose attempt ended here, for
    /// what the tracking spool still reports about them (the newest 256).
    private let ended = Mutex<(jobs: [String: Attempt], order: [String], tracking: [String: JobReport])>(([:], [], [:]))

    struct Attempt {
        var claim: QueueClaim
        var job: Job
        var seq: Int
    }

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), box: SecretBox, flushTimeout: Duration = .seconds(30),
                logger: Logger = Logger(label: "trainyard.reports"), gpus: @escaping @Sendable () -> [GPUStats] = { [] }) {
        self.redis = redis
        self.keys = keys
        self.box = box
        self.gpus = gpus
        self.flushTimeout = flushTimeout
        self.outbox = ReportOutbox(redis: redis, logger: logger)
    }

    /// Reports recorded and not yet in Redis.
    public var waitingReports: Int { outbox.waiting }

    public func flush(_ jobID: String) async throws {
        try await outbox.flush(timeout: flushTimeout)
    }

    public func begin(_ claim: QueueClaim) async throws {
        guard var job = try await published(claim.jobID) else {
            throw YardError(.notFound, field: "id", "job \(claim.jobID) is in the queue but the server published no record of it")
        }
        // The record was published before earlier attempts ran: this one is the
        // claim's (an attempt that takes a job over resumes from its checkpoint).
        job.attempts = max(job.attempts, claim.attempt - 1)
        attempts.withLock { $0[claim.jobID] = Attempt(claim: claim, job: job, seq: 0) }
    }

    public func end(_ jobID: String) async {
        guard let last = attempts.withLock({ $0.removeValue(forKey: jobID) }) else { return }
        ended.withLock { ended in
            if ended.jobs.updateValue(last, forKey: jobID) == nil { ended.order.append(jobID) }
            while ended.order.count > 256 {
                let old = ended.order.removeFirst()
                ended.jobs[old] = nil
                ended.tracking[old] = nil
            }
        }
    }

    /// Sends a side report (outside the attempt's sequence): the tracking
    /// state or a registered model version, which the spool learns when it
    /// reaches MLflow, often after the attempt ended. The same tracking
    /// state twice is sent once.
    public func note(_ jobID: String, _ report: JobReport) {
        let attempt = attempts.withLock { $0[jobID]?.claim.attempt } ?? ended.withLock { $0.jobs[jobID]?.claim.attempt } ?? 0
        if case .tracking = report {
            let repeated = ended.withLock { ended -> Bool in
                if ended.tracking[jobID] == report { return true }
                ended.tracking[jobID] = report
                return false
            }
            if repeated { return }
        }
        guard let body = try? JSONCoding.string(ReportEnvelope(jobID: jobID, attempt: attempt, seq: 0, report: report)) else { return }
        outbox.add([["XADD", keys.reports, "*", "job", jobID, "attempt", String(attempt), "seq", "0", "body", body]])
    }

    /// The job's record; while an attempt runs, this worker's copy, moved to
    /// `stopping` once the server has flagged a stop; after it ended here,
    /// its last copy; else the one the server published.
    public func job(_ id: String) async throws -> Job? {
        guard let local = attempts.withLock({ $0[id]?.job }) else {
            if let last = ended.withLock({ $0.jobs[id]?.job }) { return last }
            return try await published(id)
        }
        if local.state == .running, try await redis.send(["HGET", keys.job(id), "stop"]).string == "1" {
            return attempts.withLock { attempts -> Job? in
                if attempts[id]?.job.state == .running { attempts[id]?.job.state = .stopping }
                return attempts[id]?.job
            }
        }
        return local
    }

    public func secrets(of id: String) async throws -> [String: JSONValue] {
        guard let sealed = try await redis.send(["HGET", keys.job(id), "secrets"]).string else { return [:] }
        let text = try box.openText(sealed)
        return try JSONCoding.decode([String: JSONValue].self, text)
    }

    @discardableResult
    public func move(_ id: String, to state: JobState, message: String?, change: JobChange) async throws -> Job {
        let time = Date()
        return try await record(id, .move(state: state, message: message, change: change, time: time)) { job in
            try job.move(to: state, message: message, at: time)
            change.apply(to: &job)
        }
    }

    public func update(_ id: String, _ change: JobChange) async throws -> Job {
        try await record(id, .update(change)) { change.apply(to: &$0) }
    }

    public func appendEvent(jobID: String, type: String, payload: JSONValue) async throws {
        try await record(jobID, .event(type: type, payload: payload)) { _ in }
    }

    public func appendLog(jobID: String, lines: [String]) async throws {
        guard !lines.isEmpty else { return }
        try await record(jobID, .logs(lines)) { _ in }
    }

    public func recordEpoch(_ epoch: EpochRecord) async throws {
        try await record(epoch.jobID, .epoch(epoch)) { _ in }
    }

    public func recordArtifact(_ artifact: ArtifactRecord) async throws {
        try await record(artifact.jobID, .artifact(artifact)) { _ in }
    }

    /// Applies the change to this worker's copy and queues the report. The
    /// sequence number, the copy and the queue change under one lock, so
    /// reports reach the stream in the order of their numbers.
    @discardableResult
    private func record(_ id: String, _ report: JobReport, _ change: (inout Job) throws -> Void) async throws -> Job {
        await outbox.makeRoom()
        return try attempts.withLock { attempts -> Job in
            guard let current = attempts[id] else {
                throw YardError(.conflict, field: "id", "job \(id): no attempt of this worker is running it")
            }
            var job = current.job
            try change(&job)
            let envelope = ReportEnvelope(jobID: id, attempt: current.claim.attempt, seq: current.seq + 1, report: report)
            let body = try JSONCoding.string(envelope)
            // wyolo's keys ride along in the same round trip; only the report must succeed.
            let mirror = Wyolo.commands(for: report, job: job, gpus: gpus(), now: Date())
            outbox.add([["XADD", keys.reports, "*", "job", id, "attempt", String(envelope.attempt),
                         "seq", String(envelope.seq), "body", body]] + mirror)
            attempts[id]?.job = job
            attempts[id]?.seq = envelope.seq
            return job
        }
    }

    /// The record the server published.
    func published(_ id: String) async throws -> Job? {
        guard let text = try await redis.send(["HGET", keys.job(id), "record"]).string else { return nil }
        return try JSONCoding.decode(Job.self, text)
    }
}

/// The server's side of the job records in Redis: what it publishes for
/// workers on other machines to read (the job, its sealed secrets) and the
/// stop flag they watch.
public struct RedisJobBoard: JobBoard {
    let redis: RedisClient
    let keys: RedisKeys
    let box: SecretBox

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), box: SecretBox) {
        self.redis = redis
        self.keys = keys
        self.box = box
    }

    /// Publishes the job as it is now, with its secrets sealed, and clears
    /// a stop flag left from an earlier attempt.
    public func publish(_ job: Job, secrets: [String: JSONValue]) async throws {
        let record = try JSONCoding.string(job)
        let sealed = box.seal(try JSONCoding.string(secrets))
        _ = try await redis.pipeline([["HSET", keys.job(job.id), "record", record, "secrets", sealed], ["HDEL", keys.job(job.id), "stop"]])
    }

    /// Asks the worker running the job to stop (it checks every half second).
    public func flagStop(_ id: String) async throws {
        try await redis.send(["HSET", keys.job(id), "stop", "1"])
    }
}
