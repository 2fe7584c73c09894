import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardQueue
import YardRedis
import YardStore

/// The server's side of workers over Redis: reads the reports stream in its
/// own consumer group and applies each report to the store, in order,
/// acknowledging it only once the store has it. Applying is idempotent: a
/// report of an attempt older than the job's current one is dropped (the
/// worker lost its claim), and one already applied (delivered again after
/// a restart) is skipped. The server may be down while workers train: its
/// group keeps its place, and on return every report is applied once.
public struct ReportConsumer: Service {
    public static let group = "server"
    let redis: RedisClient
    let keys: RedisKeys
    let control: JobControl
    let consumer: String
    let logger: Logger
    let batch: Int
    /// Runs once, after the first drain (the server's start-up recovery);
    /// retried with the drain while it fails.
    let startup: (@Sendable () async throws -> Void)?

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), control: JobControl, consumer: String = "server", batch: Int = 200,
                logger: Logger, startup: (@Sendable () async throws -> Void)? = nil) {
        self.redis = redis
        self.keys = keys
        self.control = control
        self.consumer = consumer
        self.batch = batch
        self.logger = logger
        self.startup = startup
    }

    var store: any JobStore { control.store }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var started = startup == nil
            await repeatWithBackoff("applying worker reports", logger: logger) {
                _ = try await drain(block: .seconds(1))
                // Once what came while the server was down is applied (it
                // says how those jobs ended), the start-up step runs, once.
                if !started, let startup {
                    try await startup()
                    started = true
                }
            }
        }
    }

    /// Applies what is waiting: first this consumer's reports that were
    /// read but not acknowledged (a restart), then new ones, waiting up to
    /// `block` for them. Returns how many were applied or dropped.
    @discardableResult
    public func drain(block: Duration? = nil) async throws -> Int {
        var handled = 0
        for start in ["0", ">"] {
            while true {
                var command = ["XREADGROUP", "GROUP", Self.group, consumer, "COUNT", String(batch)]
                if start == ">", let block {
                    command += ["BLOCK", String(max(1, block.redisMilliseconds))]
                }
                command += ["STREAMS", keys.reports, start]
                let reply = try await read(command, timeout: (block ?? .zero) + redis.configuration.commandTimeout)
                let entries = reply.array?.first?.array?[1].array ?? []
                if entries.isEmpty { break }
                var done: [String] = []
                var writes: [JobWrite] = []
                for entry in entries {
                    guard let fields = entry.array, fields.count == 2, let id = fields[0].string else { continue }
                    if let envelope = envelope(entryFields: fields[1].array ?? []) {
                        writes.append(write(envelope))
                    }
                    done.append(id)
                }
                // One transaction for the batch; acknowledged once it committed.
                try await apply(writes)
                try await redis.send(["XACK", keys.reports, Self.group] + done)
                try await redis.send(["XDEL", keys.reports] + done)
                handled += done.count
                if start == ">" || entries.count < batch { break }
            }
        }
        return handled
    }

    /// Reads the reports stream; the group is made on first use (or after a
    /// Redis that lost its data), once, here.
    private func read(_ command: [String], timeout: Duration) async throws(RedisError) -> RESPValue {
        do {
            return try await redis.send(command, timeout: timeout)
        } catch where error.serverCode == "NOGROUP" {
            _ = try? await redis.send(["XGROUP", "CREATE", keys.reports, Self.group, "0", "MKSTREAM"])
            return try await redis.send(command, timeout: timeout)
        }
    }

    /// The report in one stream entry. A malformed entry is logged and
    /// dropped (it would block the stream forever).
    func envelope(entryFields: [RESPValue]) -> ReportEnvelope? {
        var body: String?
        var index = 0
        while index + 1 < entryFields.count {
            if entryFields[index].string == "body" { body = entryFields[index + 1].string }
            index += 2
        }
        guard let body, let envelope = try? JSONCoding.decode(ReportEnvelope.self, body) else {
            logger.error("dropping a worker report that is not one: \(body?.prefix(200) ?? "no body")")
            return nil
        }
        return envelope
    }

    public func apply(_ envelope: ReportEnvelope) async throws {
        try await apply([write(envelope)])
    }

    /// Applies the writes in one transaction; a store failure is thrown (the
    /// entries stay unacknowledged and are applied on the next try).
    private func apply(_ writes: [JobWrite]) async throws {
        for (write, result) in zip(writes, try await store.apply(writes)) {
            switch result {
            case .missing: logger.warning("dropping a report for job \(write.id), which this server does not know")
            case .failed(let error): logger.warning("job \(write.id): a worker report could not be applied: \(error)")
            case .applied, .skipped: break
            }
        }
    }

    /// The store write of one report. Checked inside the write's
    /// transaction, with the mark it sets: a report of an attempt older than
    /// the job's current one is dropped, one already applied is skipped.
    func write(_ envelope: ReportEnvelope) -> JobWrite {
        let logger = self.logger
        return JobWrite(id: envelope.jobID) { job in
            let id = envelope.jobID
            let claim = job.claim ?? 0
            if envelope.report.isSide {
                // Outside the sequence: last one wins, unless a newer attempt
                // holds the job (attempt 0: the worker no longer knew which).
                guard envelope.attempt == 0 || envelope.attempt >= claim, case .tracking(let status, let runID, let error) = envelope.report else { return nil }
                guard job.tracking != status || job.trackingError != error || (runID != nil && job.mlflowRunID != runID) else { return nil }
                job.tracking = status
                job.trackingError = error
                if let runID { job.mlflowRunID = runID }
                return []
            }
            if envelope.attempt < claim {
                logger.notice("job \(id): dropping a report of attempt \(envelope.attempt); attempt \(claim) holds the job now")
                return nil
            }
            if envelope.attempt == claim, envelope.seq <= job.reportSeq ?? 0 { return nil }
            let takeover = envelope.attempt > claim
            job.claim = envelope.attempt
            job.reportSeq = envelope.seq
            switch envelope.report {
            case .move(.running, let message, let change, let time) where takeover && job.state.isActive:
                // A newer attempt took the job over from a worker that stopped
                // heartbeating: the job stays running, now under this attempt.
                job.state = .running
                job.finishedAt = nil
                if let message { job.message = message }
                change.apply(to: &job)
                let note = "\(message ?? "started") (attempt \(envelope.attempt) took over)"
                return [.event(type: "state", payload: JobControl.statePayload(job, message: note, time: time))]
            case .move(let state, let message, let change, let time):
                var moved = job
                do { try moved.move(to: state, message: message, at: time) } catch {
                    // The server moved the job meanwhile (stopped with no worker
                    // left): the worker's view loses, the report is consumed.
                    logger.warning("job \(id): a worker report could not be applied: \(error)")
                    return []
                }
                change.apply(to: &moved)
                job = moved
                return [.event(type: "state", payload: JobControl.statePayload(job, message: message, time: time))]
            case .update(let change):
                change.apply(to: &job)
                return []
            case .event(let type, let payload): return [.event(type: type, payload: payload)]
            case .logs(let lines): return [.logs(lines)]
            case .epoch(let record): return [.epoch(record)]
            case .artifact(let record): return [.artifact(record)]
            case .tracking: return nil
            }
        }
    }
}
