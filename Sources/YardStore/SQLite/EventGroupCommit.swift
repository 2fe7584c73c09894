import Foundation
import GRDB
import Synchronization
import YardDomain

/// Group commit for events appended on their own (`appendEvent`): every
/// append waiting when the writer gets to the log goes in one transaction,
/// in arrival order, with one fsync; each caller returns once its event is
/// durable. The batch is taken on the writer's own queue at the moment its
/// transaction starts (not before it is queued), so the appends that arrive
/// while one commits all join the next; the writer goes on from batch to
/// batch without a hop through the cooperative pool, and the feed gets each
/// batch in one publish. Payloads are encoded by their callers, off the
/// writer. A batch that fails is written again one event at a time, so one
/// bad event fails only its caller.
final class EventGroupCommit: Sendable {
    struct Append: Sendable {
        var entity: EventEntity
        var id: String
        var type: String
        var payload: JSONValue
        /// `payload` as stored (encoded by the caller).
        var body: String
        var continuation: CheckedContinuation<JobEvent, any Error>
    }

    private struct State {
        var pending: [Append] = []
        /// A commit is queued on the writer or running.
        var scheduled = false
        /// How many appends the last commit returned to, and when it ended.
        var lastBatch = 0
        var lastCommitEnd: UInt64 = 0
        /// While the writer waits for siblings: how many pending appends end its wait.
        var awaited = 0
    }

    private let state = Mutex(State())
    /// Wakes the writer waiting for siblings the moment the last of them
    /// arrives. (It slept in `usleep(10)` steps before: on Linux each one
    /// lasts ~95 µs, timer slack included, so a commit often began up to a
    /// step after its batch was whole.)
    private let arrivals = NSCondition()
    private let db: YardDatabase
    private let feed: JobFeed
    private let now: @Sendable () -> Date
    /// Most events one transaction takes.
    static let maxBatch = 1024
    /// How long a commit waits for the callers the last one just returned
    /// to, when they are appending again (as PostgreSQL's `commit_delay`
    /// waits when `commit_siblings` are active): without it, the first of
    /// them commits alone and the rest wait for its fsync, two commits where
    /// one would do.
    static let siblingWait: UInt64 = 150_000

    init(db: YardDatabase, feed: JobFeed, now: @escaping @Sendable () -> Date) {
        self.db = db
        self.feed = feed
        self.now = now
    }

    func append(_ entity: EventEntity, id: String, type: String, payload: JSONValue) async throws -> JobEvent {
        let body = try JSONCoding.string(payload)
        return try await withCheckedThrowingContinuation { continuation in
            arrivals.lock()
            let (start, wake) = state.withLock { state -> (Bool, Bool) in
                state.pending.append(Append(entity: entity, id: id, type: type, payload: payload, body: body, continuation: continuation))
                let wake = state.awaited > 0 && state.pending.count >= state.awaited
                guard !state.scheduled else { return (false, wake) }
                state.scheduled = true
                return (true, wake)
            }
            if wake { arrivals.signal() }
            arrivals.unlock()
            // The first append of an idle log queues a commit; later ones join the batch it takes.
            if start { schedule() }
        }
    }

    private func schedule() {
        db.asyncWriteWithoutTransaction { [self] db in commitPending(db) }
    }

    /// On the writer's queue: commits what is pending, then queues the next
    /// commit if more arrived meanwhile (behind any other write already waiting).
    private func commitPending(_ db: Database) {
        waitForSiblings()
        let batch = state.withLock { state -> [Append] in
            let batch = Array(state.pending.prefix(Self.maxBatch))
            state.pending.removeFirst(batch.count)
            return batch
        }
        if !batch.isEmpty { commit(batch, db) }
        let more = state.withLock { state -> Bool in
            state.lastBatch = batch.count
            state.lastCommitEnd = Self.monotonic()
            if state.pending.isEmpty { state.scheduled = false }
            return state.scheduled
        }
        if more { schedule() }
    }

    /// On the writer's queue (not the cooperative pool): while fewer appends
    /// wait than the last commit returned to, and that commit ended moments
    /// ago, gives them up to `siblingWait` to arrive. A lone append (the last
    /// commit had one, or it was long ago) does not wait.
    private func waitForSiblings() {
        let (lastBatch, lastEnd) = state.withLock { ($0.lastBatch, $0.lastCommitEnd) }
        guard lastBatch > 1 else { return }
        let start = Self.monotonic()
        guard start - lastEnd < 2_000_000 else { return }
        let deadline = Date(timeIntervalSinceNow: Double(Self.siblingWait) / 1e9)
        arrivals.lock()
        defer { arrivals.unlock() }
        state.withLock { $0.awaited = lastBatch }
        while state.withLock({ $0.pending.count }) < lastBatch, arrivals.wait(until: deadline) {}
        state.withLock { $0.awaited = 0 }
    }

    static func monotonic() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func commit(_ batch: [Append], _ db: Database) {
        let time = now()
        do {
            var events: [JobEvent] = []
            events.reserveCapacity(batch.count)
            try db.inTransaction(.immediate) {
                for append in batch {
                    events.append(try SQLiteJobStore.insertEvent(db, entity: append.entity, id: append.id, type: append.type,
                                                                 payload: append.payload, body: append.body, time: time))
                }
                return .commit
            }
            // Still on the writer's queue: published in commit order, before the next transaction.
            feed.publish(events)
            for (append, event) in zip(batch, events) { append.continuation.resume(returning: event) }
        } catch {
            for append in batch {
                do {
                    var event: JobEvent?
                    try db.inTransaction(.immediate) {
                        event = try SQLiteJobStore.insertEvent(db, entity: append.entity, id: append.id, type: append.type,
                                                               payload: append.payload, body: append.body, time: time)
                        return .commit
                    }
                    feed.publish([event!])
                    append.continuation.resume(returning: event!)
                } catch {
                    append.continuation.resume(throwing: YardDatabase.machine(error))
                }
            }
        }
    }
}
