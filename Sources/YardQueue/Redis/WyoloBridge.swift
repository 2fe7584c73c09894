import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import YardDomain
import YardRedis
import YardStore

/// Takes wyolo clients' job messages (seed 001) from their key, unchanged,
/// in both forms found in the wild: entries of a stream (`XADD TOPIC *
/// config_path P trial_number N`) and JSON pushed on a list (`RPUSH TOPIC
/// '{"task_id": .., "config_path": ..}'`, JSON-encoded once or twice). Each
/// becomes a Trainyard job (the config read from `config_path`, which must
/// lie in `configRoot`), or a failed job with the reason when it cannot.
///
/// The client's key never holds the only copy: a stream entry stays
/// pending in the bridge's consumer group until the job is stored, and a
/// list element is moved atomically (LMOVE) onto the bridge's own list
/// before it is read, and removed from there once the job is stored. A
/// message handled twice (the server died in between) gives one job: its
/// task id comes from the message, the config, or the stream entry's id.
public struct WyoloBridge: Service {
    public static let group = "trainyard"
    /// A client of its own: its reads block.
    let redis: RedisClient
    let intake: any JobIntake
    let topic: String
    let configRoot: String
    let processing: String
    /// Messages that could not be stored even as a failed job.
    public let deadLetters: String
    let logger: Logger
    private let attempts = Attempts()
    /// The largest config file read.
    static let maxConfigSize = 1 << 20

    public init(redis: RedisClient, intake: any JobIntake, topic: String = Wyolo.defaultTopic, configRoot: String,
                keys: RedisKeys = RedisKeys(), logger: Logger) {
        self.redis = redis
        self.intake = intake
        self.topic = topic
        self.configRoot = URL(fileURLWithPath: configRoot).resolvingSymlinksInPath().standardizedFileURL.path
        self.processing = "\(keys.prefix):wyolo:processing"
        self.deadLetters = "\(keys.prefix):wyolo:dead"
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var complained: String?
            await repeatWithBackoff("wyolo bridge", logger: logger) {
                let type = try await step(block: .seconds(1))
                switch type {
                case "stream", "list": break
                case "none": try? await Task.sleep(for: .milliseconds(500))  // no client has written yet
                default:
                    if complained != type {
                        logger.error("wyolo bridge: \(topic) is a Redis \(type), not a stream or a list; its messages are not read")
                        complained = type
                    }
                    try? await Task.sleep(for: .seconds(5))
                }
            }
        }
    }

    /// Handles what waits (list elements the bridge took but did not finish
    /// first), then what the topic holds, waiting up to `block`. Returns the
    /// topic's Redis type.
    @discardableResult
    public func step(block: Duration? = nil) async throws -> String {
        for element in try await redis.send(["LRANGE", processing, "0", "-1"]).array ?? [] {
            guard let text = element.string else { continue }
            try await acceptListElement(text)
        }
        let type = try await redis.send(["TYPE", topic]).string ?? "none"
        switch type {
        case "stream": try await drainStream(block: block)
        case "list": try await drainList(block: block)
        default: break
        }
        return type
    }

    private func drainList(block: Duration?) async throws {
        while true {
            let moved: RESPValue
            if let block {
                let seconds = String(format: "%.3f", Double(block.redisMilliseconds) / 1000)
                moved = try await redis.send(["BLMOVE", topic, processing, "LEFT", "RIGHT", seconds], timeout: block + redis.configuration.commandTimeout)
            } else {
                moved = try await redis.send(["LMOVE", topic, processing, "LEFT", "RIGHT"])
            }
            guard let text = moved.string else { return }
            try await acceptListElement(text)
            if block != nil { return }
        }
    }

    private func acceptListElement(_ text: String) async throws {
        try await accept(Self.listFields(text), fallbackID: nil, raw: text)
        try await redis.send(["LREM", processing, "1", text])
    }

    private func drainStream(block: Duration?) async throws {
        for start in ["0", ">"] {
            var command = ["XREADGROUP", "GROUP", Self.group, "bridge", "COUNT", "16"]
            if start == ">", let block { command += ["BLOCK", String(max(1, block.redisMilliseconds))] }
            command += ["STREAMS", topic, start]
            let reply: RESPValue
            do {
                reply = try await redis.send(command, timeout: (block ?? .zero) + redis.configuration.commandTimeout)
            } catch {
                guard error.serverCode == "NOGROUP" else { throw error }
                // From the first entry: messages sent before the bridge ran are jobs too.
                _ = try? await redis.send(["XGROUP", "CREATE", topic, Self.group, "0"])
                return
            }
            for entry in reply.array?.first?.array?[1].array ?? [] {
                guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { continue }
                var fields: [String: String] = [:]
                let values = parts[1].array ?? []
                var index = 0
                while index + 1 < values.count {
                    if let key = values[index].string, let value = values[index + 1].string { fields[key] = value }
                    index += 2
                }
                try await accept(.success(fields), fallbackID: "wyolo-" + id, raw: nil)
                try await redis.send(["XACK", topic, Self.group, id])
                try await redis.send(["XDEL", topic, id])
            }
        }
    }

    /// A list element's fields: a JSON object, or a JSON string holding one
    /// (wyolo's client encodes twice).
    package static func listFields(_ text: String) -> Result<[String: String], YardError> {
        guard text.utf8.count <= maxMessageBytes else {
            return .failure(YardError.invalid("message", "the wyolo message is \(text.utf8.count) bytes; at most \(maxMessageBytes)"))
        }
        var value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        if let inner = value?.stringValue { value = try? JSONDecoder().decode(JSONValue.self, from: Data(inner.utf8)) }
        guard let object = value?.objectValue else {
            return .failure(YardError(.invalidInput, field: "message", "the wyolo message is not a JSON object: \(text.prefix(200))"))
        }
        return .success(object.compactMapValues { $0.stringValue ?? $0.intValue.map(String.init) })
    }

    /// Stores the message's job, or a failed job with the reason when it
    /// cannot be one, or (when not even that can be stored: its task id is
    /// taken by a job whose id differs in case only, or the store refused it
    /// `maxAttempts` times) a dead-letter entry on `deadLetters`. It returns
    /// only when the message may be removed; a thrown error (Redis or the
    /// store unreachable) leaves it to be taken again. A task id already
    /// stored means the message was handled.
    func accept(_ message: Result<[String: String], YardError>, fallbackID: String?, raw: String?) async throws {
        let fields = (try? message.get()) ?? [:]
        let fallback = fallbackID ?? JobID.generate(epochSeconds: Int(Date().timeIntervalSince1970), random: UInt32.random(in: 0...UInt32.max))
        var taskID = fields["task_id"].flatMap { JobID.isValid($0) ? $0 : nil } ?? fallback
        // The same message taken again has the same key (a list element's id is drawn anew each time).
        let key = fallbackID ?? raw.map { "\($0.utf8.count):\($0.hashValue)" } ?? taskID
        let reason: String
        do {
            let fields = try Self.bounded(message, raw: raw)
            guard let path = fields["config_path"], !path.isEmpty else {
                throw YardError(.invalidInput, field: "config_path", "the wyolo message has no config_path")
            }
            var config = try readConfig(path)
            if fields["task_id"] == nil, let own = config.taskID { taskID = own }
            if try await intake.exists(taskID) { return }
            if let trial = fields["trial_number"].flatMap(Int.init) { config = config.withMetadata("trial_number", .int(trial)) }
            config = config.withMetadata("source", .string("wyolo:\(topic)"))
            let job = try await intake.submit(config.withTaskID(taskID))
            logger.info("wyolo bridge: \(topic) message queued as job \(job.id)")
            attempts.forget(key)
            return
        } catch let error as YardError where error.code != .unavailable {
            // Refused (bad message, config, or a task id another job holds): recorded below.
            reason = error.message
        } catch let error as RedisError {
            throw error  // Redis is away: the message waits for it, however long
        } catch {
            // The store failed: taken again later, but not for ever.
            guard attempts.count(key) >= Self.maxAttempts else { throw error }
            reason = "the store refused it \(Self.maxAttempts) times; last: \(Redaction.redactText(String(describing: error)).prefix(300))"
        }
        do {
            if try await intake.exists(taskID) { return }
            var source: [String: JSONValue] = ["source": .string("wyolo:\(topic)")]
            for (key, value) in fields.prefix(Self.maxFields) { source[String(key.prefix(100))] = .string(String(value.prefix(1000))) }
            if fields.isEmpty, let raw { source["message"] = .string(String(raw.prefix(1000))) }
            try await intake.reject(taskID: taskID, source: source, reason: reason)
            logger.warning("wyolo bridge: \(topic) message recorded as failed job \(taskID): \(reason.prefix(300))")
        } catch let error as YardError where error.code == .conflict || error.code == .invalidInput {
            try await deadLetter(raw: raw, fields: fields, reason: "\(reason); not recorded as a job: \(error.message)")
        } catch let error as RedisError {
            throw error
        } catch {
            guard attempts.count(key) >= Self.maxAttempts else { throw error }
            try await deadLetter(raw: raw, fields: fields, reason: "\(reason); the store refused the failed job too: \(String(describing: error).prefix(300))")
        }
        attempts.forget(key)
    }

    /// The largest message taken whole (a list element, or a stream entry's
    /// fields together), the longest `config_path`, the most fields.
    static let maxMessageBytes = 64 << 10
    static let maxPathBytes = 4096
    static let maxFields = 64
    /// Store failures a message may meet before it is set aside.
    static let maxAttempts = 5
    /// Dead letters kept (the newest).
    static let maxDeadLetters = 1000

    /// The message's fields when every limit holds; a one-line refusal naming the limit when not.
    package static func bounded(_ message: Result<[String: String], YardError>, raw: String?) throws(YardError) -> [String: String] {
        let fields = try message.get()
        let size = raw?.utf8.count ?? fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard size <= maxMessageBytes else {
            throw YardError.invalid("message", "the wyolo message is \(size) bytes; at most \(maxMessageBytes)")
        }
        guard fields.count <= maxFields else { throw YardError.invalid("message", "the wyolo message has \(fields.count) fields; at most \(maxFields)") }
        if let path = fields["config_path"], path.utf8.count > maxPathBytes {
            throw YardError.invalid("config_path", "\(path.utf8.count) bytes; at most \(maxPathBytes)")
        }
        return fields
    }

    /// Sets a message aside on `deadLetters` (a Redis list, newest last, the
    /// last `maxDeadLetters` kept): what it held (cut to 4 KiB), why, and when.
    func deadLetter(raw: String?, fields: [String: String], reason: String) async throws {
        let held = raw ?? String(decoding: (try? JSONEncoder().encode(fields)) ?? Data(), as: UTF8.self)
        let entry: JSONValue = .object([
            "topic": .string(topic), "message": .string(String(held.prefix(4096))), "reason": .string(String(reason.prefix(2000))),
            "at": .string(ISO8601DateFormatter().string(from: Date())),
        ])
        let text = String(decoding: try JSONEncoder().encode(entry), as: UTF8.self)
        try await redis.send(["RPUSH", deadLetters, text])
        try await redis.send(["LTRIM", deadLetters, String(-Self.maxDeadLetters), "-1"])
        logger.error("wyolo bridge: \(topic) message set aside on \(deadLetters): \(reason.prefix(300))")
    }

    /// Store failures per message, kept while the server runs.
    final class Attempts: Sendable {
        private let counts = Mutex<[String: Int]>([:])
        /// Counts one more failure; returns the count.
        func count(_ key: String) -> Int { counts.withLock { $0[key, default: 0] += 1; return $0[key]! } }
        func forget(_ key: String) { _ = counts.withLock { $0.removeValue(forKey: key) } }
    }

    /// The config a message names: an absolute path inside the bridge's
    /// config root (symlinks resolved), a file of at most 1 MiB, parsed and
    /// checked like any submitted config (relative paths in it are relative
    /// to its folder).
    func readConfig(_ path: String) throws -> JobConfig {
        guard path.hasPrefix("/") else {
            throw YardError(.invalidInput, field: "config_path", "config_path \(path) must be an absolute path under \(configRoot)")
        }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        guard resolved.hasPrefix(configRoot + "/") else {
            throw YardError(.invalidInput, field: "config_path",
                            "config_path \(path) is outside the folder the server reads wyolo configs from (\(configRoot)); put it there")
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
              attributes[.type] as? FileAttributeType == .typeRegular else {
            throw YardError(.notFound, field: "config_path", "config_path \(path): no such file")
        }
        guard (attributes[.size] as? Int ?? 0) <= Self.maxConfigSize, let data = FileManager.default.contents(atPath: resolved) else {
            throw YardError(.invalidInput, field: "config_path", "config_path \(path): larger than 1 MiB or unreadable")
        }
        let folder = (resolved as NSString).deletingLastPathComponent
        return try JobConfigParser(baseDirectory: folder) { FileManager.default.fileExists(atPath: $0) }
            .parse(String(decoding: data, as: UTF8.self), source: path)
    }
}
