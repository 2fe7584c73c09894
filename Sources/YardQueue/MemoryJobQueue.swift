import Foundation
import YardDomain

/// The in-memory queue driver, for tests. Orders claims by `ClaimOrder`.
public actor MemoryJobQueue: JobQueue {
    private var waiting: [String: ClaimOrder.Candidate] = [:]
    private var claimed: [String: String] = [:]
    /// The ticket of each claimed job, kept to put it back in its place.
    private var held: [String: ClaimOrder.Candidate] = [:]
    private var attempts: [String: Int] = [:]
    private var spans: [String: [UsageSpan]] = [:]
    private var finished: [UsageSpan] = []
    private var seq: Int64 = 0
    private let signal: WorkSignal
    private let now: @Sendable () -> Date
    private let policy: SchedulingPolicy
    /// Where the workers that claim from it announce themselves (the reason
    /// a job no live worker can take waits); nil: not told.
    private let workers: (any WorkerRegistry)?

    public init(clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
                policy: SchedulingPolicy = .default, workers: (any WorkerRegistry)? = nil) {
        signal = WorkSignal(clock: clock)
        self.now = now
        self.policy = policy
        self.workers = workers
    }

    public func enqueue(_ ticket: QueueTicket) async {
        guard waiting[ticket.jobID] == nil, claimed[ticket.jobID] == nil else { return }
        seq += 1
        waiting[ticket.jobID] = ClaimOrder.Candidate(ticket: ticket, seq: seq)
        await signal.notify()
    }

    public nonisolated var lease: Duration? { nil }

    public func claim(worker: String, capacity: WorkerCapacity) -> QueueClaim? {
        let time = now()
        let from = time.addingTimeInterval(-SchedulingPolicy.usageWindow)
        finished.removeAll { ($0.end ?? time) < from }
        let candidates = Array(waiting.values)
        let open = spans.values.flatMap { $0 }
        let usage = ClaimOrder.usage(finished + open, now: time, policy: policy)
        guard let index = ClaimOrder.next(candidates, usage: usage, running: ClaimOrder.running(open), now: time, policy: policy,
                                          capacity: capacity) else { return nil }
        let candidate = candidates[index]
        let id = candidate.ticket.jobID
        waiting[id] = nil
        held[id] = candidate
        claimed[id] = worker
        spans[id, default: []].append(UsageSpan(owner: candidate.ticket.owner, experiment: candidate.ticket.experiment, start: time, end: nil))
        attempts[id, default: 0] += 1
        return QueueClaim(jobID: id, attempt: attempts[id]!)
    }

    /// The claim of `id` ended: its GPU time so far counts for fair share.
    private func ended(_ id: String) {
        let time = now()
        finished += (spans.removeValue(forKey: id) ?? []).map { span in
            var span = span
            span.end = time
            return span
        }
        held[id] = nil
    }

    public func renew(_ claim: QueueClaim, worker: String) -> Bool {
        claimed[claim.jobID] == worker && attempts[claim.jobID] == claim.attempt
    }

    public func finish(_ claim: QueueClaim, worker: String) async -> Bool {
        guard renew(claim, worker: worker) else { return false }
        claimed[claim.jobID] = nil
        ended(claim.jobID)
        await freed()
        return true
    }

    public func complete(_ jobID: String) async {
        guard claimed.removeValue(forKey: jobID) != nil else { return }
        ended(jobID)
        await freed()
    }

    /// A claim ended: with a per-user limit, a job it held back may be claimable now.
    private func freed() async {
        if policy.maxRunningPerUser != nil { await signal.notify() }
    }

    public func release(_ claim: QueueClaim, worker: String) async -> Bool {
        guard renew(claim, worker: worker) else { return false }
        await release(claim.jobID)
        return true
    }

    /// Puts a claimed job back where it was (its first enqueue's place).
    public func release(_ jobID: String) async {
        guard claimed.removeValue(forKey: jobID) != nil else { return }
        let candidate = held[jobID]
        ended(jobID)
        waiting[jobID] = candidate ?? ClaimOrder.Candidate(ticket: QueueTicket(jobID: jobID, enqueuedAt: now()), seq: 0)
        await signal.notify()
    }

    public func cancel(_ jobID: String) -> Bool {
        waiting.removeValue(forKey: jobID) != nil
    }

    public func releaseAllClaims() async -> [String] {
        let ids = Array(claimed.keys).sorted()
        for id in ids {
            claimed[id] = nil
            let candidate = held[id]
            ended(id)
            waiting[id] = candidate ?? ClaimOrder.Candidate(ticket: QueueTicket(jobID: id, enqueuedAt: now()), seq: 0)
        }
        if !ids.isEmpty { await signal.notify() }
        return ids
    }

    public func claimant(of jobID: String) -> String? { claimed[jobID] }

    public func waitingReason(of jobID: String) async throws -> String? {
        guard let ticket = waiting[jobID]?.ticket else { return nil }
        if let reason = ClaimOrder.blocked(ticket, running: ClaimOrder.running(spans.values.flatMap { $0 }), policy: policy) { return reason }
        guard !ticket.resources.isEmpty, let workers else { return nil }
        return Routing.unroutable(ticket.resources, workers: try await workers.capacities())
    }

    public func waitForWork(timeout: Duration) async { await signal.wait(timeout: timeout) }
}
