import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import YardDomain
import YardQueue

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
    /// What the process holds that has not left it (reports for Redis, its
    /// tracking spool), sent with each heartbeat; nil: nothing to tell.
    let backlog: (@Sendable () async -> WorkerBacklog?)?
    let logger: Logger

    public init(registry: any WorkerRegistry, entries: [Entry], interval: Duration = .seconds(5), nvidiaSMI: NvidiaSMI? = NvidiaSMI(),
                readings: GPUReadings = GPUReadings(), backlog: (@Sendable () async -> WorkerBacklog?)? = nil, logger: Logger) {
        self.backlog = backlog
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
        await withTaskGroup(of: Void.self) { group in
            for entry in entries { group.addTask { await entry.worker.jobsChanged.wait() } }
            group.addTask { [interval] in try? await Task.sleep(for: interval) }
            await group.next()
            group.cancelAll()
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
        let backlog = await backlog?()
        let now = Date()
        for entry in entries {
            var info = entry.info
            info.job = entry.worker.currentJobs.first
            info.status = info.job == nil ? .idle : .busy
            info.heartbeatAt = now
            info.expiresAt = now.addingTimeInterval(3 * interval.timeInterval)
            info.gpus = entry.gpu.map { pinned in gpus.filter { $0.index == pinned } } ?? gpus
            info.gpuError = gpuError
            info.backlog = backlog
            try await registry.announce(info)
        }
    }
}
