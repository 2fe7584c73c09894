import Foundation
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
public final class RedisLedger: JobLedger {
    let redis: RedisClient
    let keys: RedisKeys
    let box: SecretBox
    /// The GPUs' last stats (the worker's heartbeat reads them), for wyolo's progress hash.
    let gpus: @Sendable () -> [GPUStats]
    private let attempts = Mutex<[String: Attempt]>([:])

    struct Attempt {
        var claim: QueueClaim
        var job: Job
        var seq: Int
    }

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), box: SecretBox, gpus: @escaping @Sendable () -> [GPUStats] = { [] }) {
        self.redis = redis
        self.keys = keys
        self.box = box
        self.gpus = gpus
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
        attempts.withLock { _ = $0.removeValue(forKey: jobID) }
    }

    /// The job's record; while an attempt runs, this worker's copy, moved to
    /// `stopping` once the server has flagged a stop.
    public func job(_ id: String) async throws -> Job? {
        guard let local = attempts.withLock({ $0[id]?.job }) else { return try await published(id) }
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

    /// Applies the change to this worker's copy and sends the report. The
    /// copy changes only once the report is on the stream.
    @discardableResult
    private func record(_ id: String, _ report: JobReport, _ change: (inout Job) throws -> Void) async throws -> Job {
        guard let current = attempts.withLock({ $0[id] }) else {
            throw YardError(.conflict, field: "id", "job \(id): no attempt of this worker is running it")
        }
        var job = current.job
        try change(&job)
        let envelope = ReportEnvelope(jobID: id, attempt: current.claim.attempt, seq: current.seq + 1, report: report)
        let body = try JSONCoding.string(envelope)
        // wyolo's keys ride along in the same write; only the report must succeed.
        let mirror = Wyolo.commands(for: report, job: job, gpus: gpus(), now: Date())
        try await send([["XADD", keys.reports, "*", "job", id, "attempt", String(envelope.attempt),
                         "seq", String(envelope.seq), "body", body]] + mirror)
        attempts.withLock { attempts in
            attempts[id]?.job = job
            attempts[id]?.seq = envelope.seq
        }
        return job
    }

    /// Waits between tries while Redis is unreachable (about 30 s in all).
    static let outageWaits: [Duration] = [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4),
                                          .seconds(8), .seconds(8), .seconds(8)]

    /// Sends a report (its first command), retried while Redis is
    /// unreachable: a restart or a short outage must not fail the training.
    /// A report sent twice (the reply was lost) is applied once: the server
    /// skips a sequence number it has.
    private func send(_ commands: [[String]]) async throws {
        var waits = Self.outageWaits[...]
        while true {
            var pause: Duration?
            do {
                let replies = try await redis.pipeline(commands)
                if case .error(let text) = replies[0] { throw RedisError.server(text) }
                return
            } catch {
                guard (error as? RedisError)?.isConnectionLoss == true, let next = waits.popFirst() else { throw error }
                pause = next
            }
            if let pause { try await Task.sleep(for: pause) }
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
