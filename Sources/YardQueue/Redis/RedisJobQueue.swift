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
/// attempt. `release` acknowledges the entry and puts the job back in its
/// group, where it waits in its old place.
///
/// Which waiting job a worker claims is `ClaimOrder`'s and `Routing`'s to
/// say, as for the embedded queue. Waiting jobs are kept in groups of equal
/// priority, owner, experiment and resources (a sorted set each, by entry),
/// in which the oldest always ranks first: a claim reads only each group's
/// eight oldest, the claims held now (leases expired included) and each share's
/// GPU time in one script (a consistent view), ranks them in Swift, then
/// claims its choice in a second script that checks the job still waits and
/// its owner is still under `--max-running`; when another worker got there
/// first it tries the next. A claim's cost grows with the groups and the
/// running jobs, not with the queue's length; a job is never handed to two
/// workers, nor a user over the limit.
///
/// Every operation that reads and then writes is one Lua script, so two
/// workers, or a worker and the server, never interleave inside one.
/// Keys: `RedisKeys.jobs` (the stream), `.entries` (job id -> entry id),
/// `.attempts` (job id -> attempts so far), `.tickets` (job id -> what
/// orders it), `.groups` and `.waiting(group)` (the waiting jobs),
/// `.spans`, `.ended` and `.usage` (GPU time per share, 24 h), `.claimed`
/// (entry -> job while claimed).
public final class RedisJobQueue: JobQueue {
    public static let group = "workers"
    /// The consumer an older version handed released entries to: such an
    /// entry waits (a release now acknowledges the entry instead).
    static let released = "~released"

    let redis: RedisClient
    let waiting: RedisWaitPool
    let keys: RedisKeys
    /// `keys.queue`, built once: every script call sends them.
    let scriptKeys: [String]
    public let lease: Duration?
    private let signal: WorkSignal
    private let now: @Sendable () -> Date
    /// The server's own (it publishes it); nil on a worker, which claims by
    /// what the server published.
    private let policy: SchedulingPolicy?
    /// Where the workers announce themselves (the same Redis).
    private let workers: RedisWorkerRegistry
    /// Tickets and spans as the last snapshots read them: the same JSON
    /// comes back in every claim's snapshot while the job waits or runs.
    private let decoded = DecodedCache()
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
        self.scriptKeys = keys.queue
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
        let stored = StoredTicket(ticket)
        let published = try policy.map { try JSONCoding.string(StoredPolicy($0)) } ?? ""
        try await redis.run(Scripts.enqueue, keys: scriptKeys, arguments: [
            Self.group, ticket.jobID, stored.json, published, stored.group.json, Self.released,
        ])
        await signal.notify()
    }

    /// Tells the workers this queue's policy (the server's, at start: a
    /// restart with another `--max-running` applies before the next submit).
    public func publishPolicy() async throws {
        guard let policy else { return }
        try await redis.send(["SET", keys.policy, try JSONCoding.string(StoredPolicy(policy))], timeout: .seconds(2))
    }

    public func claim(worker: String, capacity: WorkerCapacity) async throws -> QueueClaim? {
        if policy?.maxRunningPerUser == nil {
            switch try await claimSole(worker: worker) {
            case .claimed(let claim): return claim
            case .nothing: return nil
            case .rank: break
            }
        }
        for _ in 0..<20 {
            let takeover = takeoverMilliseconds
            var view = try await snapshot(takeover: takeover)
            let policy = view.policy
            let date = now()
            let usage = view.usage(now: date, policy: policy)
            var lost = false
            while true {
                guard let index = ClaimOrder.next(view.waiting, usage: usage, running: view.running, now: date, policy: policy,
                                                  capacity: capacity) else {
                    // A job another worker took may have had its group's next behind it.
                    if lost { break }
                    lastSeen.withLock { $0 = view.newest }
                    return nil
                }
                let chosen = view.waiting.remove(at: index)
                let group = view.groups[chosen.ticket.jobID] ?? ""
                let reply = try await redis.run(Scripts.claim, keys: scriptKeys, arguments: [
                    Self.group, worker, chosen.ticket.jobID, view.entries[chosen.ticket.jobID] ?? "", takeover, Self.released,
                    String(date.timeIntervalSince1970), policy.maxRunningPerUser.map(String.init) ?? "", group,
                ])
                let (kind, claim) = try Self.claimed(reply)
                if let claim { return claim }
                if kind != "taken" { break }  // its owner reached --max-running meanwhile: read afresh
                // Other workers claimed it and every job of its group since
                // the view was read: the next in this view is tried.
                if let owner = chosen.ticket.owner { view.running[owner, default: 0] += 1 }
                if !group.isEmpty { view.waiting.removeAll { view.groups[$0.ticket.jobID] == group } }
                lost = true
            }
        }
        return nil
    }

    enum SoleClaim: Equatable {
        case claimed(QueueClaim)
        /// Nothing waits: no group, no claim past its lease, none released.
        case nothing
        /// More than one candidate could rank first: the caller ranks.
        case rank
    }

    /// One script, no snapshot, when there is nothing to rank (`Scripts.sole`
    /// says when): the job, or that nothing waits (a worker polling an
    /// empty queue costs Redis one short script, not a snapshot).
    func claimSole(worker: String) async throws -> SoleClaim {
        let date = now()
        let reply = try await redis.run(Scripts.sole, keys: scriptKeys, arguments: [
            Self.group, worker, takeoverMilliseconds, Self.released, String(date.timeIntervalSince1970), policy == nil ? "" : "1",
            String(date.timeIntervalSince1970 - SchedulingPolicy.usageWindow),
        ])
        let (kind, claim) = try Self.claimed(reply)
        if let claim { return .claimed(claim) }
        guard kind == "none" else { return .rank }
        guard let newest = reply.array?.dropFirst().first?.string else {
            throw RedisError.protocolViolation("the claim script returned \(reply)")
        }
        lastSeen.withLock { $0 = newest }
        return .nothing
    }

    /// A claim script's answer: its kind, and the claim when it is `job`.
    static func claimed(_ reply: RESPValue) throws -> (kind: String, claim: QueueClaim?) {
        guard let fields = reply.array, let kind = fields.first?.string else {
            throw RedisError.protocolViolation("the claim script returned \(reply)")
        }
        guard kind == "job" else { return (kind, nil) }
        guard fields.count == 3, let attempt = fields[1].int, let job = fields[2].string else {
            throw RedisError.protocolViolation("the claim script returned \(reply)")
        }
        return (kind, QueueClaim(jobID: job, attempt: Int(attempt)))
    }

    /// What a claim ranks, as one script read it.
    struct View {
        /// Each group's oldest waiting job, and every claim expired past the takeover.
        var waiting: [ClaimOrder.Candidate] = []
        /// Job id -> its stream entry (the candidates').
        var entries: [String: String] = [:]
        /// Job id -> its group (the waiting candidates').
        var groups: [String: String] = [:]
        /// Live claims per owner, for `--max-running`.
        var running: [String: Int] = [:]
        /// GPU time of claims that ended in the window, per share key
        /// (`u:owner`, `e:experiment`).
        var ended: [String: ShareUsage] = [:]
        /// Claims held now (live or expired), from their start.
        var open: [UsageSpan] = []
        /// Jobs claimed now whose lease is still alive (not waiting).
        var held: Set<String> = []
        var newest = "0-0"
        /// This queue's policy, else the one the server published, else the default.
        var policy = SchedulingPolicy.default

        /// Each share's GPU time in the window ending `now`: ended claims,
        /// plus the ones held now so far.
        func usage(now: Date, policy: SchedulingPolicy) -> [String: ShareUsage] {
            let prefix = policy.fairShare == .user ? "u:" : "e:"
            var usage: [String: ShareUsage] = [:]
            for (key, value) in ended where key.hasPrefix(prefix) { usage[key] = value }
            for (key, value) in ClaimOrder.usage(open, now: now, policy: policy) {
                usage[key, default: ShareUsage()].seconds += value.seconds
                usage[key, default: ShareUsage()].claims += value.claims
            }
            return usage
        }
    }

    func snapshot(takeover: String) async throws -> View {
        let date = now()
        let reply = try await redis.run(Scripts.snapshot, keys: scriptKeys, arguments: [
            Self.group, String(date.timeIntervalSince1970 - SchedulingPolicy.usageWindow),
        ])
        guard let parts = reply.array, parts.count == 5 else { throw RedisError.protocolViolation("the queue snapshot returned \(reply)") }
        let limit = Int64(takeover) ?? Int64.max
        var view = View()
        view.policy = policy ?? parts[4].string.flatMap { try? JSONCoding.decode(StoredPolicy.self, $0) }?.policy ?? .default
        view.newest = parts[3].string ?? "0-0"
        // Each group's oldest: {job, entry, ticket, group}.
        for head in parts[0].array ?? [] {
            guard let fields = head.array, fields.count == 4, let job = fields[0].string, let entry = fields[1].string else { continue }
            let ticket = fields[2].string.flatMap { decoded.ticket($0) }?.ticket(job)
                ?? QueueTicket(jobID: job, enqueuedAt: Self.date(of: entry))
            view.entries[job] = entry
            view.groups[job] = fields[3].string
            view.waiting.append(ClaimOrder.Candidate(ticket: ticket, seq: Self.seq(of: entry)))
        }
        // The pending list: {entry, consumer, idle ms, job, ticket, span}.
        for row in parts[1].array ?? [] {
            guard let fields = row.array, fields.count == 6, let entry = fields[0].string, let consumer = fields[1].string,
                  let idle = fields[2].int, let job = fields[3].string else { continue }
            let ticket = fields[4].string.flatMap { decoded.ticket($0) }?.ticket(job)
                ?? QueueTicket(jobID: job, enqueuedAt: Self.date(of: entry))
            let live = consumer != Self.released && idle < limit
            if live {
                view.held.insert(job)
                if let owner = ticket.owner { view.running[owner, default: 0] += 1 }
            } else {
                view.entries[job] = entry
                view.waiting.append(ClaimOrder.Candidate(ticket: ticket, seq: Self.seq(of: entry)))
            }
            if let span = fields[5].string.flatMap({ decoded.span($0) }), span.f == nil {
                // A claim its worker stopped renewing holds no GPU now.
                view.open.append(UsageSpan(owner: span.o, experiment: span.e, start: Date(timeIntervalSince1970: span.s), end: live ? nil : date))
            }
        }
        // Ended claims' GPU time: share NUL s|n -> seconds | claims.
        for (field, value) in Self.pairs(parts[2]) {
            guard let split = field.lastIndex(of: "\u{0}") else { continue }
            let share = String(field[..<split])
            switch field[field.index(after: split)...] {
            case "s": view.ended[share, default: ShareUsage()].seconds = max(0, Double(value) ?? 0)
            case "n": view.ended[share, default: ShareUsage()].claims = max(0, Int(value) ?? 0)
            default: break
            }
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
        if try await redis.run(Scripts.complete, keys: scriptKeys, arguments: [Self.group, jobID, time]).int == 1 { await signal.notify() }
    }

    public func release(_ jobID: String) async throws {
        if try await redis.run(Scripts.release, keys: scriptKeys, arguments: [Self.group, jobID, Self.released, time]).int == 1 {
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
        try await redis.run(Scripts.held, keys: scriptKeys,
                            arguments: [Self.group, worker, claim.jobID, String(claim.attempt), action, Self.released, time]).int == 1
    }

    public func cancel(_ jobID: String) async throws -> Bool {
        try await redis.run(Scripts.cancel, keys: scriptKeys, arguments: [Self.group, jobID, Self.released]).int == 1
    }

    /// Claims on Redis expire by lease; none is released wholesale.
    public func releaseAllClaims() async throws -> [String] { [] }

    public func claimant(of jobID: String) async throws -> String? {
        let name = try await redis.run(Scripts.claimant, keys: scriptKeys, arguments: [Self.group, jobID]).string
        return name == Self.released ? nil : name
    }

    public func waitingReason(of jobID: String) async throws -> String? {
        let view = try await snapshot(takeover: takeoverMilliseconds)
        guard !view.held.contains(jobID) else { return nil }
        guard let text = try await redis.send(["HGET", keys.tickets, jobID]).string,
              let ticket = try? JSONCoding.decode(StoredTicket.self, text).ticket(jobID) else { return nil }
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

/// Tickets and spans decoded from their JSON, kept by the JSON: a claim's
/// snapshot holds the same few strings as the last one, so each is decoded
/// once, not once a claim (the client shares the cores with Redis).
/// Emptied past 4,096 of each.
final class DecodedCache: Sendable {
    private let tickets = Mutex<[String: StoredTicket]>([:])
    private let spans = Mutex<[String: StoredSpan]>([:])

    func ticket(_ text: String) -> StoredTicket? { Self.lookup(text, in: tickets) }
    func span(_ text: String) -> StoredSpan? { Self.lookup(text, in: spans) }

    private static func lookup<T: Decodable & Sendable>(_ text: String, in cache: borrowing Mutex<[String: T]>) -> T? {
        if let known = cache.withLock({ $0[text] }) { return known }
        guard let value = try? JSONCoding.decode(T.self, text) else { return nil }
        cache.withLock {
            if $0.count >= 4096 { $0.removeAll(keepingCapacity: true) }
            $0[text] = value
        }
        return value
    }
}

/// A ticket as the queue keeps it in Redis (`RedisKeys.tickets`); short
/// keys, as the claim script reads `o` (the owner) for `--max-running`.
struct StoredTicket: Codable, Sendable {
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

    /// What its group shares: all but when it was queued (within a group the
    /// oldest always ranks first).
    var group: StoredTicket {
        var group = self
        group.t = 0
        return group
    }

    /// The same text as `JSONCoding.string(self)` (keys sorted, nil fields
    /// left out, numbers and escapes as JSONEncoder writes them, so a
    /// group's id is what older versions made it), written directly: an
    /// enqueue writes two, and JSONEncoder took a tenth of the queue
    /// client's CPU in `bench/redis_queue.sh`.
    var json: String {
        var out = "{\"e\":"
        JSONString.quote(e, JSONString.foundation, into: &out)
        if let gpu { out += ",\"gpu\":" + Self.number(gpu) }
        if let o {
            out += ",\"o\":"
            JSONString.quote(o, JSONString.foundation, into: &out)
        }
        out += ",\"p\":" + String(p) + ",\"t\":" + Self.number(t)
        if let tags {
            out += ",\"tags\":["
            for (index, tag) in tags.enumerated() {
                if index > 0 { out += "," }
                JSONString.quote(tag, JSONString.foundation, into: &out)
            }
            out += "]"
        }
        out += "}"
        return out
    }

    /// A finite number as JSONEncoder writes it: the shortest text that
    /// reads back the same, without a trailing `.0`.
    static func number(_ value: Double) -> String {
        let text = value.description
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
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
struct StoredSpan: Codable, Sendable {
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
    /// resources, its group), while it is queued.
    public var tickets: String { "\(prefix):queue:ticket" }
    /// Share (`u:owner`, `e:experiment`), NUL, `s` or `n` -> seconds of GPU
    /// time and claims that ended in the last 24 h.
    public var usage: String { "\(prefix):queue:usage" }
    /// The server's scheduling policy (JSON), for workers on other machines.
    public var policy: String { "\(prefix):queue:policy" }
    /// Claim (job id, NUL, attempt) -> its span of GPU time (JSON), until 24 h after it ended.
    public var spans: String { "\(prefix):queue:span" }
    /// Ended claims by when they ended (what leaves the window next).
    public var ended: String { "\(prefix):queue:ended" }
    /// Group (SHA-1 of what its jobs share) -> that, for the groups with waiting jobs.
    public var groups: String { "\(prefix):queue:groups" }
    /// A group's waiting jobs, by entry (oldest first): this prefix and the group.
    public var waitingPrefix: String { "\(prefix):queue:waiting:" }
    /// Stream entry -> the job it holds, while claimed (what a snapshot
    /// reads for each claim; the stream's own XRANGE cost five times more).
    public var claimed: String { "\(prefix):queue:claimed" }
    /// The keys the queue's scripts take, in their order (the tenth is the
    /// prefix of the groups' sets, which they name from it).
    var queue: [String] { [jobs, entries, attempts, tickets, usage, policy, spans, ended, groups, waitingPrefix, claimed] }
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
/// ticket hash, usage hash, policy, span hash, ended set, group hash, the
/// groups' waiting-set prefix, claimed hash. ARGV[1] is always the consumer group.
enum Scripts {
    /// What the scripts share: an entry id as a score (its order), a job's
    /// ticket, ending a claim's span (its GPU time then counts for its
    /// shares), putting a job back in its group, and forgetting a job. Lua
    /// strings hold the NUL between job id and attempt as any other byte.
    static let shared = """
        local function score(id)
          local ms, n = string.match(id, '^(%d+)-(%d+)$')
          return tonumber(ms) * 1000 + math.min(tonumber(n), 999)
        end
        local function ticketof(job)
          local text = redis.call('HGET', KEYS[4], job)
          if not text then return nil end
          return cjson.decode(text)
        end
        local function claimedjob(id)
          local job = redis.call('HGET', KEYS[11], id)
          if job then return job end
          local entry = redis.call('XRANGE', KEYS[1], id, id)
          if entry[1] then return entry[1][2][2] end
          return nil
        end
        local function shares(span)
          local owner = ''
          if type(span.o) == 'string' then owner = span.o end
          return {'u:' .. owner, 'e:' .. span.e}
        end
        local function endspan(job, now, attempt)
          attempt = attempt or redis.call('HGET', KEYS[3], job)
          if not attempt then return end
          local field = job .. '\\0' .. attempt
          local text = redis.call('HGET', KEYS[7], field)
          if not text then return end
          local span = cjson.decode(text)
          if type(span.f) == 'number' then return end
          span.f = now
          redis.call('HSET', KEYS[7], field, cjson.encode(span))
          redis.call('ZADD', KEYS[8], now, field)
          local seconds = math.max(0, now - span.s)
          for _, share in ipairs(shares(span)) do
            redis.call('HINCRBYFLOAT', KEYS[5], share .. '\\0s', seconds)
            redis.call('HINCRBY', KEYS[5], share .. '\\0n', 1)
          end
        end
        local function dropold(before, count)
          local old = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. before, 'LIMIT', 0, count)
          for _, field in ipairs(old) do
            local text = redis.call('HGET', KEYS[7], field)
            if text then
              local span = cjson.decode(text)
              local seconds = 0
              if type(span.f) == 'number' then seconds = math.max(0, span.f - span.s) end
              for _, share in ipairs(shares(span)) do
                redis.call('HINCRBYFLOAT', KEYS[5], share .. '\\0s', -seconds)
                if redis.call('HINCRBY', KEYS[5], share .. '\\0n', -1) <= 0 then
                  redis.call('HDEL', KEYS[5], share .. '\\0s', share .. '\\0n')
                end
              end
            end
            redis.call('HDEL', KEYS[7], field)
            redis.call('ZREM', KEYS[8], field)
          end
        end
        local function take(job, id, consumer, now, t)
          local owner = nil
          local experiment = 'default'
          if t then
            if type(t.o) == 'string' then owner = t.o end
            if type(t.e) == 'string' then experiment = t.e end
          end
          local attempt = redis.call('HINCRBY', KEYS[3], job, 1)
          -- a claim taken over, or released: its time so far counts
          if attempt > 1 then endspan(job, now, attempt - 1) end
          if t and type(t.g) == 'string' then redis.call('ZREM', KEYS[10] .. t.g, job) end
          redis.call('XCLAIM', KEYS[1], ARGV[1], consumer, 0, id, 'FORCE', 'JUSTID')
          redis.call('HSET', KEYS[11], id, job)
          local span = {j = job, e = experiment, s = now}
          if owner then span.o = owner end
          redis.call('HSET', KEYS[7], job .. '\\0' .. attempt, cjson.encode(span))
          return {'job', attempt, job}
        end
        local function requeue(job, id)
          redis.call('XACK', KEYS[1], ARGV[1], id)
          redis.call('HDEL', KEYS[11], id)
          local t = ticketof(job)
          if not t or type(t.g) ~= 'string' then
            -- queued by an older version: the default ticket
            t = {p = 5, e = 'default', t = tonumber(string.match(id, '^(%d+)')) / 1000, g = 'legacy'}
            redis.call('HSET', KEYS[4], job, cjson.encode(t))
          end
          redis.call('ZADD', KEYS[10] .. t.g, score(id), job)
          redis.call('HSET', KEYS[9], t.g, '1')
        end
        local function forget(job, id, claimed)
          redis.call('XACK', KEYS[1], ARGV[1], id)
          redis.call('HDEL', KEYS[11], id)
          redis.call('XDEL', KEYS[1], id)
          redis.call('HDEL', KEYS[2], job)
          if not claimed then
            -- a claimed job left its group when it was claimed
            local t = ticketof(job)
            if t and type(t.g) == 'string' then redis.call('ZREM', KEYS[10] .. t.g, job) end
          end
          redis.call('HDEL', KEYS[4], job)
        end

        """

    /// ARGV: group, job id, ticket (JSON), policy (JSON; '' from a queue
    /// without one), the ticket's group (JSON), placeholder consumer.
    /// Adds the job unless it is already queued; one queued by an older
    /// version (no ticket) gets its ticket and joins its group.
    static let enqueue = RedisScript(shared + """
        if ARGV[4] ~= '' then redis.call('SET', KEYS[6], ARGV[4]) end
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        local g = redis.sha1hex(ARGV[5])
        local t = cjson.decode(ARGV[3])
        t.g = g
        if id then
          if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return 0 end
          redis.call('HSET', KEYS[4], ARGV[2], cjson.encode(t))
          local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
          if pending[1] ~= nil and pending[1][2] ~= ARGV[6] then return 0 end
          if pending[1] ~= nil then redis.call('XACK', KEYS[1], ARGV[1], id) end
        else
          pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
          id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
          redis.call('HSET', KEYS[2], ARGV[2], id)
          redis.call('HSET', KEYS[4], ARGV[2], cjson.encode(t))
        end
        redis.call('ZADD', KEYS[10] .. g, score(id), ARGV[2])
        redis.call('HSET', KEYS[9], g, ARGV[5])
        return 1
        """)

    /// ARGV: group, start of the usage window (epoch seconds). What a claim
    /// ranks, read at one instant: {each group's oldest ({job, entry,
    /// ticket, group}, ...), the pending list ({entry, consumer, idle ms, job,
    /// ticket, span}, ...), the usage hash, the newest entry id, the
    /// published policy}. Drops the GPU time that left the window first.
    static let snapshot = RedisScript(shared + """
        dropold(ARGV[2], 1000)
        local heads = {}
        for _, g in ipairs(redis.call('HKEYS', KEYS[9])) do
          local first = redis.call('ZRANGE', KEYS[10] .. g, 0, 3)
          if first[1] == nil then redis.call('HDEL', KEYS[9], g) end
          for _, job in ipairs(first) do
            local id = redis.call('HGET', KEYS[2], job)
            if id then
              table.insert(heads, {job, id, redis.call('HGET', KEYS[4], job) or false, g})
              break
            end
            redis.call('ZREM', KEYS[10] .. g, job)
          end
        end
        local rows = {}
        local known, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', 1000000)
        if known then
          for _, held in ipairs(pending) do
            local job = claimedjob(held[1])
            if job then
              local attempt = redis.call('HGET', KEYS[3], job)
              local span = false
              if attempt then span = redis.call('HGET', KEYS[7], job .. '\\0' .. attempt) or false end
              table.insert(rows, {held[1], held[2], held[3], job, redis.call('HGET', KEYS[4], job) or false, span})
            end
          end
        end
        local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
        local last = '0-0'
        if newest[1] then last = newest[1][1] end
        return {heads, rows, redis.call('HGETALL', KEYS[5]), last, redis.call('GET', KEYS[6])}
        """)

    /// ARGV: group, consumer, job id, its entry id (as the snapshot saw
    /// it), takeover idle (ms), placeholder consumer, now (epoch seconds),
    /// per-user running limit ('' for none), the job's group ('' for a
    /// claim being taken over).
    /// Claims the job the caller ranked first if it still waits (in its
    /// group, released by an older version, or its claim idle past the
    /// takeover); if another worker took it meanwhile, the oldest job still
    /// waiting in its group, which ranks next (same priority, owner,
    /// experiment and resources): workers racing for one group cost no
    /// extra round trip. Then only if the owner is still under the limit.
    /// Returns {'job', attempt, job id}, {'taken'} (nothing of that group
    /// waits) or {'limit'}.
    static let claim = RedisScript(shared + """
        local job = ARGV[3]
        local id = redis.call('HGET', KEYS[2], job)
        local takeover = tonumber(ARGV[5])
        local t = ticketof(job)
        local free = id ~= false and id == ARGV[4]
        if free then
          local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
          if pending[1] ~= nil then
            free = pending[1][2] == ARGV[6] or pending[1][3] >= takeover
          elseif not t or type(t.g) ~= 'string' or not redis.call('ZSCORE', KEYS[10] .. t.g, job) then
            free = false
          end
        end
        if not free then
          if ARGV[9] == '' then return {'taken'} end
          local first = redis.call('ZRANGE', KEYS[10] .. ARGV[9], 0, 0)
          if first[1] == nil then return {'taken'} end
          job = first[1]
          id = redis.call('HGET', KEYS[2], job)
          if not id then return {'taken'} end
          t = ticketof(job)
          local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
          if pending[1] ~= nil and pending[1][2] ~= ARGV[6] and pending[1][3] < takeover then return {'taken'} end
        end
        local owner = nil
        if t and type(t.o) == 'string' then owner = t.o end
        if ARGV[8] ~= '' and owner then
          local limit = tonumber(ARGV[8])
          local running = 0
          for _, held in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000000)) do
            if held[1] ~= id and held[2] ~= ARGV[6] and held[3] < takeover then
              local other = claimedjob(held[1])
              if other then
                other = ticketof(other)
                if other and other.o == owner then running = running + 1 end
              end
            end
          end
          if running >= limit then return {'limit'} end
        end
        return take(job, id, ARGV[2], tonumber(ARGV[7]), t)
        """)

    /// ARGV: group, consumer, takeover idle (ms), placeholder consumer,
    /// now (epoch seconds), '1' when the caller has a policy of its own
    /// without a per-user limit ('' to read the published one), start of
    /// the usage window. The claim without a ranking, when there is
    /// nothing to rank: one group waits (the same priority, owner,
    /// experiment, so its oldest ranks first), it asks for no tags or GPU
    /// memory (any worker fits), no per-user limit applies, and no claim is
    /// idle past the takeover or released. Claims that group's oldest
    /// (a job in a group's set is never pending: it leaves the set when
    /// claimed and rejoins it only once acknowledged) and drops a few
    /// usage spans that left the window (the snapshot drops the rest).
    /// Returns {'job', attempt, job id}; {'none', newest entry id} when
    /// nothing waits at all (no group has a job, no claim is past the
    /// takeover, none released; or nothing was ever queued: no stream yet);
    /// else {'rank'}: the caller reads the snapshot and ranks.
    static let sole = RedisScript(shared + """
        local groups = redis.call('HKEYS', KEYS[9])
        if #groups > 1 then return {'rank'} end
        local function newest()
          local entry = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
          if entry[1] then return entry[1][1] end
          return '0-0'
        end
        local known, idle = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', 1)
        if not known then
          -- no stream or no group yet: nothing was queued, nothing is held
          if #groups == 0 then return {'none', newest()} end
          return {'rank'}
        end
        if idle[1] ~= nil then return {'rank'} end
        if redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[4])[1] ~= nil then return {'rank'} end
        local g = groups[1]
        local job = nil
        if g then
          job = redis.call('ZRANGE', KEYS[10] .. g, 0, 0)[1]
          -- the group's last job was claimed: it waits no more
          if job == nil then redis.call('HDEL', KEYS[9], g) end
        end
        if job == nil then return {'none', newest()} end
        if ARGV[6] == '' then
          local published = redis.call('GET', KEYS[6])
          if published and type(cjson.decode(published).maxRunningPerUser) == 'number' then return {'rank'} end
        end
        local id = redis.call('HGET', KEYS[2], job)
        if not id then return {'rank'} end
        local t = ticketof(job)
        if not t or t.g ~= g or t.tags ~= nil or t.gpu ~= nil then return {'rank'} end
        dropold(ARGV[7], 10)
        return take(job, id, ARGV[2], tonumber(ARGV[5]), t)
        """)

    /// ARGV: group, consumer, job id, attempt, action, placeholder consumer, now.
    /// When the consumer still holds this attempt: `renew` resets the
    /// entry's idle time, `finish` acknowledges and removes it, `release`
    /// puts it back in its group (in its old place). Returns 1, else 0.
    static let held = RedisScript(shared + """
        local id = redis.call('HGET', KEYS[2], ARGV[3])
        if not id then return 0 end
        if redis.call('HGET', KEYS[3], ARGV[3]) ~= ARGV[4] then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] ~= ARGV[2] then return 0 end
        if ARGV[5] == 'finish' then
          endspan(ARGV[3], tonumber(ARGV[7]), ARGV[4])
          forget(ARGV[3], id, true)
        elseif ARGV[5] == 'release' then
          endspan(ARGV[3], tonumber(ARGV[7]), ARGV[4])
          requeue(ARGV[3], id)
        else
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
        end
        return 1
        """)

    /// ARGV: group, job id, now. Removes the job whoever holds it.
    static let complete = RedisScript(shared + """
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        endspan(ARGV[2], tonumber(ARGV[3]))
        forget(ARGV[2], id)
        return 1
        """)

    /// ARGV: group, job id, placeholder consumer, now. Puts a claimed job
    /// back in its place. Returns 1 when it was claimed.
    static let release = RedisScript(shared + """
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] == nil or pending[1][2] == ARGV[3] then return 0 end
        endspan(ARGV[2], tonumber(ARGV[4]))
        requeue(ARGV[2], id)
        return 1
        """)

    /// ARGV: group, job id, placeholder consumer. Removes the job if no
    /// worker holds it. Returns 1 when it was waiting.
    static let cancel = RedisScript(shared + """
        local id = redis.call('HGET', KEYS[2], ARGV[2])
        if not id then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
        if pending[1] ~= nil and pending[1][2] ~= ARGV[3] then return 0 end
        forget(ARGV[2], id)
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
