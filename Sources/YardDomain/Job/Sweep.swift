import Foundation

/// A sweep as Trainyard records it: a study whose trials are ordinary jobs
/// (same queue, workers, tracking, artifacts, stop). Optuna's storage keeps
/// the study itself; this record keeps what Trainyard needs beside it:
/// the base config (redacted; its secrets apart, like a job's), which job
/// runs which trial, what each trial was told, and the best so far.
public struct Sweep: Sendable, Codable, Hashable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case running, stopping, finished, stopped, failed
        public var isTerminal: Bool { self == .finished || self == .stopped || self == .failed }
    }

    /// One trial: Optuna's number, its job, and how it ended once told.
    public struct Trial: Sendable, Codable, Hashable {
        public var number: Int
        public var jobID: String
        public var params: [String: JSONValue]
        /// The last epoch whose fitness the study was given.
        public var reported: Int?
        /// The job's end (`succeeded`, `pruned`, `failed`, `stopped`) once told to the study.
        public var told: JobState?
        public var value: Double?
        /// Why a trial failed without a job (its values made the config invalid).
        public var message: String?

        public init(number: Int, jobID: String, params: [String: JSONValue]) {
            self.number = number
            self.jobID = jobID
            self.params = params
        }

        enum CodingKeys: String, CodingKey { case number, jobID = "job_id", params, reported, told, value, message }
    }

    public struct Best: Sendable, Codable, Hashable {
        public var number: Int
        public var jobID: String
        public var value: Double
        public var params: [String: JSONValue]

        public init(number: Int, jobID: String, value: Double, params: [String: JSONValue]) {
            self.number = number
            self.jobID = jobID
            self.value = value
            self.params = params
        }

        enum CodingKeys: String, CodingKey { case number, jobID = "job_id", value, params }
    }

    public var id: String
    /// The Optuna study's name (`sweeper.study_name`, else the sweep id).
    public var study: String
    public var experiment: String
    public var state: State
    /// The config trials are made from, secrets masked.
    public var config: JSONValue
    public var createdAt: Date
    public var finishedAt: Date?
    public var message: String?
    public var trials: [Trial]
    public var best: Best?
    /// The job that retrains the best config (`retrain_best: true`).
    public var retrainJobID: String?
    /// The sweep's parent run in MLflow, once the spool has created it.
    public var mlflowRunID: String?
    /// The user who started it; its trials are theirs too.
    public var owner: String?

    public init(id: String, study: String, experiment: String, config: JSONValue, createdAt: Date) {
        self.id = id
        self.study = study
        self.experiment = experiment
        self.state = .running
        self.config = config
        self.createdAt = createdAt
        self.trials = []
    }

    /// The job id of trial `number`: fixed, so a trial asked just before a
    /// crash is found again (its job exists or not) and never run twice.
    public static func trialJobID(sweep: String, number: Int) -> String { "\(sweep)-t\(number)" }

    enum CodingKeys: String, CodingKey {
        case id, study, experiment, state, config, message, trials, best
        case createdAt = "created_at", finishedAt = "finished_at", retrainJobID = "retrain_job_id", mlflowRunID = "mlflow_run_id"
        case owner
    }
}
