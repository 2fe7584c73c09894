import Foundation
import YardArtifacts
import YardDatasets
import YardDomain
import YardJobs
import YardStore

/// `yard lineage` and `yard rerun`: a model version's or a job's whole
/// record, assembled from the store; and the same job submitted again on
/// the same pinned dataset version, starting weights and seed, refused in
/// one line when a piece of it is gone.
struct LineageService: Sendable {
    let control: JobControl
    let library: DatasetLibrary
    let artifacts: any ArtifactStore
    let dataDirectory: String
    var store: any JobStore { control.store }

    /// A job id, or a registered model as `NAME`, `NAME@ALIAS` or `NAME@vN`
    /// (a bare `NAME` that is also a job id is the job).
    func lineage(of reference: String) async throws -> Lineage {
        let (job, version) = try await resolve(reference)
        return try await lineage(job: job, asked: version)
    }

    func resolve(_ reference: String) async throws -> (Job, ModelVersion?) {
        if !reference.contains("@"), JobID.isValid(reference), let job = try await store.job(reference) { return (job, nil) }
        let model = try ModelReference.parse(reference, field: "ref")
        let versions = try await store.modelVersions(name: model.name)
        guard !versions.isEmpty else {
            throw YardError(.notFound, field: "ref", "no job or registered model \(reference.prefix(80)); give a job id or NAME@vN (`yard models list`)")
        }
        guard let version = model.pick(from: versions) else {
            throw YardError(.notFound, field: "ref", "model \(model.missing(among: versions))")
        }
        guard let job = try await store.job(version.jobID) else {
            throw YardError(.notFound, field: "ref", "model \(model.name) version \(version.version) came from job \(version.jobID), which is no longer recorded")
        }
        return (job, version)
    }

    func lineage(job: Job, asked: ModelVersion?) async throws -> Lineage {
        let registered = try await store.modelVersions(name: nil).filter { $0.jobID == job.id }
            .sorted { ($0.name, Int($0.version) ?? 0) < ($1.name, Int($1.version) ?? 0) }
        var history: [AliasChange] = []
        for name in Set(registered.map(\.name)).sorted() {
            let made = Set(registered.filter { $0.name == name }.map(\.version))
            history += try await store.aliasHistory(name: name, alias: nil, limit: 1000)
                .filter { change in change.version.map(made.contains) == true || change.previous.map(made.contains) == true }
        }
        history.sort { $0.time > $1.time }
        let train = job.config["train"]?.objectValue ?? [:]
        let trainedOn = try await dataset(of: job)
        let trial = try await sweep(of: job)
        let lastEpoch = try await store.epochs(of: job.id).max { $0.epoch < $1.epoch }?.metrics
        let states = try await store.events(after: 0, limit: 1000, filter: EventFilter(entity: .job, id: job.id, types: ["state"]))
        return Lineage(
            model: asked, registered: registered, job: .init(job), attempts: Lineage.Attempt.from(states), config: job.config,
            seed: train["seed"]?.intValue, deterministic: train["deterministic"]?.boolValue,
            dataset: trainedOn, code: .init(commit: job.gitCommit, dirty: job.provenance?.gitDirty, diff: job.provenance?.gitDiff),
            engine: job.versions ?? [:], device: job.device, host: job.provenance?.host, worker: job.worker,
            sweep: trial, parent: job.provenance?.parent, rerunOf: job.provenance?.rerunOf,
            metrics: job.finalMetrics, lastEpoch: lastEpoch, fitness: job.fitness, test: job.testMetrics, aliasHistory: history)
    }

    private func dataset(of job: Job) async throws -> Lineage.DatasetLineage {
        let data = job.config["train"]?["data"]?.stringValue
        guard let reference = job.dataset, let at = reference.lastIndex(of: "@") else {
            return .init(hash: job.datasetHash, data: data, version: nil, present: nil)
        }
        let name = String(reference[..<at]), id = String(reference[reference.index(after: at)...])
        let version = try await store.datasetVersions(name: name).first { $0.id == id }
        return .init(hash: job.datasetHash ?? id, data: data, version: version, present: version != nil && library.exists(id))
    }

    private func sweep(of job: Job) async throws -> Lineage.SweepLineage? {
        guard let id = job.config["metadata"]?["sweep_id"]?.stringValue else { return nil }
        let trial = job.config["metadata"]?["trial_number"]?.intValue
        let params = try await store.sweep(id)?.trials.first { $0.jobID == job.id }?.params
        return .init(id: id, trial: trial, params: params)
    }

    /// Submits the job again: its config with its secrets, on the same
    /// dataset version (or the latest, `onLatestData`), from the same
    /// starting weights, with the same seed. Refused, in one line naming
    /// what is gone, when the dataset version or the weights are.
    func rerun(_ reference: String, onLatestData: Bool) async throws -> Job {
        let (original, _) = try await resolve(reference)
        let label = "cannot rerun \(original.id)"
        guard original.model != "-", var document = Redaction.restore(original.config, secrets: try await store.secrets(of: original.id)).objectValue else {
            throw YardError(.conflict, field: "job", "\(label): its submission could not be read, so there is no config to run again")
        }
        document["task_id"] = nil
        // A rerun checks a result; it registers, deploys and joins a sweep never.
        document["deploy"] = nil
        if var mlflow = document["mlflow"]?.objectValue {
            mlflow["register_model"] = nil
            mlflow["register_alias"] = nil
            document["mlflow"] = .object(mlflow)
        }
        if var metadata = document["metadata"]?.objectValue {
            metadata["sweep_id"] = nil
            metadata["trial_number"] = nil
            document["metadata"] = metadata.isEmpty ? nil : .object(metadata)
        }
        var train = document["train"]?.objectValue ?? [:]
        // Recorded before seeds were: Ultralytics' defaults are what it ran with.
        if train["seed"] == nil { train["seed"] = .int(0) }
        if train["deterministic"] == nil { train["deterministic"] = .bool(true) }
        let data = train["data"]?.stringValue ?? ""
        if DatasetReference.isReference(data) {
            let pinned = try DatasetReference.parse(data)
            if onLatestData {
                train["data"] = .string(DatasetReference.scheme + pinned.name)
            } else if let id = pinned.version {
                let registered = try await store.datasetVersions(name: pinned.name).contains { $0.id == id }
                guard registered, library.exists(id) else {
                    throw YardError(.notFound, field: "train.data", "\(label): its dataset \(pinned.name)@\(id) is gone (\(registered ? "its files were removed from the server" : "the version is no longer registered")); `--on-latest-data` trains on the latest version instead")
                }
                let library = self.library, reference = pinned.name + "@" + id
                do throws(YardError) {
                    try await offloadThrowing { () throws(YardError) in try library.verify(id, reference: reference) }
                } catch {
                    throw YardError(error.code, field: "train.data", "\(label): \(error.message)")
                }
            }
        } else if data.hasPrefix("/"), !FileManager.default.fileExists(atPath: data) {
            throw YardError(.notFound, field: "train.data", "\(label): its dataset \(data) is gone")
        }
        document["train"] = .object(train)
        if let parent = original.provenance?.parent {
            try await checkWeights(parent, label: label)
        } else if let model = document["model"]?.stringValue, model.hasPrefix("/"), !FileManager.default.fileExists(atPath: model) {
            throw YardError(.notFound, field: "model", "\(label): its starting weights \(model) are gone")
        }
        let config = try JobConfigParser(baseDirectory: nil) { FileManager.default.fileExists(atPath: $0) }.validate(document)
        let provenance = JobProvenance(gitDirty: original.provenance?.gitDirty, gitDiff: original.provenance?.gitDiff, rerunOf: original.id)
        return try await control.submit(config, gitCommit: original.gitCommit, provenance: provenance)
    }

    /// The registered version it started from still has its weights somewhere the workers look.
    private func checkWeights(_ parent: ParentModel, label: String) async throws {
        let cached = "\(dataDirectory)/models/sha256/\(parent.sha256.prefix(2))/\(parent.sha256).pt"
        if FileManager.default.fileExists(atPath: cached) { return }
        for location in parent.locations where location.kind == .artifact {
            if (try? await artifacts.exists(key: location.key)) == true { return }
        }
        throw YardError(.notFound, field: "model", "\(label): the weights of \(parent.name) version \(parent.version) it started from are gone (sha256 \(parent.sha256.prefix(12)))")
    }
}
