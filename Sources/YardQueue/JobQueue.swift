import YardDomain

/// The work queue between the server and the workers. A job id is enqueued
/// once; `claim` hands it to exactly one worker; `complete` removes it;
/// `release` puts it back (a worker that stops or dies mid-job).
/// Drivers: `SQLiteJobQueue` (embedded, survives restarts), `MemoryJobQueue`.
public protocol JobQueue: Sendable {
    func enqueue(_ jobID: String) async throws
    /// The oldest unclaimed job, now claimed by `worker`; nil when none waits.
    func claim(worker: String) async throws -> String?
    func complete(_ jobID: String) async throws
    func release(_ jobID: String) async throws
    /// Removes a job that has not been claimed (a stop before it started);
    /// true when it was waiting.
    func cancel(_ jobID: String) async throws -> Bool
    /// Releases every claim: at start-up of the process that owns the
    /// embedded queue, no earlier claim can still be alive. Returns the ids.
    func releaseAllClaims() async throws -> [String]
    /// The worker holding a claim on the job; nil when it waits or is not queued.
    func claimant(of jobID: String) async throws -> String?
    /// Suspends until something may have been enqueued, or `timeout` passes.
    func waitForWork(timeout: Duration) async
}
