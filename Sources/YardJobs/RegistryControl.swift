import Foundation
import YardDomain
import YardStore

/// Every change of the model registry's records: a version registered, its
/// weights named, checked, exported or its mirror failing, an alias moved,
/// a model's serving settings, and what the server decided about a job's
/// registration. `ModelRegistry` (serving) fetches weights, runs health
/// checks and queues the MLflow mirror; the records change here, each with
/// its event in the same transaction.
public struct RegistryControl: Sendable {
    public let store: any JobStore

    public init(store: any JobStore) {
        self.store = store
    }

    /// The next version of `draft.name` (the same job under the same name
    /// again: the version it made, `created` false).
    public func register(_ draft: ModelVersion) async throws -> (version: ModelVersion, created: Bool) {
        var draft = draft
        draft.createdBy = draft.createdBy ?? Caller.current?.name
        return try await store.createModelVersion(draft)
    }

    /// A version mirrored from MLflow before the store was the registry gets
    /// the weights it names (fetched and hashed by the caller).
    @discardableResult
    public func weightsAdopted(name: String, version: String, sha256: String, size: Int64, locations: [WeightsLocation]) async throws -> ModelVersion {
        try await store.updateModelVersion(name: name, version: version) {
            $0.sha256 = sha256
            $0.size = size
            $0.locations = locations
        }
    }

    /// The outcome of loading the version beside a served one.
    public func healthChecked(name: String, version: String, _ check: HealthCheck) async throws {
        try await store.updateModelVersion(name: name, version: version) { $0.health = check }
    }

    /// Points an alias at a version (nil removes it), recorded in its history
    /// with the user who moved it (by default the user whose request this is).
    @discardableResult
    public func moveAlias(name: String, alias: String, to version: String?, reason: String, at time: Date,
                          by user: String? = Caller.current?.name) async throws -> AliasChange {
        try Self.authoriseAliasMove()
        return try await store.setModelAlias(name: name, alias: alias, version: version, reason: reason, by: user, time: time)
    }

    /// The version's weights in another format were made.
    @discardableResult
    public func exported(name: String, version: String, format: String, _ made: ExportedWeights) async throws -> ModelVersion {
        try await store.updateModelVersion(name: name, version: version) {
            $0.exports = ($0.exports ?? [:]).merging([format: made]) { $1 }
        }
    }

    /// The MLflow mirror operation of a change could not be queued: said on the version.
    public func mirrorFailed(name: String, version: String, reason: String) async throws {
        try await store.updateModelVersion(name: name, version: version) { $0.mirrorError = reason }
    }

    /// MLflow's registry holds the version now, under its own number.
    public func mirrored(name: String, version: String, mlflowVersion: String) async throws {
        try await store.updateModelVersion(name: name, version: version) {
            $0.mlflowVersion = mlflowVersion
            $0.mirrorError = nil
        }
    }

    /// Replaces a model's serving settings.
    public func setSettings(name: String, _ settings: ModelSettings) async throws {
        try await store.setModelSettings(name: name, settings)
    }

    /// What the server decided about a finished job's `deploy:` block: its
    /// `registration` (a failed try), `registered` or `deployment` event.
    public func decided(jobID: String, _ type: String, _ payload: JSONValue) async throws {
        try await store.appendEvent(jobID: jobID, type: type, payload: payload)
    }

    /// Aliases say what is served: only an admin moves them (the routes that
    /// only move aliases need one; this holds for a registration that asks
    /// for an alias too). The server's own moves (deploy, auto-registration)
    /// have no caller.
    public static func authoriseAliasMove(_ caller: Caller? = Caller.current, field: String = "alias") throws(YardError) {
        guard let caller, caller.role != .admin else { return }
        throw YardError(.forbidden, field: field,
                        "forbidden: \(caller.name) is a \(caller.role.rawValue); moving an alias (\(field)) needs an admin; leave it out or ask an admin")
    }
}
