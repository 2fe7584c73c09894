import Crypto
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Redis for the rest of Trainyard: one multiplexed connection, opened on
/// first use and reopened after it breaks, with backoff between failed
/// attempts. An outage is logged once when it starts and once when it ends,
/// not per attempt. Commands are never retried here: after a broken
/// connection nobody knows whether one was applied, so callers that must
/// not lose or double a write make it idempotent (see the queue's scripts).
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let keeper: ConnectionKeeper
    /// The keeper's current connection, read without a hop onto its actor.
    private let current = Mutex<RedisConnection?>(nil)

    /// - Parameters:
    ///   - name: shown by `CLIENT LIST` (e.g. `yard-worker-gpu0`).
    ///   - backoff: the waits after the first, second... failed connection attempt (the last repeats).
    public init(_ configuration: RedisConfiguration, name: String? = nil, logger: Logger = Logger(label: "trainyard.redis"),
                backoff: [Duration] = [.milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2)],
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.keeper = ConnectionKeeper(configuration: configuration, name: name, logger: logger, backoff: backoff, group: group)
    }

    /// Sends one command. An error reply is thrown as `RedisError.server`.
    @discardableResult
    public func send(_ arguments: [String], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        try Self.checked(try await pipeline([arguments], timeout: timeout)[0])
    }

    /// Sends the commands in one write. Error replies stay in the array
    /// (`.error`), so one failed command does not hide the others' results.
    public func pipeline(_ commands: [[String]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        let connection: RedisConnection
        if let open = current.withLock({ $0 }), open.isActive {
            connection = open
        } else {
            let (opened, afterOutage) = try await keeper.connection()
            connection = opened
            current.withLock { $0 = connection }
            if afterOutage { outageEnd.withLock { $0 = .now } }
        }
        do {
            return try await connection.pipeline(commands, timeout: timeout)
        } catch {
            if error.isConnectionLoss {
                current.withLock { if $0 === connection { $0 = nil } }
                await keeper.lost(connection, error)
            }
            throw error
        }
    }

    /// Runs a Lua script by its SHA (EVALSHA), loading it when Redis does
    /// not have it (first use, or after Redis restarted).
    @discardableResult
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RESPValue {
        let call = [String(keys.count)] + keys + arguments
        let reply = try await pipeline([["EVALSHA", script.sha1] + call])[0]
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
            return try await send(["EVAL", script.source] + call)
        }
        return try Self.checked(reply)
    }

    /// When this client last got through to Redis after an outage (nil:
    /// none since it started). Idle times that Redis measures across an
    /// outage include it: the queue lets leases run again from here.
    public var outageEnded: ContinuousClock.Instant? { outageEnd.withLock { $0 } }
    private let outageEnd = Mutex<ContinuousClock.Instant?>(nil)

    /// Closes the connection; the next command opens a new one.
    public func close() async {
        current.withLock { $0 = nil }
        await keeper.closeCurrent()
    }

    /// Whether Redis answers now (PING), for health checks.
    public func ping() async -> Bool {
        (try? await send(["PING"], timeout: .seconds(2)))?.string == "PONG"
    }

    static func checked(_ reply: RESPValue) throws(RedisError) -> RESPValue {
        if case .error(let text) = reply { throw .server(text) }
        return reply
    }
}

/// A Lua script and its SHA-1, the name Redis caches it under.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = Array("0123456789abcdef".utf8)
            return String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
        }.joined()
    }
}

/// Owns the current connection: one connect at a time, backoff after
/// failures, one log line per outage.
actor ConnectionKeeper {
    let configuration: RedisConfiguration
    let name: String?
    let logger: Logger
    let backoff: [Duration]
    let group: any EventLoopGroup
    private var current: RedisConnection?
    private var connecting: Task<RedisConnection, any Error>?
    private var failures = 0
    private var retryAt: ContinuousClock.Instant?
    private var lastError: RedisError?
    private var outageSince: ContinuousClock.Instant?

    init(configuration: RedisConfiguration, name: String?, logger: Logger, backoff: [Duration], group: any EventLoopGroup) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.backoff = backoff.isEmpty ? [.seconds(1)] : backoff
        self.group = group
    }

    /// The open connection, and whether it ends an outage.
    func connection() async throws(RedisError) -> (RedisConnection, Bool) {
        if let current, current.isActive { return (current, false) }
        if let connecting { return (try await Self.value(of: connecting), false) }
        if let retryAt, ContinuousClock.now < retryAt, let lastError { throw lastError }
        let configuration = self.configuration, name = self.name, group = self.group
        let task = Task { () async throws -> RedisConnection in try await RedisConnection.connect(configuration, name: name, group: group) }
        connecting = task
        do {
            let connection = try await Self.value(of: task)
            connecting = nil
            current = connection
            let afterOutage = outageSince != nil
            if let since = outageSince {
                let milliseconds = (ContinuousClock.now - since).redisMilliseconds
                logger.notice("redis at \(configuration) is reachable again after \(milliseconds) ms")
            }
            failures = 0
            retryAt = nil
            lastError = nil
            outageSince = nil
            return (connection, afterOutage)
        } catch {
            connecting = nil
            noteFailure(error)
            throw error
        }
    }

    func lost(_ connection: RedisConnection, _ error: RedisError) {
        connection.close()
        if current === connection { current = nil }
        if outageSince == nil {
            outageSince = .now
            logger.warning("\(error.description); reconnecting with backoff")
        }
    }

    func closeCurrent() {
        current?.close()
        current = nil
    }

    private func noteFailure(_ error: RedisError) {
        failures += 1
        lastError = error
        retryAt = .now + backoff[min(failures - 1, backoff.count - 1)]
        if outageSince == nil {
            outageSince = .now
            logger.warning("\(error.description); retrying with backoff (logged once per outage)")
        }
    }

    private static func value(of task: Task<RedisConnection, any Error>) async throws(RedisError) -> RedisConnection {
        do { return try await task.value } catch let error as RedisError { throw error } catch { throw .connection("\(error)") }
    }
}
