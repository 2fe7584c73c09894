import Foundation
import YardDomain
import YardJobs
import YardStore
import YardTracker

/// The model registry of record. Versions are numbered in Trainyard's
/// store and their weights kept by content hash, so the embedded default
/// registers, lists and serves with no MLflow. When a job has an MLflow
/// server, each version and every alias move is also sent to MLflow's
/// registry through the tracking spool: never waited for, replayed after
/// an outage, in the order it was made.
public struct ModelRegistry: Sendable {
    public let store: any JobStore
    public let weights: WeightsCache
    let spool: TrackingSpool?
    /// When set, an alias that is served moves only to a version that
    /// passed its health check there (the hot swap).
    let server: ModelServer?
    let defaultTrackingURI: String?
    let now: @Sendable () -> Date
    /// Serialises alias moves: shared by every registry value of one server.
    let lock: AsyncLock

    /// Every change of the registry's records goes through the job layer.
    var records: RegistryControl { RegistryControl(store: store) }

    public init(store: any JobStore, weights: WeightsCache, spool: TrackingSpool?, server: ModelServer? = nil, defaultTrackingURI: String?,
                lock: AsyncLock = AsyncLock(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.lock = lock
        self.store = store
        self.weights = weights
        self.spool = spool
        self.server = server
        self.defaultTrackingURI = defaultTrackingURI
        self.now = now
    }

    /// `yard models register JOB NAME [--alias A]`: the job's best weights
    /// become the next version of NAME (the same job again: the version it
    /// made). The weights are fetched and hashed before the version exists.
    /// `aliasExisting`: whether a version the job made already gets the
    /// alias too (asked by hand: yes; the server's own registration of a
    /// job it saw before, after a restart: no, or it would undo every move
    /// made since).
    public func register(jobID: String, name: String, alias: String?, reason: String = "register",
                         aliasExisting: Bool = true) async throws -> (version: ModelVersion, created: Bool) {
        try ModelVersion.validateName(name, field: "name")
        if let alias {
            try ModelVersion.validateName(alias, field: "alias")
            try RegistryControl.authoriseAliasMove()  // before a version is made for it
        }
        let job = try await store.require(jobID)
        guard job.state == .succeeded else {
            throw YardError(.conflict, field: "job_id", "job \(jobID) is \(job.state.rawValue); only a succeeded job can be registered")
        }
        if var existing = try await store.modelVersions(name: name).first(where: { $0.jobID == jobID }) {
            if existing.sha256 == nil {
                // Mirrored from MLflow before the store was the registry: its weights are named now.
                let candidates = try await weights.candidates(for: job)
                let adopted = try await weights.adopt(candidates, job: job)
                existing = try await records.weightsAdopted(name: name, version: existing.version, sha256: adopted.sha256, size: adopted.size,
                                                            locations: [adopted.location] + candidates.filter { $0 != adopted.location })
            }
            if let alias, aliasExisting, !existing.aliases.contains(alias) {
                _ = try await setAlias(name: name, version: existing.version, alias: alias, reason: reason)
            }
            return (try await version(name: name, number: existing.version), false)
        }
        let candidates = try await weights.candidates(for: job)
        let adopted = try await weights.adopt(candidates, job: job)
        var draft = ModelVersion(name: name, version: "", jobID: job.id, runID: job.mlflowRunID ?? "",
                                 source: Self.describe(adopted.location), createdAt: now())
        draft.sha256 = adopted.sha256
        draft.size = adopted.size
        // The location that answered first, then the others.
        draft.locations = [adopted.location] + candidates.filter { $0 != adopted.location }
        draft.task = Self.task(of: job.model)
        // Who asked (the API), else whose job it is (auto-registration).
        draft.createdBy = Caller.current?.name ?? job.owner
        let metrics = (job.finalMetrics ?? [:]).merging(job.testMetrics ?? [:]) { a, _ in a }
        draft.metrics = metrics.isEmpty ? nil : metrics
        let trackingURI = try await MLflowTracker.trackingURI(job, secrets: store, defaultURI: defaultTrackingURI)
        if trackingURI == nil { draft.runID = "" }
        let (version, created) = try await records.register(draft)
        if created, let trackingURI, let spool {
            let tags = MLflowTracker.versionTags(job, version: version.version, sha256: adopted.sha256, metrics: metrics).mapValues(JSONValue.string)
            var op: [String: JSONValue] = ["op": "model_version", "tracking_uri": .string(trackingURI), "name": .string(name),
                                           "version": .string(version.version), "job_id": .string(job.id),
                                           "experiment": .string(job.experiment), "tags": .object(tags)]
            if let runID = job.mlflowRunID { op["run_id"] = .string(runID) }
            await spoolMirror(op, name: name, version: version.version)
        }
        if let alias { _ = try await setAlias(name: name, version: version.version, alias: alias, reason: reason) }
        return (try await self.version(name: name, number: version.version), created)
    }

    /// Points an alias at a version (recorded in its history, mirrored).
    /// An alias requests are served by (`production`, or one a request
    /// named) first has the new version loaded beside the serving one and
    /// checked; a version that fails leaves the alias where it was, and the
    /// reason is kept on the version. Requests that started on the old
    /// version finish there; new ones resolve the alias to the new one.
    /// Moves are made one at a time (checked, committed and sent to the
    /// mirror in the order they were asked for).
    @discardableResult
    public func setAlias(name: String, version: String?, alias: String, reason: String) async throws -> AliasChange {
        try await lock.run { try await moveAlias(name: name, version: version, alias: alias, reason: reason) }
    }

    private func moveAlias(name: String, version: String?, alias: String, reason: String) async throws -> AliasChange {
        try ModelVersion.validateName(alias, field: "alias")
        if let server, let number = version, await server.isServed(alias: alias) {
            let target = try await self.version(name: name, number: number)
            let check = await server.healthCheck(target)
            try await records.healthChecked(name: name, version: number, check)
            if !check.ok {
                let current = try await store.modelVersions(name: name).first { $0.aliases.contains(alias) }?.version
                throw YardError(.conflict, field: "version",
                                "\(name) version \(number) failed its health check (\(check.reason ?? "?")); \(alias) stays \(current.map { "on version \($0)" } ?? "unset")")
            }
        }
        let change = try await records.moveAlias(name: name, alias: alias, to: version, reason: reason, at: now())
        try await mirrorAlias(change)
        return change
    }

    /// `yard models rollback NAME ALIAS`: the alias goes back to the version
    /// it pointed at before its current one. Rollbacks undo moves in turn
    /// (1→2→3, rollback: 2, rollback: 1), and a removed alias comes back.
    public func rollback(name: String, alias: String) async throws -> AliasChange {
        try await lock.run {
            let history = try await store.aliasHistory(name: name, alias: alias, limit: 10_000)
            guard !history.isEmpty else { throw YardError(.notFound, field: "alias", "model \(name) has no alias \(alias)") }
            // The alias's states, oldest first, each rollback taking the last one off.
            var states: [String?] = []
            for change in history.reversed() {
                if change.reason.hasPrefix("rollback") {
                    if !states.isEmpty { states.removeLast() }
                    if states.last != change.version { states.append(change.version) }
                } else if states.last != change.version {
                    states.append(change.version)
                }
            }
            let current = states.last ?? nil
            guard let previous = states.dropLast().last(where: { $0 != nil }) ?? nil else {
                throw YardError(.conflict, field: "alias", "\(name)@\(alias) has no earlier version to go back to (`yard models history \(name)`)")
            }
            return try await moveAlias(name: name, version: previous, alias: alias, reason: "rollback from \(current ?? "(removed)")")
        }
    }

    /// `yard models export NAME VERSION --format onnx`: the version's
    /// weights in another format, made once by the engine on this server
    /// and kept by content hash beside them (made again if the file is
    /// gone). Concurrent calls for the same version share one export.
    public func export(name: String, version number: String, format: String) async throws -> ModelVersion {
        try ExportedWeights.validate(format: format)
        guard let server else {
            throw YardError(.unavailable, field: "format", "this server does not serve models, so it cannot export them; run yard serve or yard up")
        }
        let version = try await self.version(name: name, number: number)
        if let made = version.exports?[format], (try? weights.file(for: made, of: version)) != nil { return version }
        let made = try await server.export(version, format: format)
        return try await records.exported(name: name, version: number, format: format, made)
    }

    /// A model's serving settings (defaults when none were set).
    public func settings(name: String) async throws -> ModelSettings {
        _ = try await resolve(name: name, version: nil, alias: nil)
        return try await store.modelSettings(name: name) ?? ModelSettings()
    }

    /// Replaces a model's serving settings; the next request uses them.
    public func setSettings(name: String, _ settings: ModelSettings) async throws -> ModelSettings {
        _ = try await resolve(name: name, version: nil, alias: nil)
        try settings.blurFaces?.validate()
        try await records.setSettings(name: name, settings)
        return settings
    }

    /// A version by number, with its aliases.
    public func version(name: String, number: String) async throws -> ModelVersion {
        guard let found = try await store.modelVersions(name: name).first(where: { $0.version == number }) else {
            throw YardError(.notFound, field: "version", "no version \(number) of model \(name); `yard models list` shows them")
        }
        return found
    }

    /// What `?version=` / `?alias=` / neither names: a number, an alias, or
    /// by default `production`, else the latest version.
    public func resolve(name: String, version: String?, alias: String?) async throws -> ModelVersion {
        try ModelVersion.validateName(name, field: "name")
        let versions = try await store.modelVersions(name: name)
        guard !versions.isEmpty else {
            throw YardError(.notFound, field: "model", "no model \(name); `yard models list` shows the registered ones")
        }
        if let version {
            guard let found = versions.first(where: { $0.version == version }) else {
                throw YardError(.notFound, field: "version", "model \(name) has no version \(version) (it has \(versions.map(\.version).reversed().joined(separator: ", ")))")
            }
            return found
        }
        if let alias {
            guard let found = versions.first(where: { $0.aliases.contains(alias) }) else {
                throw YardError(.notFound, field: "alias", "model \(name) has no alias \(alias)")
            }
            return found
        }
        return versions.first { $0.aliases.contains("production") } ?? versions.max { (Int($0.version) ?? 0) < (Int($1.version) ?? 0) }!
    }

    private func mirrorAlias(_ change: AliasChange) async throws {
        guard let spool else { return }
        // The version's job says which MLflow server; a removed alias, the previous version's.
        guard let number = change.version ?? change.previous,
              let version = try await store.modelVersions(name: change.name).first(where: { $0.version == number }),
              let job = try await store.job(version.jobID),
              let trackingURI = try await MLflowTracker.trackingURI(job, secrets: store, defaultURI: defaultTrackingURI) else { return }
        var op: [String: JSONValue] = ["op": "model_alias", "tracking_uri": .string(trackingURI), "name": .string(change.name),
                                       "alias": .string(change.alias), "job_id": .string(job.id), "experiment": .string(job.experiment)]
        op["version"] = change.version.map { .string($0) } ?? .null
        if let runID = job.mlflowRunID { op["run_id"] = .string(runID) }
        await spoolMirror(op, name: change.name, version: number)
    }

    /// Queues a mirror operation. The registry's change is made already:
    /// one that cannot be queued is said on the version, never a failed call.
    private func spoolMirror(_ op: [String: JSONValue], name: String, version: String) async {
        guard let spool else { return }
        do {
            try await spool.append(jobID: TrackingSpool.modelKey(name), op)
        } catch {
            let reason = Redaction.redactText("cannot queue the MLflow mirror operation: \(error)")
            try? await records.mirrorFailed(name: name, version: version, reason: reason)
        }
    }

    static func describe(_ location: WeightsLocation) -> String {
        switch location.kind {
        case .artifact: return location.key
        case .s3: return "s3://\(location.bucket ?? "?")/\(location.key)"
        case .mlflow: return "runs:/\(location.runID ?? "?")/\(location.key)"
        }
    }

    /// Ultralytics' task from a model name (`yolov8n-cls.pt` is a classifier).
    static func task(of model: String) -> String {
        let stem = (model as NSString).lastPathComponent.lowercased()
        if stem.contains("-cls") { return "classify" }
        if stem.contains("-seg") { return "segment" }
        if stem.contains("-pose") { return "pose" }
        if stem.contains("-obb") { return "obb" }
        return "detect"
    }
}
