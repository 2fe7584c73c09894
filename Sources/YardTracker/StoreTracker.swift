import YardDomain
import YardStore

/// Trainyard's own run records, in its store: the run id is the job id, an
/// epoch is a row (replaced, never duplicated, when a resumed run repeats it).
public struct StoreTracker: Tracker {
    let records: any RunRecords

    public init(records: any RunRecords) { self.records = records }

    public func startRun(_ job: Job) async throws -> String? { job.runID ?? job.id }
    public func engineStarted(_ job: Job) async throws {}
    public func logEpoch(_ job: Job, _ epoch: EpochRecord) async throws { try await records.recordEpoch(epoch) }
    public func logArtifact(_ job: Job, _ artifact: ArtifactRecord, localPath: String) async throws {
        try await records.recordArtifact(artifact)
    }
    public func endRun(_ job: Job) async throws {}
}
