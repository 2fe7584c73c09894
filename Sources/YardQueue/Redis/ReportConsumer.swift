import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardStore
import YardRedis

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
    let sink: any ReportSink
    let consumer: String
    let logger: Logger
    let batch: Int
    /// Runs once, after the first drain (the server's start-up recovery);
    /// retried with the drain while it fails.
    let startup: (@Sendable () async throws -> Void)?

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), sink: any ReportSink, consumer: String = "server", batch: Int = 200,
                logger: Logger, startup: (@Sendable () async throws -> Void)? = nil) {
        self.redis = redis
        self.keys = keys
        self.sink = sink
        self.consumer = consumer
        self.batch = batch
        self.logger = logger
        self.startup = startup
    }

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
                var reports: [ReportEnvelope] = []
                for entry in entries {
                    guard let fields = entry.array, fields.count == 2, let id = fields[0].string else { continue }
                    if let envelope = envelope(entryFields: fields[1].array ?? []) {
                        reports.append(envelope)
                    }
                    done.append(id)
                }
                // One transaction for the batch; acknowledged once it committed.
                try await sink.apply(reports)
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
}
