import Foundation
import Synchronization
import YardDomain
import YardStore
import YardRedis

/// A worker as it announces itself: where it runs, on what, what it is
/// doing, and when it last said so. `yard workers` and `GET /api/workers`
/// list these.
public struct WorkerInfo: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        /// Heartbeating, no job.
        case idle
        /// Heartbeating, running `job`.
        case busy
        /// No heartbeat for three intervals: the process died, hangs or was
        /// cut off (its job is reclaimed when the queue lease runs out).
        case lost
    }

    public var id: String
    public var host: String
    public var pid: Int32
    /// `cpu`, `cuda:N` (pinned with `--gpu N`) or `auto` (what each job says).
    public var device: String
    /// The engine's versions (python, ultralytics, torch), when known.
    public var versions: [String: String]
    /// The job it runs now.
    public var job: String?
    public var status: Status
    public var startedAt: Date
    public var heartbeatAt: Date
    /// When it counts as lost if no heartbeat came.
    public var expiresAt: Date
    /// The queue lease in seconds (workers over Redis).
    public var leaseSeconds: Double?
    /// Its GPUs as nvidia-smi read them at the last heartbeat (its own GPU
    /// when pinned); empty without a GPU.
    public var gpus: [GPUStats]
    /// Why the GPU stats are missing, when nvidia-smi failed.
    public var gpuError: String?
    /// What its process holds that has not left it yet (`/metrics`).
    public var backlog: WorkerBacklog?
    /// `yard worker --tags`: a job's `resources.tags` must all be among them
    /// (nil: none; announcements from before tags had none).
    public var tags: [String]?

    public init(id: String, host: String, pid: Int32, device: String, versions: [String: String] = [:], startedAt: Date,
                leaseSeconds: Double? = nil) {
        self.id = id
        self.host = host
        self.pid = pid
        self.device = device
        self.versions = versions
        self.status = .idle
        self.startedAt = startedAt
        self.heartbeatAt = startedAt
        self.expiresAt = startedAt
        self.leaseSeconds = leaseSeconds
        self.gpus = []
    }

    enum CodingKeys: String, CodingKey {
        case id, host, pid, device, versions, job, status, gpus
        case startedAt = "started_at", heartbeatAt = "heartbeat_at", expiresAt = "expires_at"
        case leaseSeconds = "lease_seconds", gpuError = "gpu_error", backlog, tags
    }

    /// What it offers a job waiting for routing, as far as the queue can
    /// tell: idle, its GPUs' free memory now; busy, their whole memory (its
    /// own job's share frees when that ends). Nil once lost.
    public var routingCapacity: WorkerCapacity? {
        guard status != .lost else { return nil }
        return WorkerCapacity(tags: tags ?? [], gpus: gpus, whole: status == .busy)
    }

    /// As seen at `now`: lost once it expired.
    public func seen(at now: Date) -> WorkerInfo {
        var info = self
        if now > expiresAt { info.status = .lost }
        return info
    }
}

/// What a worker's process holds that has not reached the server or MLflow
/// yet, sent with each heartbeat: its reports waiting for Redis (workers over
/// Redis) and its tracking spool (workers on other machines; local workers
/// share the server's spool and leave those nil).
public struct WorkerBacklog: Sendable, Codable, Equatable {
    /// Reports in the outbox that Redis has not taken yet.
    public var reports: Int?
    /// MLflow calls spooled and not sent yet.
    public var spoolOperations: Int?
    /// How long the oldest of them has waited.
    public var spoolOldestSeconds: Double?

    public init(reports: Int? = nil, spoolOperations: Int? = nil, spoolOldestSeconds: Double? = nil) {
        self.reports = reports
        self.spoolOperations = spoolOperations
        self.spoolOldestSeconds = spoolOldestSeconds
    }

    enum CodingKeys: String, CodingKey {
        case reports, spoolOperations = "spool_operations", spoolOldestSeconds = "spool_oldest_seconds"
    }
}

/// Where workers announce themselves. Drivers: `MemoryWorkerRegistry`
/// (`yard up`: the workers share the server's process) and
/// `RedisWorkerRegistry` (workers on other machines).
public protocol WorkerRegistry: Sendable {
    /// Records the worker as it is now (replacing what it said before).
    func announce(_ info: WorkerInfo) async throws
    /// The worker left (a graceful shutdown).
    func remove(_ id: String) async throws
    /// Every worker known, lost ones marked, sorted by id.
    func workers() async throws -> [WorkerInfo]
}

public final class MemoryWorkerRegistry: WorkerRegistry {
    private let entries = Mutex<[String: WorkerInfo]>([:])

    public init() {}

    public func announce(_ info: WorkerInfo) async throws { entries.withLock { $0[info.id] = info } }
    public func remove(_ id: String) async throws { entries.withLock { _ = $0.removeValue(forKey: id) } }
    public func workers() async throws -> [WorkerInfo] {
        let now = Date()
        return entries.withLock { Array($0.values) }.map { $0.seen(at: now) }.sorted { $0.id < $1.id }
    }
}

/// Workers in one Redis hash (`RedisKeys.workers`: id -> JSON). An entry
/// lost for longer than `forgetAfter` is dropped when listed.
public struct RedisWorkerRegistry: WorkerRegistry {
    let redis: RedisClient
    let keys: RedisKeys
    let forgetAfter: TimeInterval

    public init(redis: RedisClient, keys: RedisKeys = RedisKeys(), forgetAfter: TimeInterval = 24 * 3600) {
        self.redis = redis
        self.keys = keys
        self.forgetAfter = forgetAfter
    }

    public func announce(_ info: WorkerInfo) async throws {
        try await redis.send(["HSET", keys.workers, info.id, try JSONCoding.string(info)])
    }

    public func remove(_ id: String) async throws {
        try await redis.send(["HDEL", keys.workers, id])
    }

    public func workers() async throws -> [WorkerInfo] {
        let reply = try await redis.send(["HGETALL", keys.workers]).array ?? []
        let now = Date()
        var workers: [WorkerInfo] = []
        var forgotten: [String] = []
        var index = 0
        while index + 1 < reply.count {
            defer { index += 2 }
            guard let id = reply[index].string else { continue }
            guard let text = reply[index + 1].string, let info = try? JSONCoding.decode(WorkerInfo.self, text) else {
                forgotten.append(id)
                continue
            }
            if now.timeIntervalSince(info.expiresAt) > forgetAfter {
                forgotten.append(id)
            } else {
                workers.append(info.seen(at: now))
            }
        }
        if !forgotten.isEmpty { _ = try? await redis.send(["HDEL", keys.workers] + forgotten) }
        return workers.sorted { $0.id < $1.id }
    }
}

