import YardDomain

/// Records a job's run: its start, one point per epoch, its files and its
/// end. Drivers: `StoreTracker` (Trainyard's own records, always on) and
/// `MLflowTracker` (spooled to disk, then sent). Tracking is an observer: the
/// worker logs and ignores a secondary tracker's failure, so tracking never
/// fails a training.
public protocol Tracker: Sendable {
    /// Called when an attempt begins, before the engine starts (so a job that
    /// fails at once still has a run); returns the run id when it is known at
    /// once. A resumed job must get the same run back.
    func startRun(_ job: Job) async throws -> String?
    /// The engine reported its device, versions and run folder (now on `job`).
    func engineStarted(_ job: Job) async throws
    func logEpoch(_ job: Job, _ epoch: EpochRecord) async throws
    func logArtifact(_ job: Job, _ artifact: ArtifactRecord, localPath: String) async throws
    /// The best weights' numbers on the test split, as flat metric names
    /// (`test/mAP50-95`, `test/precision/CLASS`).
    func logEvaluation(_ job: Job, _ metrics: [String: Double]) async throws
    func endRun(_ job: Job) async throws
}

extension Tracker {
    public func logEvaluation(_ job: Job, _ metrics: [String: Double]) async throws {}
}
