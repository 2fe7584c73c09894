import Foundation
import GRDB
import YardDomain
import YardStore

/// The embedded queue: a table in the same SQLite file as the store. SQLite
/// serialises writers, so a claim (select the oldest unclaimed row and mark
/// it in one transaction) can never hand one job to two workers. Which row
/// is next is `ClaimOrder`'s to say, the same as for every driver.
public final class SQLiteJobQueue: JobQueue {
    private let db: YardDatabase
    private let signal: WorkSignal
    private let now: @Sendable () -> Date
    private let policy: SchedulingPolicy
    /// Where the workers that claim from it announce themselves (the reason
    /// a job no live worker can take waits); nil: not told.
    private let workers: (any WorkerRegistry)?

    public init(database: YardDatabase, clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
                policy: SchedulingPolicy = .default, workers: (any WorkerRegistry)? = nil) {
        self.db = database
        self.signal = WorkSignal(clock: clock)
        self.now = now
        self.policy = policy
        self.workers = workers
    }

    public func enqueue(_ ticket: QueueTicket) async throws {
        try await db.write { db in
            let seq = (try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM queue") ?? 0) + 1
            try db.execute(sql: """
                INSERT INTO queue (job_id, seq, priority, owner, experiment, enqueued_at, tags, gpu_memory_gb) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(job_id) DO NOTHING
                """, arguments: [ticket.jobID, seq, ticket.priority, ticket.owner, ticket.experiment, ticket.enqueuedAt.timeIntervalSince1970,
                                  ticket.resources.tags.joined(separator: ","), ticket.resources.gpuMemoryGB])
        }
        await signal.notify()
    }

    /// The claim of `id` ended: its GPU time so far counts for fair share.
    private static func ended(_ db: Database, _ id: String, at time: Double) throws {
        try db.execute(sql: "UPDATE queue_usage SET ended_at = ? WHERE job_id = ? AND ended_at IS NULL", arguments: [time, id])
    }

    static func resources(_ row: Row) -> JobResources {
        let tags: String = row["tags"]
        return JobResources(tags: tags.split(separator: ",").map(String.init), gpuMemoryGB: row["gpu_memory_gb"])
    }

    /// The next waiting job for a worker offering `capacity` as `ClaimOrder`
    /// ranks it (inside the claim's transaction).
    private func next(_ db: Database, at time: Double, capacity: WorkerCapacity) throws -> ClaimOrder.Candidate? {
        // Within one priority, owner, experiment and resources the oldest job
        // always ranks first (seq and enqueued_at grow together), so only each
        // group's oldest is a candidate: a long queue costs one grouped scan
        // in SQLite, not a row each in Swift (SQLite takes a bare column's
        // value from the row MIN chose).
        let rows = try Row.fetchAll(db, sql: """
            SELECT job_id, MIN(seq) AS seq, priority, owner, experiment, enqueued_at, tags, gpu_memory_gb FROM queue WHERE claimed_by IS NULL
            GROUP BY priority, owner, experiment, tags, gpu_memory_gb
            """)
        let candidates = rows.map { row in
            ClaimOrder.Candidate(ticket: QueueTicket(jobID: row["job_id"], priority: row["priority"], owner: row["owner"], experiment: row["experiment"],
                                                     enqueuedAt: Date(timeIntervalSince1970: row["enqueued_at"]), resources: Self.resources(row)),
                                 seq: row["seq"])
        }.filter { Routing.fits($0.ticket.resources, on: capacity) }
        // One candidate needs no usage (the common case of a short queue),
        // unless a per-user limit may hold it back.
        if candidates.count <= 1 && policy.maxRunningPerUser == nil { return candidates.first }
        let from = time - SchedulingPolicy.usageWindow
        try db.execute(sql: "DELETE FROM queue_usage WHERE ended_at IS NOT NULL AND ended_at < ?", arguments: [from])
        let spans = try Row.fetchAll(db, sql: "SELECT owner, experiment, started_at, ended_at FROM queue_usage").map { row in
            UsageSpan(owner: row["owner"], experiment: row["experiment"], start: Date(timeIntervalSince1970: row["started_at"]),
                      end: (row["ended_at"] as Double?).map(Date.init(timeIntervalSince1970:)))
        }
        let date = Date(timeIntervalSince1970: time)
        let usage = ClaimOrder.usage(spans, now: date, policy: policy)
        return ClaimOrder.next(candidates, usage: usage, running: ClaimOrder.running(spans), now: date, policy: policy, capacity: capacity).map { candidates[$0] }
    }

    public var lease: Duration? { nil }

    public func claim(worker: String, capacity: WorkerCapacity) async throws -> QueueClaim? {
        let time = now().timeIntervalSince1970
        return try await db.write { db in
            guard let next = try self.next(db, at: time, capacity: capacity) else { return nil }
            let id = next.ticket.jobID
            try db.execute(sql: "UPDATE queue SET claimed_by = ?, claimed_at = ?, attempts = attempts + 1 WHERE job_id = ?",
                           arguments: [worker, time, id])
            try Self.ended(db, id, at: time)
            try db.execute(sql: "INSERT INTO queue_usage (job_id, owner, experiment, started_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, next.ticket.owner, next.ticket.experiment, time])
            let attempt = try Int.fetchOne(db, sql: "SELECT attempts FROM queue WHERE job_id = ?", arguments: [id]) ?? 1
            return QueueClaim(jobID: id, attempt: attempt)
        }
    }

    public func renew(_ claim: QueueClaim, worker: String) async throws -> Bool {
        try await db.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM queue WHERE job_id = ? AND claimed_by = ? AND attempts = ?",
                              arguments: [claim.jobID, worker, claim.attempt]) ?? false
        }
    }

    public func finish(_ claim: QueueClaim, worker: String) async throws -> Bool {
        let time = now().timeIntervalSince1970
        let finished = try await db.write { db in
            try db.execute(sql: "DELETE FROM queue WHERE job_id = ? AND claimed_by = ? AND attempts = ?",
                           arguments: [claim.jobID, worker, claim.attempt])
            guard db.changesCount > 0 else { return false }
            try Self.ended(db, claim.jobID, at: time)
            return true
        }
        await freed(finished)
        return finished
    }

    public func complete(_ jobID: String) async throws {
        let time = now().timeIntervalSince1970
        try await db.write { db in
            try db.execute(sql: "DELETE FROM queue WHERE job_id = ?", arguments: [jobID])
            try Self.ended(db, jobID, at: time)
        }
        await freed(true)
    }

    /// A claim ended: with a per-user limit, a job it held back may be claimable now.
    private func freed(_ ended: Bool) async {
        if ended && policy.maxRunningPerUser != nil { await signal.notify() }
    }

    public func release(_ jobID: String) async throws {
        let time = now().timeIntervalSince1970
        try await db.write { db in
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE job_id = ?", arguments: [jobID])
            try Self.ended(db, jobID, at: time)
        }
        await signal.notify()
    }

    public func release(_ claim: QueueClaim, worker: String) async throws -> Bool {
        let time = now().timeIntervalSince1970
        let released = try await db.write { db in
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE job_id = ? AND claimed_by = ? AND attempts = ?",
                           arguments: [claim.jobID, worker, claim.attempt])
            guard db.changesCount > 0 else { return false }
            try Self.ended(db, claim.jobID, at: time)
            return true
        }
        if released { await signal.notify() }
        return released
    }

    public func cancel(_ jobID: String) async throws -> Bool {
        try await db.write { db in
            try db.execute(sql: "DELETE FROM queue WHERE job_id = ? AND claimed_by IS NULL", arguments: [jobID])
            return db.changesCount > 0
        }
    }

    public func releaseAllClaims() async throws -> [String] {
        let time = now().timeIntervalSince1970
        let ids = try await db.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT job_id FROM queue WHERE claimed_by IS NOT NULL ORDER BY seq")
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL")
            try db.execute(sql: "UPDATE queue_usage SET ended_at = ? WHERE ended_at IS NULL", arguments: [time])
            return ids
        }
        if !ids.isEmpty { await signal.notify() }
        return ids
    }

    public func claimant(of jobID: String) async throws -> String? {
        try await db.read { db in try String.fetchOne(db, sql: "SELECT claimed_by FROM queue WHERE job_id = ?", arguments: [jobID]) }
    }

    public func waitingReason(of jobID: String) async throws -> String? {
        let found = try await db.read { db -> (blocked: String?, resources: JobResources)? in
            guard let row = try Row.fetchOne(db, sql: "SELECT owner, tags, gpu_memory_gb FROM queue WHERE job_id = ? AND claimed_by IS NULL",
                                             arguments: [jobID]) else {
                return nil
            }
            let resources = Self.resources(row)
            guard self.policy.maxRunningPerUser != nil else { return (nil, resources) }
            let owner: String? = row["owner"]
            let running = try Row.fetchAll(db, sql: "SELECT owner, COUNT(*) AS n FROM queue_usage WHERE ended_at IS NULL AND owner IS NOT NULL GROUP BY owner")
            let counts = Dictionary(uniqueKeysWithValues: running.map { (($0["owner"] as String?) ?? "", $0["n"] as Int) })
            return (ClaimOrder.blocked(QueueTicket(jobID: jobID, owner: owner), running: counts, policy: self.policy), resources)
        }
        guard let found else { return nil }
        if let blocked = found.blocked { return blocked }
        guard !found.resources.isEmpty, let workers else { return nil }
        return Routing.unroutable(found.resources, workers: try await workers.capacities())
    }

    public func waitForWork(timeout: Duration) async { await signal.wait(timeout: timeout) }
}
