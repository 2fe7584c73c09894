import Synchronization
import YardDomain
import YardRedis

/// The queue for workers on other machines, on a Redis Stream with one
/// consumer group. A claim is a delivery to a consumer (the worker): it
/// stays in the group's pending list until `complete` acknowledges it, and
/// the worker keeps it alive by `renew` (XCLAIM to itself, which resets its
/// idle time). An entry idle for longer than the lease belongs to a worker
/// that died or was cut off: the next `claim` takes it over (XAUTOCLAIM) as
/// a new attempt. `release` hands an entry to a placeholder consumer with
/// an idle time past any lease, so it is claimed next, ahead of new work.
///
/// Every operation that reads and then writes is one Lua script, so two
/// workers, or a worker and the server, never interleave inside one.
/// Keys: `RedisKeys.jobs` (the stream), `.entries` (job id -> entry id),
/// `.attempts` (job id -> attempts so far).
public final class RedisJobQueue: JobQueue {
    public static let group = "workers"
    /// The consumer that holds released entries until a worker claims them.
    static let released = "~released"

    let redis: RedisClient
    let waiting: RedisWaitPool
    let keys: RedisKeys
    public let lease: Duration?
    private let signal: WorkSignal
    /// The stream's newest entry when a claim last found nothing: a wait
    /// blocks for entries after it, so one added in between is not missed.
    private let lastSeen = Mutex<String?>(nil)

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), lease: Duration = .seconds(60), clock: any Clock<Duration> = ContinuousClock()) {
        self.redis = redis
        self.waiting = RedisWaitPool(configuration: redis.configuration)
        self.keys = keys
        self.lease = lease
        self.signal = WorkSignal(clock: clock)
    }

    var leaseMilliseconds: String { String(max(1, (lease ?? .seconds(60)).redisMilliseconds)) }

    /// The idle time past which a claim takes an entry over: the lease,
    /// except for one lease after this client saw Redis come back from an
    /// outage. Idle times run on through an outage, so without this the
    /// first worker back would take over every running job before their
    /// workers had a chance to renew. Released entries (idle far longer)
    /// are taken at once all the same.
    var takeoverMilliseconds: String {
        guard let lease, let ended = redis.outageEnded, ContinuousClock.now - ended < lease else { return leaseMilliseconds }
        return "100000000000"
    }

    /// First in first out: this driver does not order by the ticket's
    /// priority or fair share yet (the embedded queues do).
    public func enqueue(_ ticket: QueueTicket) async throws {
        try await redis.run(Scripts.enqueue, keys: keys.queue, arguments: [Self.group, ticket.jobID])
        await signal.notify()
    }

    public func claim(worker: String) async throws -> QueueClaim? {
        let reply = try await redis.run(Scripts.claim, keys: keys.queue, arguments: [Self.group, worker, takeoverMilliseconds])
        guard let fields = reply.array, fields.count == 2, let kind = fields[0].string else {
            throw RedisError.protocolViolation("the claim script returned \(reply)")
        }
        if kind == "none" {
            lastSeen.withLock { $0 = fields[1].string }
            return nil
        }
        guard let values = fields[1].array, values.count == 2, let id = values[0].string, let attempt = values[1].int else {
            throw RedisError.protocolViolation("the claim script returned \(reply)")
        }
        return QueueClaim(jobID: id, attempt: Int(attempt))
    }

    public func renew(_ claim: QueueClaim, worker: String) async throws -> Bool {
        try await held(claim, worker: worker, then: "renew")
    }

    public func finish(_ claim: QueueClaim, worker: String) async throws -> Bool {
        try await held(claim, worker: worker, then: "finish")
    }

    public func complete(_ jobID: String) async throws {
        try await redis.run(Scripts.complete, keys: keys.queue, arguments: [Self.group, jobID])
    }

    public func release(_ jobID: String) async throws {
        if try await redis.run(Scripts.release, keys: keys.queue, arguments: [Self.group, jobID, Self.released]).int == 1 {
            await signal.notify()
        }
    }

    public func release(_ claim: QueueClaim, worker: String) async throws -> Bool {
        let released = try await held(claim, worker: worker, then: "release")
        if released { await signal.notify() }
        return released
    }

    /// Runs `action` (renew, finish, release) if `worker` still holds this
    /// claim, in one script: the fence and the change cannot be split.
    private func held(_ claim: QueueClaim, worker: String, then action: String) async throws -> Bool {
        try await redis.run(Scripts.held, keys: keys.queue,
                            arguments: [Self.group, worker, claim.jobID, String(claim.attempt), action, Self.released]).int == 1
    }

    public func cancel(_ jobID: String) async throws -> Bool {
        try await redis.run(Scripts.cancel, keys: keys.queue, arguments: [Self.group, jobID, Self.released]).int == 1
    }

    /// Claims on Redis expire by lease; none is released wholesale.
    public func releaseAllClaims() async throws -> [String] { [] }

    public func claimant(of jobID: String) async throws -> String? {
        let name = try await redis.run(Scripts.claimant, keys: keys.queue, arguments: [Self.group, jobID]).string
        return name == Self.released ? nil : name
    }

    /// Blocks on the stream (XREAD BLOCK, on a connection of its own) for an
    /// entry newer than the last one a claim saw, and on this process's own
    /// enqueues and releases. Reclaimable entries of dead workers are found
    /// by the claim that follows the timeout.
    public func waitForWork(timeout: Duration) async {
        let after = lastSeen.withLock { $0 } ?? "$"
        let stream = keys.jobs
        let waiting = self.waiting
        let signal = self.signal
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await signal.wait(timeout: timeout) }
            group.addTask {
                // Redis' own timeout ends a little before the local one, so an
                // idle wait ends here and keeps its connection for the next
                // (a wait cancelled mid-read has to close it).
                let block = timeout - min(timeout / 10, .milliseconds(50))
                do { try await waiting.blockUntilNewer(than: after, on: stream, timeout: block) } catch {
                    // Redis unreachable: the local signal's timeout paces the retries.
                    await signal.wait(timeout: timeout)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

/// Every key Trainyard uses in Redis, under one prefix (`yard` unless the
/// deployment shares a Redis).
public struct RedisKeys: Sendable {
    public let prefix: String
    public init(prefix: String = "yard") { self.prefix = prefix }
    /// The job stream (the queue), read by the `workers` group.
    public var jobs: String { "\(prefix):jobs" }
    /// Job id -> its entry in the job stream.
    public var entries: String { "\(prefix):queue:entry" }
    /// Job id -> how many times it was claimed.
    public var attempts: String { "\(prefix):queue:attempt" }
    /// The keys the queue's scripts take, in their order.
    var queue: [String] { [jobs, entries, attempts] }
    /// A job as the server published it: `record` (the job, config with
    /// secrets masked), `secrets` (sealed with the shared secret key),
    /// `stop` ("1" once a stop was asked for).
    public func job(_ id: String) -> String { "\(prefix):job:\(id)" }
    /// What workers report, in order; the server's consumer group applies it.
    public var reports: String { "\(prefix):reports" }
    /// Worker id -> what it last announced (`WorkerInfo` as JSON).
    public var workers: String { "\(prefix):workers" }
}

/// Connections for blocking reads, one per waiter (a blocked connection
/// serves nobody else), kept for the next wait.
final class RedisWaitPool: Sendable {
    let configuration: RedisConfiguration
    private let idle = Mutex<[RedisConnection]>([])

    init(configuration: RedisConfiguration) { self.configuration = configuration }

    func blockUntilNewer(than id: String, on stream: String, timeout: Duration) async throws {
        let connection = try await take()
        let milliseconds = max(1, timeout.redisMilliseconds)
        // Cancelling a wait closes its connection: the blocked command cannot be taken back.
        try await withTaskCancellationHandler {
            _ = try await connection.send(["XREAD", "COUNT", "1", "BLOCK", String(milliseconds), "STREAMS", stream, id],
                                          timeout: timeout + configuration.commandTimeout)
        } onCancel: {
            connection.close()
        }
        if connection.isActive { idle.withLock { $0.append(connection) } }
    }

    private func take() async throws -> RedisConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if connection.isActive { return connection }
        }
        return try await RedisConnection.connect(configuration, name: "yard-wait")
    }
}

/// The queue's Lua scripts. KEYS: stream, entry hash, attempt hash.
enum Scripts {
    /// ARGV: group, job id. Adds the job unless it is already queued.
    static let enqueue = RedisScript("""
        if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
        pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
        local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
        redis.call('HSET', KEYS[2], ARGV[2], id)
        return 1
        """)

    /// ARGV: group, consumer, lease (ms). Takes over the oldest entry idle
    /// past the lease (released, or its worker gone), else reads a new one.
    /// Returns {'job', {job id, attempt}} or {'none', newest entry id}.
    static let claim = RedisScript("""
        pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
        local entry
        local cursor = '0-0'
        repeat
          local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)
          cursor = reply[1]
          local candidate = reply[2][1]
          if candidate and candidate[2] then entry = candidate end
        until entry ~= nil or cursor == '0-0'
        if entry == nil then
          local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
          if read then entry = read[1][2][1] end
        end
        if entry == nil then
          local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
          if newest[1] then return {'none', newest[1][1]} end
          return {'none', '0-0'}
        end
        local job = entry[2][2]
        local attempt = redis.call('HINCRBY', KEYS[3], job, 1)
        return {'job', {job, attempt}}
        """)

    /// ARGV: group, consumer, job id, attempt, action, placeholder consumer.
    /// When the consumer still holds this attempt: `renew` resets the
    /// entry's idle time, `finish` acknowledges and removes it, `release`
    /// hands it to the placeholder (claimed next). Returns 1, else 0.
    static let held = RedisScript("""
        local id = redis.call('HGET', KEYS[2], ARGV[3])
        if not id then return 0 end
        if redis.call('HGET', KEYS[3], ARGV[3]) ~= ARGV[4] then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] ~= ARGV[2] then return 0 end
        if ARGV[5] == 'finish' then
          redis.call('XACK', KEYS[1], ARGV[1], id)
          redis.call('XDEL', KEYS[1], id)
          redis.call('HDEL', KEYS[2], ARGV[3])
        elseif ARGV[5] == 'release' then
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[6], 0, id, 'IDLE', '1000000000000', 'JUSTID')
        else
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
        end
        return 1
        """)

    /// ARGV: group, job id. Removes the job whoever holds it.
    static let complete = RedisScript("""
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        redis.call('XACK', KEYS[1], ARGV[1], id)
        redis.call('XDEL', KEYS[1], id)
        redis.call('HDEL', KEYS[2], ARGV[2])
        return 1
        """)

    /// ARGV: group, job id, placeholder consumer. Puts a claimed job first
    /// in line. Returns 1 when it was claimed.
    static let release = RedisScript("""
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] == ARGV[3] then return 0 end
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, id, 'IDLE', '1000000000000', 'JUSTID')
        return 1
        """)

    /// ARGV: group, job id, placeholder consumer. Removes the job if no
    /// worker holds it. Returns 1 when it was waiting.
    static let cancel = RedisScript("""
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] ~= nil and pending[1][2] ~= ARGV[3] then return 0 end
        if pending[1] ~= nil then redis.call('XACK', KEYS[1], ARGV[1], id) end
        redis.call('XDEL', KEYS[1], id)
        redis.call('HDEL', KEYS[2], ARGV[2])
        return 1
        """)

    /// ARGV: group, job id. The consumer holding the job, or nil.
    static let claimant = RedisScript("""
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return false end
        local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if not ok or pending[1] == nil then return false end
        return pending[1][2]
        """)
}
