import Foundation
import GRDB
import YardDomain
import YardStore

/// The embedded queue: a table in the same SQLite file as the store. SQLite
/// serialises writers, so a claim (select the oldest unclaimed row and mark
/// it in one transaction) can never hand one job to two workers.
public final class SQLiteJobQueue: JobQueue {
    private let db: YardDatabase
    private let signal: WorkSignal
    private let now: @Sendable () -> Date

    public init(database: YardDatabase, clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.db = database
        self.signal = WorkSignal(clock: clock)
        self.now = now
    }

    public func enqueue(_ jobID: String) async throws {
        try await db.write { db in
            let seq = (try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM queue") ?? 0) + 1
            try db.execute(sql: "INSERT INTO queue (job_id, seq) VALUES (?, ?) ON CONFLICT(job_id) DO NOTHING", arguments: [jobID, seq])
        }
        await signal.notify()
    }

    public var lease: Duration? { nil }

    public func claim(worker: String) async throws -> QueueClaim? {
        let time = now().timeIntervalSince1970
        return try await db.write { db in
            guard let id = try String.fetchOne(db, sql: "SELECT job_id FROM queue WHERE claimed_by IS NULL ORDER BY seq LIMIT 1") else {
                return nil
            }
            try db.execute(sql: "UPDATE queue SET claimed_by = ?, claimed_at = ?, attempts = attempts + 1 WHERE job_id = ?",
                           arguments: [worker, time, id])
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
        try await db.write { db in
            try db.execute(sql: "DELETE FROM queue WHERE job_id = ? AND claimed_by = ? AND attempts = ?",
                           arguments: [claim.jobID, worker, claim.attempt])
            return db.changesCount > 0
        }
    }

    public func complete(_ jobID: String) async throws {
        try await db.write { db in try db.execute(sql: "DELETE FROM queue WHERE job_id = ?", arguments: [jobID]) }
    }

    public func release(_ jobID: String) async throws {
        try await db.write { db in
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE job_id = ?", arguments: [jobID])
        }
        await signal.notify()
    }

    public func release(_ claim: QueueClaim, worker: String) async throws -> Bool {
        let released = try await db.write { db in
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE job_id = ? AND claimed_by = ? AND attempts = ?",
                           arguments: [claim.jobID, worker, claim.attempt])
            return db.changesCount > 0
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
        let ids = try await db.write { db in
            let ids = try String.fetchAll(db, sql: "SELECT job_id FROM queue WHERE claimed_by IS NOT NULL ORDER BY seq")
            try db.execute(sql: "UPDATE queue SET claimed_by = NULL, claimed_at = NULL")
            return ids
        }
        if !ids.isEmpty { await signal.notify() }
        return ids
    }

    public func claimant(of jobID: String) async throws -> String? {
        try await db.read { db in try String.fetchOne(db, sql: "SELECT claimed_by FROM queue WHERE job_id = ?", arguments: [jobID]) }
    }

    public func waitForWork(timeout: Duration) async { await signal.wait(timeout: timeout) }
}
