import Foundation
import YardDomain
import YardQueue
import YardStore

/// The embedded ledger: the worker runs in the server's process and writes
/// the store itself, through `JobControl` for state changes.
public struct StoreLedger: JobLedger {
    public let control: JobControl
    var store: any JobStore { control.store }

    public init(control: JobControl) { self.control = control }

    public func job(_ id: String) async throws -> Job? { try await store.job(id) }

    /// Follows the job's events: the record is read at the start and when
    /// the log says the job moved to `stopping` (or this subscriber lagged),
    /// never on a timer; a read that fails is tried again after `tick`.
    public func stopRequested(_ id: String, tick: Duration, clock: any Clock<Duration>) async -> Job? {
        let subscription = store.feed.subscribe(id)
        defer { subscription.cancel() }
        var look = true
        var events = subscription.makeAsyncIterator()
        while !Task.isCancelled {
            if look {
                do {
                    if let job = try await store.job(id), job.state == .stopping { return job }
                    look = false
                } catch {
                    do { try await clock.sleep(for: tick) } catch { return nil }
                    continue
                }
            }
            switch await events.next() {
            case nil: return nil
            case .event(let event)?: look = event.type == "state" && event.payload["state"]?.stringValue == JobState.stopping.rawValue
            case .lagged?: look = true
            case .logs?, .heartbeat?: continue
            }
        }
        return nil
    }
    public func secrets(of id: String) async throws -> [String: JSONValue] { try await store.secrets(of: id) }

    public func move(_ id: String, to state: JobState, message: String?, change: JobChange) async throws -> Job {
        try await control.move(id, to: state, message: message) { change.apply(to: &$0) }
    }

    public func update(_ id: String, _ change: JobChange) async throws -> Job {
        try await store.update(id) { change.apply(to: &$0) }
    }

    public func appendEvent(jobID: String, type: String, payload: JSONValue) async throws {
        try await store.appendEvent(jobID: jobID, type: type, payload: payload)
    }

    public func appendLog(jobID: String, lines: [String]) async throws {
        try await store.appendLog(jobID: jobID, lines: lines)
    }

    public func recordEpoch(_ epoch: EpochRecord) async throws { try await store.recordEpoch(epoch) }
    public func recordArtifact(_ artifact: ArtifactRecord) async throws { try await store.recordArtifact(artifact) }
}
