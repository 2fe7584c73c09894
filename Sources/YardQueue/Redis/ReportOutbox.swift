import Logging
import Synchronization
import YardDomain
import YardRedis

/// A remote worker's reports on their way to the server, in order.
/// Recording a report never waits for Redis: it is queued here, and one
/// sender writes the queue to Redis, many reports per round trip, retrying
/// with backoff while Redis is unreachable (logged once per outage). A
/// training therefore carries on through an outage of any length.
///
/// A report sent twice (the connection dropped before the reply) is
/// applied once: the server skips a sequence number it has. Before a worker
/// writes where the next attempt reads (the checkpoint) or ends its claim,
/// it waits until what it queued is sent (`flush`). Bounded: past `limit`
/// bytes, adding waits for the sender (the engine pauses on its output
/// pipe; nothing is dropped). What is queued dies with the worker process;
/// its claim then expires, and the next attempt resumes from the last
/// checkpoint, written only after the reports before it were sent.
final class ReportOutbox: Sendable {
    private struct Item {
        var commands: [[String]]
        var bytes: Int
    }

    private struct State {
        var items: [Item] = []
        var bytes = 0
        /// Reports ever queued and ever sent: a flush waits for `sent` to
        /// reach what `queued` was when it was asked.
        var queued = 0
        var sent = 0
        var sending = false
        var waiters: [Int: (target: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
        var nextWaiter = 0
    }

    let redis: RedisClient
    let logger: Logger
    let limit: Int
    let batch: Int
    let backoff: [Duration]
    private let state = Mutex(State())

    init(redis: RedisClient, logger: Logger, limit: Int = 64 << 20, batch: Int = 256,
         backoff: [Duration] = [.milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4)]) {
        self.redis = redis
        self.logger = logger
        self.limit = limit
        self.batch = max(1, batch)
        self.backoff = backoff.isEmpty ? [.seconds(1)] : backoff
    }

    /// Reports queued and not yet sent.
    var waiting: Int { state.withLock { $0.queued - $0.sent } }

    /// Waits while the queue is over its limit (for everything queued so far).
    func makeRoom() async {
        let (full, target) = state.withLock { ($0.bytes >= limit, $0.queued) }
        if full { await wait(until: target) }
    }

    /// Queues one report: its commands go to Redis in one pipeline, the
    /// first is the report itself (the others, wyolo's copies, may fail).
    /// Synchronous, so a caller holding its own lock keeps its order.
    func add(_ commands: [[String]]) {
        let bytes = commands.reduce(0) { $0 + $1.reduce(16) { $0 + $1.utf8.count } }
        let start = state.withLock { state -> Bool in
            state.items.append(Item(commands: commands, bytes: bytes))
            state.bytes += bytes
            state.queued += 1
            if state.sending { return false }
            state.sending = true
            return true
        }
        if start { Task { await self.send() } }
    }

    /// Waits until every report queued before the call is in Redis; throws
    /// `.unavailable` after `timeout` (the reports stay queued).
    func flush(timeout: Duration) async throws(YardError) {
        let target = state.withLock { $0.queued }
        if state.withLock({ $0.sent >= target }) { return }
        let sent = await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait(until: target); return true }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        // The last report may have gone out just as the timeout fired.
        guard sent || state.withLock({ $0.sent >= target }) else {
            let after = timeout < .seconds(1) ? "\(Int(timeout.timeInterval * 1000)) ms" : "\(Int(timeout.timeInterval)) s"
            throw YardError(.unavailable, "\(waiting) reports are still waiting for Redis after \(after)")
        }
    }

    /// Returns once `sent` reaches `target`, or the task is cancelled.
    private func wait(until target: Int) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.sent >= target || Task.isCancelled { return true }
                    state.waiters[id] = (target, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// The one sender: runs while the queue has reports.
    private func send() async {
        var failures = 0
        while true {
            let next = state.withLock { state -> [Item]? in
                if state.items.isEmpty {
                    state.sending = false
                    return nil
                }
                return Array(state.items.prefix(batch))
            }
            guard let next else { return }
            do {
                let replies = try await redis.pipeline(next.flatMap(\.commands))
                var index = 0
                for item in next {
                    if case .error(let text) = replies[index] { throw RedisError.server(text) }
                    index += item.commands.count
                }
                if failures > 0 { logger.notice("worker reports reach Redis again (\(waiting) were waiting)") }
                failures = 0
                let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    state.items.removeFirst(next.count)
                    state.bytes -= next.reduce(0) { $0 + $1.bytes }
                    state.sent += next.count
                    let sent = state.sent
                    let ready = state.waiters.filter { $0.value.target <= sent }
                    for id in ready.keys { state.waiters[id] = nil }
                    return ready.values.map(\.continuation)
                }
                ready.forEach { $0.resume() }
            } catch {
                if failures == 0 {
                    logger.warning("cannot send worker reports to Redis (\(error)); keeping them in order and retrying with backoff (the training goes on)")
                }
                failures += 1
                try? await Task.sleep(for: backoff[min(failures - 1, backoff.count - 1)])
            }
        }
    }
}
