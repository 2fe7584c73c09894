import Foundation
import GRDB
import Synchronization
import YardDomain

/// Group commit for events appended on their own (`appendEvent`): the
/// appends that arrive while a transaction commits wait for the next one and
/// go in together, in arrival order. Each caller returns once its event is
/// durable, as before; the disk's commits are shared instead of one each
/// (8 writers: one commit per batch, not per event). A batch that fails is
/// written again one event at a time, so one bad event fails only its caller.
final class EventGroupCommit: Sendable {
    struct Append: Sendable {
        var entity: EventEntity
        var id: String
        var type: String
        var payload: JSONValue
        var continuation: CheckedContinuation<JobEvent, any Error>
    }

    private struct State {
        var pending: [Append] = []
        var draining = false
    }

    private let state = Mutex(State())
    private let db: YardDatabase
    private let feed: JobFeed
    private let now: @Sendable () -> Date
    /// Most events one transaction takes.
    static let maxBatch = 512

    init(db: YardDatabase, feed: JobFeed, now: @escaping @Sendable () -> Date) {
        self.db = db
        self.feed = feed
        self.now = now
    }

    func append(_ entity: EventEntity, id: String, type: String, payload: JSONValue) async throws -> JobEvent {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.pending.append(Append(entity: entity, id: id, type: type, payload: payload, continuation: continuation))
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            // The first append of an idle log commits; later ones join the next batch.
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Append] in
                let batch = Array(state.pending.prefix(Self.maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let time = now(), feed = self.feed
            let entries = batch.map { ($0.entity, $0.id, $0.type, $0.payload) }
            do {
                let events = try await db.write { db in
                    try entries.map { try SQLiteJobStore.insertEvent(db, jobID: $0.1, type: $0.2, payload: $0.3, time: time, feed: feed, entity: $0.0) }
                }
                for (append, event) in zip(batch, events) { append.continuation.resume(returning: event) }
            } catch {
                for append in batch {
                    do {
                        let event = try await db.write { db in
                            try SQLiteJobStore.insertEvent(db, jobID: append.id, type: append.type, payload: append.payload, time: time,
                                                           feed: feed, entity: append.entity)
                        }
                        append.continuation.resume(returning: event)
                    } catch {
                        append.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
