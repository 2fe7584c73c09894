import Foundation
import Synchronization
import YardDomain
import YardRedis
import YardStore

/// The queue for workers on other machines, on a Redis Stream with one
/// consumer group. A claim is a delivery to a consumer (the worker): it
/// stays in the group's pending list until `complete` acknowledges it, and
/// the worker keeps it alive by `renew` (XCLAIM to itself, which resets its
/// idle time). An entry idle for longer than the lease belongs to a worker
/// that died or was cut off: a later claim may take it over as a new
/// attempt. `release` hands an entry to a placeholder consumer, where it
/// waits again in its old place.
///
/// Which waiting job a worker claims is `ClaimOrder`'s and `Routing`'s to
/// say, as for the embedded queue: a claim reads the waiting jobs' tickets,
/// the live claims and the last 24 h of GPU time in one script (a
/// consistent view), ranks them in Swift, then claims the chosen entry in a
/// second script that checks it is still waiting and its owner still under
/// `--max-running`; when another worker got there first it ranks again. A
/// job is thus never handed to two workers, nor a user over the limit.
///
/// Every operation that reads and then writes is one Lua script, so two
/// workers, or a worker and the server, never interleave inside one.
/// Keys: `RedisKeys.jobs` (the stream), `.entries` (job id -> entry id),
/// `.attempts` (job id -> attempts so far), `.tickets` (job id -> what
/// orders it), `.usage` (claim -> its span of GPU time).
public final class RedisJobQueue: JobQueue {
    public static let group = "workers"
    /// The consumer that holds released entries until a worker claims them.
    static let released = "~released"

    let redis: RedisClient
    let waiting: RedisWaitPool
    let keys: RedisKeys
    public let lease: Duration?
    private let signal: WorkSignal
    private let now: @Sendable () -> Date
    /// The server's own (it publishes it); nil on a worker, which claims by
    /// what the server published.
    private let policy: SchedulingPolicy?
    /// Where the workers announce themselves (the same Redis).
    private let workers: RedisWorkerRegistry
    /// The stream's newest entry when a claim last found nothing: a wait
    /// blocks for entries after it, so one added in between is not missed.
    private let lastSeen = Mutex<String?>(nil)

    /// `now` stamps GPU time and ages tickets: the clocks of the server and
    /// the workers' machines should agree to within seconds (NTP), which is
    /// little against an aging interval of an hour. `policy` is the
    /// server's (`--priority-aging`, `--fair-share`, `--max-running`): it
    /// publishes it with every enqueue and at start (`publishPolicy`), and a
    /// queue made without one (`yard worker`) claims by the published one.
    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), lease: Duration = .seconds(60), clock: any Clock<Duration> = ContinuousClock(),
                now: @escaping @Sendable () -> Date = { Date() }, policy: SchedulingPolicy? = nil) {
        self.redis = redis
        self.waiting = RedisWaitPool(configuration: redis.configuration)
        self.keys = keys
        self.lease = lease
        self.signal = WorkSignal(clock: clock)
        self.now = now
        self.policy = policy
        self.workers = RedisWorkerRegistry(redis: redis, keys: keys)
    }

    var leaseMilliseconds: String { String(max(1, (lease ?? .seconds(60)).redisMilliseconds)) }

    /// The idle time past which a claim takes an entry over: the lease,
    /// except for one lease after this client saw Redis come back from an
    /// outage. Idle times run on through an outage, so without this the
    /// first worker back would take over every running job before their
    /// workers had a chance to renew. Released entries are waiting whatever
    /// their idle time.
    var takeoverMilliseconds: String {
        guard let lease, let ended = redis.outageEnded, ContinuousClock.now - ended < lease else { return leaseMilliseconds }
        return "100000000000"
    }

    var time: String { String(now().timeIntervalSince1970) }

    public func enqueue(_ ticket: QueueTicket) async throws {
        let stored = try JSONCoding.string(StoredTicket(ticket))
        let published = try policy.map { try JSONCoding.string(StoredPolicy($0)) } ?? ""
        try await redis.run(Scripts.enqueue, keys: keys.queue, arguments: [Self.group, ticket.jobID, stored, published])
        await signal.notify()
    }

    /// Tells the workers this queue's policy (the server's, at start: a
    /// restart with another `--max-running` applies before the next submit).
    public func publishPolicy() async throws {
        guard let policy else { return }
        try await redis.send(["SET", keys.policy, try JSONCoding.string(StoredPolicy(policy))], timeout: .seconds(2))
    }

    public func claim(worker: String, capacity: WorkerCapacity) async throws -> QueueClaim? {
        var passed: Set<String> = []
        for _ in 0..<100 {
            let takeover = takeoverMilliseconds
            let view = try await snapshot(takeover: takeover)
            let policy = view.policy
            let date = now()
            let candidates = view.waiting.filter { !passed.contains($0.ticket.jobID) }
            guard let index = ClaimOrder.next(candidates, usage: ClaimOrder.usage(view.spans, now: date, policy: policy), running: view.running,
                                              now: date, policy: policy, capacity: capacity) else {
                lastSeen.withLock { $0 = view.newest }
                return nil
            }
            let chosen = candidates[index]
            let reply = try await redis.run(Scripts.claim, keys: keys.queue, arguments: [
                Self.group, worker, chosen.ticket.jobID, view.entries[chosen.ticket.jobID] ?? "", takeover, Self.released,
                String(date.timeIntervalSince1970), policy.maxRunningPerUser.map(String.init) ?? "", String(SchedulingPolicy.usageWindow),
            ])
            guard let fields = reply.array, let kind = fields.first?.string else {
                throw RedisError.protocolViolation("the claim script returned \(reply)")
            }
            switch kind {
            case "job":
                guard fields.count == 2, let attempt = fields[1].int else { throw RedisError.protocolViolation("the claim script returned \(reply)") }
                return QueueClaim(jobID: chosen.ticket.jobID, attempt: Int(attempt))
            case "taken":
                // Another worker claimed it (or it was cancelled) since the
                // view was read: rank again without it.
                passed.insert(chosen.ticket.jobID)
            default:
                // Its owner reached --max-running meanwhile: rank again on a fresh view.
                continue
            }
        }
        return nil
    }

    /// The waiting jobs, the live claims and the GPU time as one script read them.
    struct View {
        var waiting: [ClaimOrder.Candidate] = []
        /// Job id -> its stream entry.
        var entries: [String: String] = [:]
        /// Live claims per owner, for `--max-running`.
        var running: [String: Int] = [:]
        var spans: [UsageSpan] = []
        var newest = "0-0"
        /// This queue's policy, else the one the server published, else the default.
        var policy = SchedulingPolicy.default
    }

    func snapshot(takeover: String) async throws -> View {
        let reply = try await redis.run(Scripts.snapshot, keys: keys.queue, arguments: [Self.group])
        guard let parts = reply.array, parts.count == 6 else { throw RedisError.protocolViolation("the queue snapshot returned \(reply)") }
        let limit = Int64(takeover) ?? Int64.max
        var view = View()
        view.policy = policy ?? parts[5].string.flatMap { try? JSONCoding.decode(StoredPolicy.self, $0) }?.policy ?? .default
        view.newest = parts[4].string ?? "0-0"
        let entries = Self.pairs(parts[0])
        let tickets = Self.pairs(parts[1])
        var live: Set<String> = []
        for item in parts[2].array ?? [] {
            guard let fields = item.array, fields.count >= 3, let id = fields[0].string, let consumer = fields[1].string, let idle = fields[2].int else { continue }
            if consumer != Self.released && idle < limit { live.insert(id) }
        }
        var liveJobs: Set<String> = []
        for (job, entry) in entries {
            view.entries[job] = entry
            let ticket = tickets[job].flatMap { try? JSONCoding.decode(StoredTicket.self, $0) }?.ticket(job)
                ?? QueueTicket(jobID: job, enqueuedAt: Self.date(of: entry))
            if live.contains(entry) {
                liveJobs.insert(job)
                if let owner = ticket.owner { view.running[owner, default: 0] += 1 }
            } else {
                view.waiting.append(ClaimOrder.Candidate(ticket: ticket, seq: Self.seq(of: entry)))
            }
        }
        let date = now()
        for (_, text) in Self.pairs(parts[3]) {
            guard let span = try? JSONCoding.decode(StoredSpan.self, text) else { continue }
            // A claim its worker stopped renewing holds no GPU now.
            let end = span.f.map(Date.init(timeIntervalSince1970:)) ?? (liveJobs.contains(span.j) ? nil : date)
            view.spans.append(UsageSpan(owner: span.o, experiment: span.e, start: Date(timeIntervalSince1970: span.s), end: end))
        }
        return view
    }

    static func pairs(_ value: RESPValue) -> [String: String] {
        let items = value.array ?? []
        var result: [String: String] = [:]
        var index = 0
        while index + 1 < items.count {
            if let key = items[index].string, let value = items[index + 1].string { result[key] = value }
            index += 2
        }
        return result
    }

    /// An entry id (`milliseconds-sequence`) as one growing number.
    static func seq(of entry: String) -> Int64 {
        let parts = entry.split(separator: "-")
        let ms = parts.first.flatMap { Int64($0) } ?? 0
        let n = parts.count > 1 ? Int64(parts[1]) ?? 0 : 0
        return ms * 1_000_000 + min(n, 999_999)
    }

    static func date(of entry: String) -> Date {
        Date(timeIntervalSince1970: Double(entry.split(separator: "-").first.flatMap { Int64($0) } ?? 0) / 1000)
    }

    public func renew(_ claim: QueueClaim, worker: String) async throws -> Bool {
        try await held(claim, worker: worker, then: "renew")
    }

    /// A claim ended: with a per-user limit, a job it held back may be
    /// claimable now (by this process's workers at once; elsewhere at their
    /// next claim, within a second).
    public func finish(_ claim: QueueClaim, worker: String) async throws -> Bool {
        let finished = try await held(claim, worker: worker, then: "finish")
        if finished { await signal.notify() }
        return finished
    }

    public func complete(_ jobID: String) async throws {
        if try await redis.run(Scripts.complete, keys: keys.queue, arguments: [Self.group, jobID, time]).int == 1 { await signal.notify() }
    }

    public func release(_ jobID: String) async throws {
        if try await redis.run(Scripts.release, keys: keys.queue, arguments: [Self.group, jobID, Self.released, time]).int == 1 {
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
                            arguments: [Self.group, worker, claim.jobID, String(claim.attempt), action, Self.released, time]).int == 1
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

    public func waitingReason(of jobID: String) async throws -> String? {
        let view = try await snapshot(takeover: takeoverMilliseconds)
        guard let ticket = view.waiting.first(where: { $0.ticket.jobID == jobID })?.ticket else { return nil }
        if let reason = ClaimOrder.blocked(ticket, running: view.running, policy: view.policy) { return reason }
        guard !ticket.resources.isEmpty else { return nil }
        return Routing.unroutable(ticket.resources, workers: try await workers.capacities())
    }

    /// Blocks on the stream (XREAD BLOCK, on a connection of its own) for an
    /// entry newer than the last one a claim saw, and on this process's own
    /// enqueues and releases. Reclaimable entries of dead workers, and jobs
    /// released or freed (`--max-running`) elsewhere, are found by the claim
    /// that follows the timeout.
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

/// A ticket as the queue keeps it in Redis (`RedisKeys.tickets`); short
/// keys, as the claim script reads `o` (the owner) for `--max-running`.
struct StoredTicket: Codable {
    var p: Int
    var o: String?
    var e: String
    var t: Double
    var tags: [String]?
    var gpu: Double?

    init(_ ticket: QueueTicket) {
        p = ticket.priority
        o = ticket.owner
        e = ticket.experiment
        t = ticket.enqueuedAt.timeIntervalSince1970
        tags = ticket.resources.tags.isEmpty ? nil : ticket.resources.tags
        gpu = ticket.resources.gpuMemoryGB
    }

    func ticket(_ jobID: String) -> QueueTicket {
        QueueTicket(jobID: jobID, priority: p, owner: o, experiment: e, enqueuedAt: Date(timeIntervalSince1970: t),
                    resources: JobResources(tags: tags ?? [], gpuMemoryGB: gpu))
    }
}

/// The scheduling policy as the server publishes it (`RedisKeys.policy`).
struct StoredPolicy: Codable {
    var fairShare: String
    var agingSeconds: Double?
    var maxRunningPerUser: Int?

    init(_ policy: SchedulingPolicy) {
        fairShare = policy.fairShare.rawValue
        agingSeconds = policy.agingSeconds
        maxRunningPerUser = policy.maxRunningPerUser
    }

    var policy: SchedulingPolicy {
        SchedulingPolicy(fairShare: FairShare(rawValue: fairShare) ?? .user, agingSeconds: agingSeconds, maxRunningPerUser: maxRunningPerUser)
    }
}

/// One claim's GPU time as the claim script writes it (`RedisKeys.usage`):
/// job, owner, experiment, start and end (epoch seconds; no end: held).
struct StoredSpan: Codable {
    var j: String
    var o: String?
    var e: String
    var s: Double
    var f: Double?
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
    /// Job id -> what orders it (priority, owner, experiment, when queued,
    /// resources), while it is queued.
    public var tickets: String { "\(prefix):queue:ticket" }
    /// Claim (job id, NUL, attempt) -> its span of GPU time, kept 24 h after it ended.
    public var usage: String { "\(prefix):queue:usage" }
    /// The server's scheduling policy (JSON), for workers on other machines.
    public var policy: String { "\(prefix):queue:policy" }
    /// The keys the queue's scripts take, in their order.
    var queue: [String] { [jobs, entries, attempts, tickets, usage, policy] }
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

/// The queue's Lua scripts. KEYS: stream, entry hash, attempt hash,
/// ticket hash, usage hash.
enum Scripts {
    /// Shared by the scripts that end a claim: its span of GPU time gets an
    /// end (`now`) unless it has one. Lua strings hold the NUL between job
    /// id and attempt as they hold any byte.
    static let endSpan = """
        local function endspan(job, now)
          local attempt = redis.call('HGET', KEYS[3], job)
          if not attempt then return end
          local field = job .. '\\0' .. attempt
          local text = redis.call('HGET', KEYS[5], field)
          if not text then return end
          local span = cjson.decode(text)
          if span.f == nil then
            span.f = now
            redis.call('HSET', KEYS[5], field, cjson.encode(span))
          end
        end
        """

    /// ARGV: group, job id, ticket (JSON), policy (JSON; '' from a queue
    /// without one). Adds the job unless it is already queued.
    static let enqueue = RedisScript("""
        if ARGV[4] ~= '' then redis.call('SET', KEYS[6], ARGV[4]) end
        if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
        pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
        local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
        redis.call('HSET', KEYS[2], ARGV[2], id)
        redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
        return 1
        """)

    /// ARGV: group. What a claim ranks, read at one instant: {entries
    /// (job, entry id, ...), tickets (job, JSON, ...), the pending list
    /// ({entry, consumer, idle ms, deliveries}, ...), spans (claim, JSON,
    /// ...), the newest entry id, the published policy}.
    static let snapshot = RedisScript("""
        pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
        local count = redis.call('HLEN', KEYS[2])
        local pending = {}
        if count > 0 then pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', count + 16) end
        local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
        local last = '0-0'
        if newest[1] then last = newest[1][1] end
        return {redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[4]), pending, redis.call('HGETALL', KEYS[5]), last,
                redis.call('GET', KEYS[6])}
        """)

    /// ARGV: group, consumer, job id, its entry id (as the snapshot saw
    /// it), takeover idle (ms), placeholder consumer, now (epoch seconds),
    /// per-user running limit ('' for none), usage window (seconds).
    /// Claims the job the caller ranked first if it still waits (never
    /// delivered, released, or its claim idle past the takeover) and its
    /// owner is still under the limit. Returns {'job', attempt}, {'taken'}
    /// (claimed or gone meanwhile) or {'limit'}.
    static let claim = RedisScript(endSpan + "\n" + """
        pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
        local id = redis.call('HGET', KEYS[2], ARGV[3])
        if not id or id ~= ARGV[4] then return {'taken'} end
        local takeover = tonumber(ARGV[5])
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] ~= nil and pending[1][2] ~= ARGV[6] and pending[1][3] < takeover then return {'taken'} end
        local owner = nil
        local experiment = 'default'
        local ticket = redis.call('HGET', KEYS[4], ARGV[3])
        if ticket then
          local decoded = cjson.decode(ticket)
          if type(decoded.o) == 'string' then owner = decoded.o end
          if type(decoded.e) == 'string' then experiment = decoded.e end
        end
        if ARGV[8] ~= '' and owner then
          local limit = tonumber(ARGV[8])
          local running = 0
          local all = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', redis.call('HLEN', KEYS[2]) + 16)
          for _, held in ipairs(all) do
            if held[1] ~= id and held[2] ~= ARGV[6] and held[3] < takeover then
              local entry = redis.call('XRANGE', KEYS[1], held[1], held[1])
              if entry[1] then
                local other = redis.call('HGET', KEYS[4], entry[1][2][2])
                if other then
                  local decoded = cjson.decode(other)
                  if decoded.o == owner then running = running + 1 end
                end
              end
            end
          end
          if running >= limit then return {'limit'} end
        end
        local now = tonumber(ARGV[7])
        endspan(ARGV[3], now)
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'FORCE', 'JUSTID')
        local attempt = redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
        local span = {j = ARGV[3], e = experiment, s = now}
        if owner then span.o = owner end
        redis.call('HSET', KEYS[5], ARGV[3] .. '\\0' .. attempt, cjson.encode(span))
        -- Spans that ended before the window count for nothing any more.
        local from = now - tonumber(ARGV[9])
        local spans = redis.call('HGETALL', KEYS[5])
        for i = 1, #spans, 2 do
          local decoded = cjson.decode(spans[i + 1])
          if type(decoded.f) == 'number' and decoded.f < from then redis.call('HDEL', KEYS[5], spans[i]) end
        end
        return {'job', attempt}
        """)

    /// ARGV: group, consumer, job id, attempt, action, placeholder consumer, now.
    /// When the consumer still holds this attempt: `renew` resets the
    /// entry's idle time, `finish` acknowledges and removes it, `release`
    /// hands it to the placeholder (waiting in its place again). Returns 1, else 0.
    static let held = RedisScript(endSpan + "\n" + """
        local id = redis.call('HGET', KEYS[2], ARGV[3])
        if not id then return 0 end
        if redis.call('HGET', KEYS[3], ARGV[3]) ~= ARGV[4] then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] ~= ARGV[2] then return 0 end
        if ARGV[5] == 'finish' then
          endspan(ARGV[3], tonumber(ARGV[7]))
          redis.call('XACK', KEYS[1], ARGV[1], id)
          redis.call('XDEL', KEYS[1], id)
          redis.call('HDEL', KEYS[2], ARGV[3])
          redis.call('HDEL', KEYS[4], ARGV[3])
        elseif ARGV[5] == 'release' then
          endspan(ARGV[3], tonumber(ARGV[7]))
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[6], 0, id, 'IDLE', '1000000000000', 'JUSTID')
        else
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
        end
        return 1
        """)

    /// ARGV: group, job id, now. Removes the job whoever holds it.
    static let complete = RedisScript(endSpan + "\n" + """
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        endspan(ARGV[2], tonumber(ARGV[3]))
        redis.call('XACK', KEYS[1], ARGV[1], id)
        redis.call('XDEL', KEYS[1], id)
        redis.call('HDEL', KEYS[2], ARGV[2])
        redis.call('HDEL', KEYS[4], ARGV[2])
        return 1
        """)

    /// ARGV: group, job id, placeholder consumer, now. Puts a claimed job
    /// back in its place. Returns 1 when it was claimed.
    static let release = RedisScript(endSpan + "\n" + """
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] == ARGV[3] then return 0 end
        endspan(ARGV[2], tonumber(ARGV[4]))
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
        redis.call('HDEL', KEYS[4], ARGV[2])
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
