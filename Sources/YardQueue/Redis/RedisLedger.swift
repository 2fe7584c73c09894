import Foundation
import Logging
import Synchronization
import YardDomain
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
        /// The job's secrets as the server sealed them (nil: it has none),
        /// read with the record when the attempt began.
        var sealed: String?
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
        // The record and the secrets in one round trip: the attempt needs Redis for neither again.
        let reply = try await redis.send(["HMGET", keys.job(claim.jobID), "record", "secrets"]).array ?? []
        guard let text = reply.first?.string else {
            throw YardError(.notFound, field: "id", "job \(claim.jobID) is in the queue but the server published no record of it")
        }
        var job = try JSONCoding.decode(Job.self, text)
        // The record was published before earlier attempts ran: this one is the
        // claim's (an attempt that takes a job over resumes from its checkpoint).
        job.attempts = max(job.attempts, claim.attempt - 1)
        let sealed = reply.count > 1 ? reply[1].string : nil
        attempts.withLock { $0[claim.jobID] = Attempt(claim: claim, job: job, seq: 0, sealed: sealed) }
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
    /// `stopping` once the server has flagged a stop (while Redis cannot say,
    /// the copy as it is: the stop watcher asks again); after it ended here,
    /// its last copy; else the one the server published.
    public func job(_ id: String) async throws -> Job? {
        guard let local = attempts.withLock({ $0[id]?.job }) else {
            if let last = ended.withLock({ $0.jobs[id]?.job }) { return last }
            return try await published(id)
        }
        if local.state == .running, (try? await redis.send(["HGET", keys.job(id), "stop"]))?.string == "1" {
            return attempts.withLock { attempts -> Job? in
                if attempts[id]?.job.state == .running { attempts[id]?.job.state = .stopping }
                return attempts[id]?.job
            }
        }
        return local
    }

    /// This worker's copy while it runs the job or after it ended here (no
    /// round trip); else the published record.
    public func current(_ id: String) async throws -> Job? {
        if let local = attempts.withLock({ $0[id]?.job }) ?? ended.withLock({ $0.jobs[id]?.job }) { return local }
        return try await published(id)
    }

    /// The job's secrets: none without a round trip while this worker runs
    /// it. A job without secrets needs no key; one sealed with a key this
    /// worker lacks is refused with both key ids.
    public func secrets(of id: String) async throws -> [String: JSONValue] {
        let held = attempts.withLock({ $0[id].map { $0.sealed } }) ?? ended.withLock({ $0.jobs[id].map { $0.sealed } })
        let sealed: String?
        if let held { sealed = held } else { sealed = try await redis.send(["HGET", keys.job(id), "secrets"]).string }
        guard let sealed else { return [:] }
        if let keyID = SecretBox.keyID(of: sealed), !box.keys.contains(where: { $0.id == keyID }) {
            throw YardError(.unavailable, field: "secret key",
                            "job \(id)'s secrets were sealed with key \(keyID), which this worker does not have (its keys: \(box.keyIDs)); give it a copy of the server's DATA/secret.key (--secret-key-file or YARD_SECRET_KEY)")
        }
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

extension RedisKeys {
    /// The id of the key the server seals job secrets with (`SecretBox.Key.id`).
    public var secretKey: String { "\(prefix):secret-key" }
}

extension SecretBox {
    /// The id of the key a sealed value names (nil: not a sealed value).
    package static func keyID(of sealed: String) -> String? {
        guard isSealed(sealed) else { return nil }
        return sealed.dropFirst(prefix.count).split(separator: ":", maxSplits: 1).first.map(String.init)
    }

    /// The keyring's ids, newest first, comma-separated.
    package var keyIDs: String { keys.map(\.id).joined(separator: ", ") }
}
