import Foundation
import YardDomain
import YardStore
import YardRedis

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

    /// Publishes the job as it is now, with its secrets sealed (a job
    /// without secrets has none: a worker needs no key to run it), and
    /// clears a stop flag left from an earlier attempt.
    public func publish(_ job: Job, secrets: [String: JSONValue]) async throws {
        let record = try JSONCoding.string(job)
        var commands: [[String]]
        if secrets.isEmpty {
            commands = [["HSET", keys.job(job.id), "record", record], ["HDEL", keys.job(job.id), "stop", "secrets"]]
        } else {
            commands = [["HSET", keys.job(job.id), "record", record, "secrets", box.seal(try JSONCoding.string(secrets))],
                        ["HDEL", keys.job(job.id), "stop"]]
        }
        commands.append(announcement)
        let replies = try await redis.pipeline(commands)
        for reply in replies { if case .error(let text) = reply { throw RedisError.server(text) } }
    }

    /// Says which key seals job secrets (`yard:secret-key`): a worker
    /// started with another key refuses to start, naming both.
    public func announceKey() async throws {
        try await redis.send(announcement)
    }

    private var announcement: [String] { ["SET", keys.secretKey, box.keys[0].id] }

    /// Asks the worker running the job to stop (it checks every half second).
    public func flagStop(_ id: String) async throws {
        try await redis.send(["HSET", keys.job(id), "stop", "1"])
    }
}
