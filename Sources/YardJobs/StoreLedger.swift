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
