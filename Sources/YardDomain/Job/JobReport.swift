import Foundation

/// One thing a worker tells the system about a job it runs. In the
/// embedded mode the worker writes these straight into the store; a worker
/// on another machine sends them over Redis and the server applies them
/// the same way, in order, once each.
public enum JobReport: Sendable, Codable, Equatable {
    /// A state change (with field changes) at `time`.
    case move(state: JobState, message: String?, change: JobChange, time: Date)
    case update(JobChange)
    case event(type: String, payload: JSONValue)
    case logs([String])
    case epoch(EpochRecord)
    case artifact(ArtifactRecord)
    /// Side reports, outside an attempt's sequence (seq 0): what the
    /// worker's tracking spool learns, possibly after the attempt ended.
    /// The tracking state (`pending`/`synced`), the MLflow run and why it is pending.
    case tracking(status: String, runID: String?, error: String?)

    /// Whether the report stands outside the attempt's sequence.
    public var isSide: Bool {
        switch self {
        case .tracking: true
        default: false
        }
    }
}

/// A report as it travels: which job, which attempt (the queue's claim
/// number, so a worker that lost its claim is fenced off) and its place in
/// that attempt's sequence (so a report delivered twice is applied once).
public struct ReportEnvelope: Sendable, Codable, Equatable {
    public var jobID: String
    public var attempt: Int
    public var seq: Int
    public var report: JobReport

    public init(jobID: String, attempt: Int, seq: Int, report: JobReport) {
        self.jobID = jobID
        self.attempt = attempt
        self.seq = seq
        self.report = report
    }
}
