import Foundation
import YardDomain
import YardStore

/// Registers a job's best weights as a model version in MLflow's registry,
/// sets aliases, and mirrors both in Trainyard's store.
public struct ModelRegistry: Sendable {
    let store: any JobStore
    let defaultURI: String?
    let clientFactory: @Sendable (String) -> MLflowClient

    public init(store: any JobStore, defaultURI: String?,
                clientFactory: @escaping @Sendable (String) -> MLflowClient = { MLflowClient(trackingURI: $0) }) {
        self.store = store
        self.defaultURI = defaultURI
        self.clientFactory = clientFactory
    }

    /// `yard models register JOB NAME [--alias A]`.
    public func register(jobID: String, name: String, alias: String?) async throws -> ModelVersion {
        try ModelVersion.validateName(name, field: "name")
        if let alias { try ModelVersion.validateName(alias, field: "alias") }
        let job = try await store.require(jobID)
        guard job.state == .succeeded else {
            throw YardError(.conflict, field: "job_id", "job \(jobID) is \(job.state.rawValue); only a succeeded job can be registered")
        }
        guard let uri = try await trackingURI(job) else {
            throw YardError(.conflict, field: "job_id", "job \(jobID) has no MLflow run; set mlflow.MLFLOW_TRACKING_URI in its config (or on the worker)")
        }
        guard job.tracking == "synced", let runID = job.mlflowRunID else {
            throw YardError(.conflict, field: "job_id", "job \(jobID)'s MLflow run is still being sent (tracking \(job.tracking ?? "pending")); retry when `yard show \(jobID)` says synced")
        }
        let client = clientFactory(uri)
        let version = try await unavailable { try await Self.register(client: client, runID: runID, job: job, name: name, alias: alias) }
        try await mirror(version)
        return version
    }

    /// `yard models alias NAME VERSION ALIAS`.
    public func setAlias(name: String, version: String, alias: String) async throws -> ModelVersion {
        try ModelVersion.validateName(alias, field: "alias")
        guard let known = try await store.modelVersions(name: name).first(where: { $0.version == version }) else {
            throw YardError(.notFound, field: "version", "no version \(version) of model \(name); `yard models list` shows them")
        }
        let job = try await store.require(known.jobID)
        guard let uri = try await trackingURI(job) else { throw YardError(.conflict, "model \(name) has no MLflow server") }
        try await unavailable { try await clientFactory(uri).setAlias(name: name, alias: alias, version: version) }
        try await store.setModelAlias(name: name, alias: alias, version: version)
        return try await store.modelVersions(name: name).first { $0.version == version } ?? known
    }

    /// The version an alias points at, asked of MLflow itself.
    public func resolve(name: String, alias: String) async throws -> String? {
        guard let known = try await store.modelVersions(name: name).first else { return nil }
        let job = try await store.require(known.jobID)
        guard let uri = try await trackingURI(job) else { return nil }
        return try await unavailable { try await clientFactory(uri).version(name: name, alias: alias) }
    }

    public func mirror(_ version: ModelVersion) async throws {
        try await store.recordModelVersion(version)
        for alias in version.aliases { try await store.setModelAlias(name: version.name, alias: alias, version: version.version) }
    }

    func trackingURI(_ job: Job) async throws -> String? {
        try await MLflowTracker.trackingURI(job, secrets: store, defaultURI: defaultURI)
    }

    /// The registration itself, idempotent: a version already made from this
    /// run is reused. Used by the API and by the spool's auto-registration.
    public static func register(client: MLflowClient, runID: String, job: Job, name: String, alias: String?) async throws -> ModelVersion {
        let run = try await client.getRun(runID)
        try await client.createRegisteredModel(name)
        let source = run.artifactURI + "/weights/best.pt"
        let version: String
        if let existing = try await client.modelVersion(name: name, runID: runID) {
            version = existing
        } else {
            var tags = ["trainyard.job_id": job.id, "trainyard.experiment": job.experiment, "model": job.model]
            if let fitness = job.fitness { tags["trainyard.fitness"] = String(fitness) }
            if let hash = job.datasetHash { tags["trainyard.dataset_hash"] = hash }
            if let commit = job.gitCommit { tags["git_commit"] = commit }
            tags["trainyard.config_hash"] = MLflowTracker.hash(job.config)
            for (k, v) in job.finalMetrics ?? [:] { tags[MetricName.sanitize(k)] = String(v) }
            version = try await client.createModelVersion(name: name, source: source, runID: runID, tags: tags)
        }
        if let alias { try await client.setAlias(name: name, alias: alias, version: version) }
        return ModelVersion(name: name, version: version, jobID: job.id, runID: runID, source: source, createdAt: Date(),
                            aliases: alias.map { [$0] } ?? [])
    }

    private func unavailable<T>(_ call: () async throws -> T) async throws -> T {
        do { return try await call() } catch let error as MLflowClient.APIError {
            throw YardError(error.status == 404 ? .notFound : .unavailable, field: "mlflow", "MLflow refused: \(error.code): \(error.message.prefix(200))")
        } catch let error as YardError {
            throw error
        } catch {
            throw YardError(.unavailable, field: "mlflow", "MLflow is unreachable (\(error)); try again when it is up")
        }
    }
}
