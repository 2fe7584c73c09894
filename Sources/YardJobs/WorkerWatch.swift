import Foundation
import Logging
import ServiceLifecycle
import YardDomain
import YardQueue
import YardStore

/// Puts workers' comings and goings in the event log (entity `worker`,
/// type `state`): `joined`, `lost` (no heartbeat for three intervals: its
/// job is reclaimed when the queue lease runs out), `back` (heartbeating
/// again) and `left` (a graceful shutdown). Heartbeats are not changes: it
/// compares the registry with what it saw `interval` ago, and writes only
/// the differences. What changed while no server watched is not told
/// (the first look is the baseline).
public struct WorkerWatch: Service {
    let registry: any WorkerRegistry
    let store: any JobStore
    let interval: Duration
    let logger: Logger

    public init(registry: any WorkerRegistry, store: any JobStore, interval: Duration = .seconds(5), logger: Logger) {
        self.registry = registry
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var seen: [String: WorkerInfo]?
            while !Task.isCancelled {
                do {
                    seen = try await look(after: seen)
                } catch {
                    logger.debug("workers: cannot read the registry: \(error)")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One look: records what changed since `before` (nil: the first look,
    /// nothing recorded) and returns what it saw.
    @discardableResult
    public func look(after before: [String: WorkerInfo]?) async throws -> [String: WorkerInfo] {
        let now = Dictionary(try await registry.workers().map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        guard let before else { return now }
        for (id, info) in now.sorted(by: { $0.key < $1.key }) {
            let was = before[id]
            let change: String?
            switch (was?.status, info.status) {
            case (nil, .lost): change = nil  // never seen alive by this server
            case (nil, _): change = "joined"
            case (.lost?, .idle), (.lost?, .busy): change = "back"
            case (.idle?, .lost), (.busy?, .lost): change = "lost"
            default: change = nil
            }
            if let change { try await record(change, info, job: was?.job ?? info.job) }
        }
        for (id, info) in before.sorted(by: { $0.key < $1.key }) where now[id] == nil && info.status != .lost {
            try await record("left", info, job: nil)
        }
        return now
    }

    private func record(_ state: String, _ info: WorkerInfo, job: String?) async throws {
        var body: [String: JSONValue] = ["state": .string(state), "host": .string(info.host), "device": .string(info.device),
                                         "heartbeat_at": .double(info.heartbeatAt.timeIntervalSince1970.rounded())]
        if let job { body["job_id"] = .string(job) }
        if state == "lost" { logger.warning("worker \(info.id) on \(info.host) is lost (no heartbeat since \(info.heartbeatAt))\(job.map { "; it was running \($0)" } ?? "")") }
        try await store.appendEvent(.worker, id: info.id, type: "state", payload: .object(body))
    }
}
