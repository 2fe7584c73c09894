import Foundation

/// A change a worker makes to its job's record, as data rather than a
/// closure, so it can travel (to a server on another machine) and be
/// applied there the same way. A nil field leaves the job's value alone.
public struct JobChange: Sendable, Codable, Equatable {
    /// A new attempt starts: `attempts` + 1, the worker noted, `startedAt`
    /// set if this is the first.
    public var attemptStarted: AttemptStart?
    public var runID: String?
    public var device: String?
    public var saveDir: String?
    public var datasetHash: String?
    public var epoch: Int?
    public var epochs: Int?
    public var versions: [String: String]?
    public var bestWeights: String?
    public var lastWeights: String?
    public var fitness: Double?
    public var finalMetrics: [String: Double]?
    public var testMetrics: [String: Double]?
    /// The engine's host name (`provenance.host`).
    public var host: String?

    public struct AttemptStart: Sendable, Codable, Equatable {
        public var worker: String
        public var time: Date
        public init(worker: String, time: Date) {
            self.worker = worker
            self.time = time
        }
    }

    public init(attemptStarted: AttemptStart? = nil, runID: String? = nil, device: String? = nil, saveDir: String? = nil,
                datasetHash: String? = nil, epoch: Int? = nil, epochs: Int? = nil, versions: [String: String]? = nil,
                bestWeights: String? = nil, lastWeights: String? = nil, fitness: Double? = nil, finalMetrics: [String: Double]? = nil,
                testMetrics: [String: Double]? = nil, host: String? = nil) {
        self.attemptStarted = attemptStarted
        self.runID = runID
        self.device = device
        self.saveDir = saveDir
        self.datasetHash = datasetHash
        self.epoch = epoch
        self.epochs = epochs
        self.versions = versions
        self.bestWeights = bestWeights
        self.lastWeights = lastWeights
        self.fitness = fitness
        self.finalMetrics = finalMetrics
        self.testMetrics = testMetrics
        self.host = host
    }

    public func apply(to job: inout Job) {
        if let start = attemptStarted {
            job.attempts += 1
            job.worker = start.worker
            if job.startedAt == nil { job.startedAt = start.time }
        }
        if let runID { job.runID = runID }
        if let device { job.device = device }
        if let saveDir { job.saveDir = saveDir }
        if let datasetHash { job.datasetHash = datasetHash }
        if let epoch { job.epoch = epoch }
        if let epochs { job.epochs = epochs }
        if let versions { job.versions = versions }
        if let bestWeights { job.bestWeights = bestWeights }
        if let lastWeights { job.lastWeights = lastWeights }
        if let fitness { job.fitness = fitness }
        if let finalMetrics { job.finalMetrics = finalMetrics }
        if let testMetrics { job.testMetrics = testMetrics }
        if let host {
            var provenance = job.provenance ?? JobProvenance()
            provenance.host = host
            job.provenance = provenance
        }
    }
}
