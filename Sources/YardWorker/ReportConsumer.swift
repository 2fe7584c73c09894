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
                for entry in entries {
                    guard let fields = entry.array, fields.count == 2, let id = fields[0].string else { continue }
                    try await apply(entryFields: fields[1].array ?? [])
                    done.append(id)
                }
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

    /// Applies one stream entry. A malformed entry is logged and dropped
    /// (it would block the stream forever); a store failure is thrown, so
    /// the entry stays unacknowledged and is applied on the next try.
    func apply(entryFields: [RESPValue]) async throws {
        var body: String?
        var index = 0
        while index + 1 < entryFields.count {
            if entryFields[index].string == "body" { body = entryFields[index + 1].string }
            index += 2
        }
        guard let body, let envelope = try? JSONCoding.decode(ReportEnvelope.self, body) else {
            logger.error("dropping a worker report that is not one: \(body?.prefix(200) ?? "no body")")
            return
        }
        try await apply(envelope)
    }

    public func apply(_ envelope: ReportEnvelope) async throws {
        let id = envelope.jobID
        guard let job = try await store.job(id) else {
            logger.warning("dropping a report for job \(id), which this server does not know")
            return
        }
        let claim = job.claim ?? 0
        if envelope.attempt < claim {
            logger.notice("job \(id): dropping a report of attempt \(envelope.attempt); attempt \(claim) holds the job now")
            return
        }
        if envelope.attempt == claim, envelope.seq <= job.reportSeq ?? 0 { return }
        let mark: @Sendable (inout Job) -> Void = { job in
            job.claim = envelope.attempt
            job.reportSeq = envelope.seq
        }
        switch envelope.report {
        case .move(.running, let message, let change, let time) where envelope.attempt > claim && job.state.isActive:
            // A newer attempt took the job over from a worker that stopped
            // heartbeating: the job stays running, now under this attempt.
            try await store.update(id, recording: "state") { job in
                job.state = .running
                job.finishedAt = nil
                if let message { job.message = message }
                change.apply(to: &job)
                mark(&job)
                return JobControl.statePayload(job, message: "\(message ?? "started") (attempt \(envelope.attempt) took over)", time: time)
            }
            return
        case .move(let state, let message, let change, let time):
            do {
                try await control.move(id, to: state, message: message, at: time) { job in
                    change.apply(to: &job)
                    mark(&job)
                }
                return
            } catch let error as YardError where error.code == .conflict {
                // The server moved the job meanwhile (stopped with no worker left):
                // the worker's view loses, the report is consumed.
                logger.warning("job \(id): a worker report could not be applied: \(error)")
                try await store.update(id, mark)
            }
        case .update(let change):
            try await store.update(id) { job in
                change.apply(to: &job)
                mark(&job)
            }
        case .event(let type, let payload):
            try await keep(.event(type: type, payload: payload))
        case .logs(let lines):
            try await keep(.logs(lines))
        case .epoch(let record):
            try await keep(.epoch(record))
        case .artifact(let record):
            try await keep(.artifact(record))
        }

        /// The record and the mark in one transaction, checked again inside
        /// it: a crash between the two can neither lose the mark (a resend
        /// would store the record twice) nor the record.
        func keep(_ record: JobRecord) async throws {
            try await store.update(id, storing: record) { job in
                let claim = job.claim ?? 0
                guard envelope.attempt > claim || (envelope.attempt == claim && envelope.seq > job.reportSeq ?? 0) else { return false }
                mark(&job)
                return true
            }
        }
    }
}
