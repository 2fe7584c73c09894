import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import YardArtifacts
import YardDomain
import YardEngine
import YardQueue
import YardStore
import YardTracker

/// A worker: claims one job at a time from the queue, runs the engine on it,
/// and turns the engine's events into records. On graceful shutdown it stops
/// its engine at a checkpoint and puts the job back in the queue, so the
/// next start resumes it.
public struct Worker: Service {
    public struct Configuration: Sendable {
        public var id: String
        /// Run folders (`runs/JOB`) and job folders (`jobs/JOB`) live here.
        public var dataDirectory: String
        /// How long a stopping engine may take before it is killed.
        public var stopGrace: Duration
        /// Train args this worker imposes over the job's (its GPU as `device`).
        public var trainOverrides: [String: JSONValue]
        /// Whether a dataset may hold symlinks to files outside its folder.
        public var allowExternalSymlinks: Bool
        /// Times the stop grace, retry backoff and idle waits (tests inject a manual clock).
        public var clock: any Clock<Duration>
        /// Waits between tries to record how an attempt ended; after the last
        /// the settlement is kept and retried before the next claim.
        public var settleBackoff: [Duration]
        /// How often a claim with a lease is renewed while its job runs
        /// (nil: a third of the queue's lease).
        public var heartbeat: Duration?
        /// `--tags`: it claims only jobs whose `resources.tags` are all among them.
        public var tags: [String] = []
        /// Its GPUs as the last heartbeat read them (the free memory a job's
        /// `resources.gpu_memory_gb` needs); nil or empty: no GPU stats, so
        /// it claims no job that asks for GPU memory.
        public var gpus: (@Sendable () -> [GPUStats])?

        public init(id: String, dataDirectory: String, stopGrace: Duration = .seconds(120),
                    trainOverrides: [String: JSONValue] = [:], allowExternalSymlinks: Bool = false,
                    clock: any Clock<Duration> = ContinuousClock(),
                    settleBackoff: [Duration] = [.milliseconds(250), .seconds(1), .seconds(2), .seconds(4)]) {
            self.id = id
            self.dataDirectory = dataDirectory
            self.stopGrace = stopGrace
            self.trainOverrides = trainOverrides
            self.allowExternalSymlinks = allowExternalSymlinks
            self.clock = clock
            self.settleBackoff = settleBackoff
        }
    }

    public let configuration: Configuration
    /// Where the worker reads and records its jobs (the seam to the server).
    public let ledger: any JobLedger
    let queue: any JobQueue
    let runner: any EngineRunner
    let trackers: [any Tracker]
    let artifacts: any ArtifactStore
    let logger: Logger
    /// Attempts that ended but could not yet be recorded as ended.
    let unsettled: Locked<[String: Settlement]>
    /// The claims this worker holds, by job: its queue operations on a job
    /// are fenced by them (with a lease, a stale worker cannot complete or
    /// release the attempt that took the job over).
    let claims: Locked<[String: QueueClaim]>
    /// Signalled when this worker takes or lets go of a job (its presence
    /// announces it at once rather than a heartbeat later).
    public let jobsChanged = Wakeup()

    public init(configuration: Configuration, ledger: any JobLedger, queue: any JobQueue, runner: any EngineRunner,
                trackers: [any Tracker], artifacts: any ArtifactStore, logger: Logger) {
        self.configuration = configuration
        self.ledger = ledger
        self.queue = queue
        self.runner = runner
        self.trackers = trackers
        self.artifacts = artifacts
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.id)"  // on every line this worker logs
        self.logger = logger
        self.unsettled = Locked([:])
        self.claims = Locked([:])
    }

    /// The same worker with a changed configuration.
    public func reconfigured(_ change: (inout Configuration) -> Void) -> Worker {
        var configuration = configuration
        change(&configuration)
        return Worker(configuration: configuration, ledger: ledger, queue: queue, runner: runner, trackers: trackers, artifacts: artifacts, logger: logger)
    }

    /// What it offers the queue now: its tags and its GPU's free memory.
    public var capacity: WorkerCapacity { WorkerCapacity(tags: configuration.tags, gpus: configuration.gpus?() ?? []) }

    /// The jobs this worker runs now (one at a time).
    public var currentJobs: [String] { claims.withLock { $0.keys.sorted() } }

    /// Jobs whose end this worker could not record yet (it keeps retrying).
    public var unsettledJobs: [String] { unsettled.withLock { $0.keys.sorted() } }

    public func run() async throws {
        let shutdown = ShutdownFlag()
        // A warm engine for the first job, ended when the worker stops.
        await runner.prepare()
        await withGracefulShutdownHandler {
            var failures = 0
            while !shutdown.isSet, !Task.isCancelled {
                do {
                    // A job whose end could not be recorded comes before new work.
                    guard await settleLeftovers() else { throw YardError(.unavailable, "cannot record how a job ended; retrying") }
                    if let claim = try await queue.claim(worker: configuration.id, capacity: capacity) {
                        try await attempt(claim, shutdown: shutdown)
                    } else {
                        await queue.waitForWork(timeout: .seconds(1))
                    }
                    failures = 0
                } catch {
                    failures += 1
                    logger.error("worker \(configuration.id): \(error)")
                    try? await configuration.clock.sleep(for: .milliseconds(500 * (1 << min(failures, 4))))
                }
            }
            _ = await settleLeftovers()
        } onGracefulShutdown: {
            shutdown.set()
        }
        await runner.close()
    }

    /// Runs until the queue is empty, then returns (tests).
    public func drain() async throws {
        let shutdown = ShutdownFlag()
        while let claim = try await queue.claim(worker: configuration.id, capacity: capacity) {
            try await attempt(claim, shutdown: shutdown)
        }
        guard await settleLeftovers() else { throw YardError(.unavailable, "cannot record how a job ended: \(unsettled.withLock { $0.keys.sorted() })") }
    }

    /// Runs one claimed attempt; the ledger keeps it until it is settled.
    /// With a queue lease, the claim is renewed while the job runs; if it
    /// turns out lost, the attempt is ended without recording anything.
    private func attempt(_ claim: QueueClaim, shutdown: ShutdownFlag) async throws {
        try await ledger.begin(claim)
        claims.withLock { $0[claim.jobID] = claim }
        jobsChanged.signal()
        logger.info("job \(claim.jobID): attempt \(claim.attempt) starts")
        let lost = ShutdownFlag()
        let run = JobRun(worker: self, jobID: claim.jobID, shutdown: shutdown, lost: lost)
        await withTaskGroup(of: Void.self) { group in
            if let lease = queue.lease {
                group.addTask { await heartbeat(claim, every: configuration.heartbeat ?? lease / 3, lost: lost) }
            }
            await run.execute()
            group.cancelAll()
        }
        let settled = unsettled.withLock { $0[claim.jobID] == nil }
        logger.info("job \(claim.jobID): attempt \(claim.attempt) ended\(settled ? "" : "; how it ended is not recorded yet (retrying)")")
        if settled { await forget(claim.jobID) }
    }

    private func forget(_ jobID: String) async {
        claims.withLock { _ = $0.removeValue(forKey: jobID) }
        jobsChanged.signal()
        await ledger.end(jobID)
    }

    /// Takes the job out of the queue: with a lease only if this worker
    /// still holds its attempt (false otherwise; the holder decides).
    @discardableResult
    func completeClaim(_ jobID: String) async throws -> Bool {
        guard queue.lease != nil, let claim = claims.withLock({ $0[jobID] }) else {
            try await queue.complete(jobID)
            return true
        }
        return try await queue.finish(claim, worker: configuration.id)
    }

    /// Puts the job back in the queue, unless (with a lease) another
    /// attempt holds it now.
    func releaseClaim(_ jobID: String) async throws {
        guard queue.lease != nil, let claim = claims.withLock({ $0[jobID] }) else {
            try await queue.release(jobID)
            return
        }
        if try await !queue.release(claim, worker: configuration.id) {
            logger.warning("job \(jobID): not putting it back in the queue; attempt \(claim.attempt) no longer holds it")
        }
    }

    /// Whether this worker still holds the job's attempt, asked of the queue
    /// (true without a lease). Before it writes where the next attempt reads
    /// (the checkpoint in the artifact store): a worker that was paused past
    /// its lease must not overwrite the newer attempt's. Sets `lost` when
    /// another attempt holds it; false too when the queue cannot say.
    func confirmClaim(_ jobID: String, lost: ShutdownFlag) async -> Bool {
        guard queue.lease != nil, let claim = claims.withLock({ $0[jobID] }) else { return true }
        do {
            // The reports before the checkpoint first: a takeover resuming
            // from it must find every epoch it contains recorded.
            try await ledger.flush(jobID)
            if try await queue.renew(claim, worker: configuration.id) { return true }
            logger.error("job \(jobID): attempt \(claim.attempt) lost its claim (another worker took it over); stopping the engine")
            lost.set()
        } catch {
            logger.warning("job \(jobID): cannot confirm the claim (\(error)); not writing where the next attempt reads")
        }
        return false
    }

    /// Renews the claim until cancelled; sets `lost` when the queue says
    /// another attempt holds the job. An unreachable queue is retried: the
    /// lease decides, and the next renewal that gets through says.
    private func heartbeat(_ claim: QueueClaim, every interval: Duration, lost: ShutdownFlag) async {
        var failing = false
        while !Task.isCancelled {
            do { try await configuration.clock.sleep(for: interval) } catch { return }
            do {
                if try await queue.renew(claim, worker: configuration.id) == false {
                    logger.error("job \(claim.jobID): attempt \(claim.attempt) lost its claim (not renewed within the lease, another worker took it); stopping the engine")
                    lost.set()
                    return
                }
                failing = false
            } catch {
                if !failing { logger.warning("job \(claim.jobID): cannot renew the claim (\(error)); retrying") }
                failing = true
            }
        }
    }

    /// Records how an attempt ended, retrying with backoff (the store may be
    /// briefly unwritable); if it still cannot, keeps it for `settleLeftovers`.
    func settle(_ jobID: String, _ settlement: Settlement) async {
        var waits = configuration.settleBackoff[...]
        var settlement = settlement
        while true {
            do {
                try await conclude(jobID, &settlement)
                return
            } catch {
                guard let wait = waits.popFirst() else {
                    logger.error("job \(jobID): cannot record that it \(settlement.state.rawValue) (\(error)); will retry")
                    unsettled.withLock { $0[jobID] = settlement }
                    return
                }
                try? await configuration.clock.sleep(for: wait)
            }
        }
    }

    /// Retries the settlements that could not be written; true when none is left.
    func settleLeftovers() async -> Bool {
        for (jobID, left) in unsettled.withLock({ $0 }) {
            var settlement = left
            do {
                try await conclude(jobID, &settlement)
                unsettled.withLock { $0[jobID] = nil }
                await forget(jobID)
            } catch {
                unsettled.withLock { $0[jobID] = settlement }
                logger.warning("job \(jobID): still cannot record that it \(settlement.state.rawValue): \(error)")
            }
        }
        return unsettled.withLock { $0.isEmpty }
    }

    /// Moves the job to the settlement's state (unless it already ended) and
    /// releases its claim: back to the queue when requeued, else removed. A
    /// job that never started stays queued for another attempt. Retried
    /// until it gets through: the move is recorded once (`settlement.ended`),
    /// and the later steps (the reports reaching the server, the claim, the
    /// tracking run's end) run on the next try.
    private func conclude(_ jobID: String, _ settlement: inout Settlement) async throws {
        if settlement.ended == nil {
            // This worker's copy: for a remote worker, no round trip to Redis.
            guard let job = try await ledger.current(jobID) else {
                try await completeClaim(jobID)
                return
            }
            if job.state == .queued {
                try await ledger.flush(jobID)
                try await releaseClaim(jobID)
                return
            }
            if !job.state.isTerminal {
                settlement.ended = try await ledger.move(jobID, to: settlement.state, message: settlement.message)
            }
        }
        let ended = settlement.ended
        // The claim ends only once the server can read how the attempt went.
        try await ledger.flush(jobID)
        var held = true
        if settlement.state == .queued && ended != nil {
            try await releaseClaim(jobID)
        } else {
            held = try await completeClaim(jobID)
        }
        // Only the attempt that holds the job ends its tracking run.
        if let ended, held {
            for tracker in trackers {
                do { try await tracker.endRun(ended) } catch { logger.warning("job \(jobID): tracker call failed: \(error)") }
            }
        }
    }
}

/// How an attempt ended: the job's next state and why.
struct Settlement: Sendable, Equatable {
    var state: JobState
    var message: String
    /// The job as this worker moved it to `state`, once that is recorded
    /// (a retry does not move it again, and still ends its tracking run).
    var ended: Job? = nil
}

/// Set once, read from anywhere.
final class ShutdownFlag: Sendable {
    private struct State {
        var value = false
        var nextToken = 0
        var onSet: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    var isSet: Bool { state.withLock { $0.value } }

    func set() {
        let callbacks = state.withLock { state -> [@Sendable () -> Void] in
            state.value = true
            defer { state.onSet = [:] }
            return Array(state.onSet.values)
        }
        callbacks.forEach { $0() }
    }

    /// Runs `callback` when the flag is set (at once if it already is).
    /// Returns a token for `cancel`, so a finished job leaves nothing behind.
    @discardableResult
    func whenSet(_ callback: @escaping @Sendable () -> Void) -> Int {
        let (now, token) = state.withLock { state -> (Bool, Int) in
            state.nextToken += 1
            if state.value { return (true, state.nextToken) }
            state.onSet[state.nextToken] = callback
            return (false, state.nextToken)
        }
        if now { callback() }
        return token
    }

    func cancel(_ token: Int) {
        state.withLock { _ = $0.onSet.removeValue(forKey: token) }
    }
}
