import YardDomain

/// A job handed to one worker: which job, and which attempt at it. The
/// attempt number fences a worker that lost its claim (it was paused or cut
/// off past its lease and the job went to another worker): whatever it
/// still sends carries an older attempt and is dropped.
public struct QueueClaim: Sendable, Hashable, CustomStringConvertible {
    public var jobID: String
    public var attempt: Int

    public init(jobID: String, attempt: Int) {
        self.jobID = jobID
        self.attempt = attempt
    }

    public var description: String { "\(jobID) (attempt \(attempt))" }
}

/// The work queue between the server and the workers. A job id is enqueued
/// once; `claim` hands it to exactly one worker; `complete` removes it;
/// `release` puts it back (a worker that stops or dies mid-job).
/// Drivers: `SQLiteJobQueue` (embedded, survives restarts), `MemoryJobQueue`,
/// `RedisJobQueue` (workers on other machines; claims expire after a lease).
public protocol JobQueue: Sendable {
    /// Queues the job with what orders it (priority, owner, experiment,
    /// when). A job already queued or claimed is left as it is.
    func enqueue(_ ticket: QueueTicket) async throws
    /// The next unclaimed job that fits `capacity` (`Routing.fits`: the
    /// worker's tags and free GPU memory) as `ClaimOrder` ranks it (priority,
    /// aging, fair share, then first in first out), now claimed by `worker`;
    /// nil when none waits. With a lease, a job whose worker stopped renewing
    /// its claim for longer than the lease counts as unclaimed (a new attempt).
    func claim(worker: String, capacity: WorkerCapacity) async throws -> QueueClaim?
    /// Keeps `worker`'s claim alive (a heartbeat). False when the worker no
    /// longer holds it: the job was reclaimed, completed or cancelled.
    func renew(_ claim: QueueClaim, worker: String) async throws -> Bool
    /// Completes the job if `worker` still holds this claim; false (and
    /// nothing changes) when it does not.
    func finish(_ claim: QueueClaim, worker: String) async throws -> Bool
    func complete(_ jobID: String) async throws
    func release(_ jobID: String) async throws
    /// Puts the job back in the queue if `worker` still holds this claim,
    /// in one step (a check, then a release, could put back the attempt
    /// that took the job over in between); false when it does not.
    func release(_ claim: QueueClaim, worker: String) async throws -> Bool
    /// Removes a job that has not been claimed (a stop before it started);
    /// true when it was waiting.
    func cancel(_ jobID: String) async throws -> Bool
    /// Releases every claim: at start-up of the process that owns the
    /// embedded queue, no earlier claim can still be alive. Returns the ids.
    /// A queue with a lease returns [] (its claims expire on their own).
    func releaseAllClaims() async throws -> [String]
    /// The worker holding a claim on the job; nil when it waits or is not queued.
    func claimant(of jobID: String) async throws -> String?
    /// Suspends until something may have been enqueued, or `timeout` passes.
    func waitForWork(timeout: Duration) async
    /// Why a waiting job is not claimed although it could be next (a user's
    /// `--max-running` reached, or no live worker has the tags or free GPU
    /// memory its `resources:` ask for), one line starting "waiting: "; nil
    /// when nothing holds it back, or it is not waiting.
    func waitingReason(of jobID: String) async throws -> String?
    /// How long a claim lives without a renewal; nil when claims live until
    /// released (the embedded queue, owned by one process).
    var lease: Duration? { get }
}

extension JobQueue {
    /// Claims as a worker with no tags and no GPU stats: only jobs that ask
    /// for no resources.
    public func claim(worker: String) async throws -> QueueClaim? { try await claim(worker: worker, capacity: .plain) }

    /// Queues a job with the default priority and no owner.
    public func enqueue(_ jobID: String) async throws { try await enqueue(QueueTicket(jobID: jobID)) }
}

extension WorkerRegistry {
    /// What the live workers offer, for the reason a routed job waits.
    func capacities() async throws -> [WorkerCapacity] { try await workers().compactMap(\.routingCapacity) }
}
