import YardDomain

/// The in-memory queue driver, for tests.
public actor MemoryJobQueue: JobQueue {
    private var waiting: [String] = []
    private var claimed: [String: String] = [:]
    private var attempts: [String: Int] = [:]
    private let signal: WorkSignal

    public init(clock: any Clock<Duration> = ContinuousClock()) {
        signal = WorkSignal(clock: clock)
    }

    public func enqueue(_ jobID: String) async {
        guard !waiting.contains(jobID), claimed[jobID] == nil else { return }
        waiting.append(jobID)
        await signal.notify()
    }

    public nonisolated var lease: Duration? { nil }

    public func claim(worker: String) -> QueueClaim? {
        guard !waiting.isEmpty else { return nil }
        let id = waiting.removeFirst()
        claimed[id] = worker
        attempts[id, default: 0] += 1
        return QueueClaim(jobID: id, attempt: attempts[id]!)
    }

    public func renew(_ claim: QueueClaim, worker: String) -> Bool {
        claimed[claim.jobID] == worker && attempts[claim.jobID] == claim.attempt
    }

    public func finish(_ claim: QueueClaim, worker: String) -> Bool {
        guard renew(claim, worker: worker) else { return false }
        claimed[claim.jobID] = nil
        return true
    }

    public func complete(_ jobID: String) { claimed[jobID] = nil }

    public func release(_ claim: QueueClaim, worker: String) async -> Bool {
        guard renew(claim, worker: worker) else { return false }
        await release(claim.jobID)
        return true
    }

    public func release(_ jobID: String) async {
        guard claimed.removeValue(forKey: jobID) != nil else { return }
        waiting.insert(jobID, at: 0)
        await signal.notify()
    }

    public func cancel(_ jobID: String) -> Bool {
        guard let i = waiting.firstIndex(of: jobID) else { return false }
        waiting.remove(at: i)
        return true
    }

    public func releaseAllClaims() async -> [String] {
        let ids = Array(claimed.keys).sorted()
        claimed.removeAll()
        waiting.insert(contentsOf: ids, at: 0)
        if !ids.isEmpty { await signal.notify() }
        return ids
    }

    public func claimant(of jobID: String) -> String? { claimed[jobID] }

    public func waitForWork(timeout: Duration) async { await signal.wait(timeout: timeout) }
}
