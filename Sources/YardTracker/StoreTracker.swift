import YardDomain
import YardStore

/// Trainyard's own run records, in its store: the run id is the job id, an
/// epoch is a row (replaced, never duplicated, when a resumed run repeats it).
public struct StoreTracker: Tracker {
    let store: any JobStore

    public init(store: any JobStore) { self.store = store }

    public func startRun(_ job: Job) async throws -> String? { job.runID ?? job.id }
    public func engineStarted(_ job: Job) async throws {}
    public func logEpoch(_ job: Job, _ epoch: EpochRecord) async throws { try await store.recordEpoch(epoch) }
    public func logArtifact(_ job: Job, _ artifact: ArtifactRecord, localPath: String) async throws {
        try await store.recordArtifact(artifact)
    }
    public func endRun(_ job: Job) async throws {}
}
