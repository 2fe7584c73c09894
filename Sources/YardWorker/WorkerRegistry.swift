import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import YardDomain
import YardQueue
import YardRedis
import YardStore

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
        case leaseSeconds = "lease_seconds", gpuError = "gpu_error"
    }

    /// As seen at `now`: lost once it expired.
    public func seen(at now: Date) -> WorkerInfo {
        var info = self
        if now > expiresAt { info.status = .lost }
        return info
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

/// The GPUs' stats from the last heartbeat, shared with whoever reports
/// them between heartbeats (wyolo's progress hash).
public final class GPUReadings: Sendable {
    private let latest = Mutex<[GPUStats]>([])
    public init() {}
    public var current: [GPUStats] { latest.withLock { $0 } }
    func record(_ gpus: [GPUStats]) { latest.withLock { $0 = gpus } }
}

/// Announces workers while they run: at start, then every `interval` with
/// the job each runs and, where nvidia-smi is present, its GPU's
/// utilisation, memory and temperature. On shutdown they are removed.
public struct WorkerPresence: Service {
    public struct Entry: Sendable {
        public var worker: Worker
        public var info: WorkerInfo
        /// The GPU it is pinned to (its stats only); nil: all of them.
        public var gpu: Int?

        public init(worker: Worker, info: WorkerInfo, gpu: Int? = nil) {
            self.worker = worker
            self.info = info
            self.gpu = gpu
        }
    }

    let registry: any WorkerRegistry
    let entries: [Entry]
    let interval: Duration
    let nvidiaSMI: NvidiaSMI?
    let readings: GPUReadings
    let logger: Logger

    public init(registry: any WorkerRegistry, entries: [Entry], interval: Duration = .seconds(5), nvidiaSMI: NvidiaSMI? = NvidiaSMI(),
                readings: GPUReadings = GPUReadings(), logger: Logger) {
        self.registry = registry
        self.entries = entries
        self.interval = interval
        self.nvidiaSMI = nvidiaSMI
        self.readings = readings
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    try await announce()
                    if failing { logger.notice("worker heartbeats reach the registry again") }
                    failing = false
                } catch {
                    if !failing { logger.warning("cannot announce the workers (\(error)); retrying every \(interval)") }
                    failing = true
                }
                await nextBeat()
            }
        }
        for entry in entries { try? await registry.remove(entry.info.id) }
    }

    /// Waits for the next heartbeat: the interval, or less when a worker
    /// took or finished a job (the list shows it at once, not a beat later).
    private func nextBeat() async {
        let jobs = entries.map { $0.worker.currentJobs }
        let deadline = ContinuousClock.now + interval
        while ContinuousClock.now < deadline, !Task.isCancelled, entries.map({ $0.worker.currentJobs }) == jobs {
            try? await Task.sleep(for: min(.milliseconds(200), deadline - .now))
        }
    }

    /// One heartbeat for every worker of this process.
    public func announce() async throws {
        var gpus: [GPUStats] = []
        var gpuError: String?
        if let nvidiaSMI {
            do { gpus = try await nvidiaSMI.sample() ?? [] } catch { gpuError = error.description }
        }
        readings.record(gpus)
        let now = Date()
        for entry in entries {
            var info = entry.info
            info.job = entry.worker.currentJobs.first
            info.status = info.job == nil ? .idle : .busy
            info.heartbeatAt = now
            info.expiresAt = now.addingTimeInterval(3 * interval.timeInterval)
            info.gpus = entry.gpu.map { pinned in gpus.filter { $0.index == pinned } } ?? gpus
            info.gpuError = gpuError
            try await registry.announce(info)
        }
    }
}
