import Crypto
import Foundation
import YardArtifacts
import YardDomain
import YardStore
import YardTracker

/// Model weights on this machine, named by content: `ROOT/sha256/ab/HEX.pt`.
/// A version's weights are fetched once from the first of its locations
/// that answers (the server's artifact folder, S3, the MLflow run), checked
/// against the version's sha256, and kept: a file here is always whole
/// (written under a temporary name, then renamed) and always what its
/// name says.
public struct WeightsCache: Sendable {
    public let root: String
    let artifacts: any ArtifactStore
    let store: any JobStore
    let environment: [String: String]
    let defaultTrackingURI: String?
    /// Largest weights file accepted from a location (a model is tens of MB).
    let limit: Int64

    public init(root: String, artifacts: any ArtifactStore, store: any JobStore,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                defaultTrackingURI: String? = nil, limit: Int64 = 4 << 30) {
        self.root = root
        self.artifacts = artifacts
        self.store = store
        self.environment = environment
        self.defaultTrackingURI = defaultTrackingURI
        self.limit = limit
    }

    /// Where a file with this content is kept (`ext`: pt, or an export's format).
    public func path(sha256: String, ext: String = "pt") -> String {
        "\(root)/sha256/\(sha256.prefix(2))/\(sha256).\(ext)"
    }

    /// The export's file here, if it is (exports are made on this server;
    /// one that is gone is made again by `yard models export`).
    public func file(for export: ExportedWeights, of version: ModelVersion) throws(YardError) -> String {
        guard export.sha256.count == 64, export.sha256.allSatisfy(\.isHexDigit), let ext = ExportedWeights.formats[export.format] else {
            throw YardError(.conflict, field: "runtime", "\(version.name) version \(version.version)'s \(export.format) export is not one this server made; make it again: yard models export \(version.name) \(version.version)")
        }
        let target = path(sha256: export.sha256, ext: ext)
        guard FileManager.default.fileExists(atPath: target) else {
            throw YardError(.conflict, field: "runtime", "\(version.name) version \(version.version)'s \(export.format) file is not on this server; make it again: yard models export \(version.name) \(version.version) --format \(export.format)")
        }
        return target
    }

    /// A private scratch folder in the cache's file system (what is made
    /// there is linked into place by `keep`; the caller removes the folder).
    func scratchFolder() throws -> String {
        let folder = "\(root)/tmp/export-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Removes what fetches and exports left half-made (a server killed
    /// mid-way); called at start, before anything writes there.
    func clearScratch() {
        try? FileManager.default.removeItem(atPath: root + "/tmp")
    }

    /// Keeps a finished file by its content hash; returns the hash and size.
    /// The temporary file is removed.
    func keep(_ temporary: String, ext: String) async throws -> (sha256: String, size: Int64) {
        defer { unlink(temporary) }
        let size = (try FileManager.default.attributesOfItem(atPath: temporary)[.size] as? NSNumber)?.int64Value ?? 0
        let digest = try await offloadThrowing { () throws(YardError) in try FileDigest.sha256(of: temporary) }
        let target = path(sha256: digest, ext: ext)
        if !FileManager.default.fileExists(atPath: target) { try place(temporary, at: target) }
        return (digest, size)
    }

    /// The version's weights file here, fetched first if it is not.
    public func file(for version: ModelVersion) async throws -> String {
        guard let sha256 = version.sha256, sha256.count == 64, sha256.allSatisfy(\.isHexDigit) else {
            throw YardError(.conflict, field: "version", "\(version.name) version \(version.version) has no weights hash; register its job again")
        }
        let target = path(sha256: sha256)
        if FileManager.default.fileExists(atPath: target) { return target }
        let job = try await store.require(version.jobID)
        let (temporary, digest, _) = try await fetch(version.locations ?? [], job: job)
        defer { unlink(temporary) }
        guard digest == sha256 else {
            throw YardError(.conflict, field: "weights", "\(version.name) version \(version.version)'s weights changed where they are kept (sha256 \(digest.prefix(12)), registered \(sha256.prefix(12))); they are not served")
        }
        try place(temporary, at: target)
        return target
    }

    /// Fetches weights from the first location that has them and keeps
    /// them by their hash. Returns the location used, the hash and size.
    public func adopt(_ locations: [WeightsLocation], job: Job) async throws -> (location: WeightsLocation, sha256: String, size: Int64) {
        let (temporary, digest, location) = try await fetch(locations, job: job)
        defer { unlink(temporary) }
        let size = (try? FileManager.default.attributesOfItem(atPath: temporary)[.size] as? NSNumber)?.int64Value ?? 0
        let target = path(sha256: digest)
        if !FileManager.default.fileExists(atPath: target) { try place(temporary, at: target) }
        return (location, digest, size)
    }

    /// The places a job's best weights may be: the server's artifact
    /// folder, S3 when the job (or the server) has S3 settings, the job's
    /// MLflow run. Each is only a candidate until a fetch succeeds.
    public func candidates(for job: Job) async throws -> [WeightsLocation] {
        let key = "\(job.id)/weights/best.pt"
        var found: [WeightsLocation] = []
        if (try? await artifacts.exists(key: key)) == true { found.append(WeightsLocation(kind: .artifact, key: key)) }
        if let settings = try await s3Settings(for: job) {
            found.append(WeightsLocation(kind: .s3, key: key, bucket: settings.bucket, endpoint: settings.endpoint))
        }
        if let runID = job.mlflowRunID {
            found.append(WeightsLocation(kind: .mlflow, key: "weights/best.pt", runID: runID))
        }
        return found
    }

    /// The S3 settings the server uses for a job's weights: the job's own
    /// `minio:` section when it names an endpoint and its credentials, else
    /// the server's `MINIO_*` environment. Never a mix: the server's keys
    /// never sign a request to an endpoint a job config chose.
    func s3Settings(for job: Job) async throws -> S3ArtifactStore.Settings? {
        let full = Redaction.restore(job.config, secrets: try await store.secrets(of: job.id))
        if let section = full["minio"], section["MINIO_ENDPOINT"]?.stringValue != nil {
            let hasKeys = (section["MINIO_ID"] ?? section["AWS_ACCESS_KEY_ID"]) != nil && (section["MINIO_SECRET_KEY"] ?? section["AWS_SECRET_ACCESS_KEY"]) != nil
            if hasKeys { return try? S3ArtifactStore.settings(from: section, environment: [:]) }
            // The server's own keys, for the server's own endpoint only.
            guard var own = try? S3ArtifactStore.settings(from: nil, environment: environment),
                  own.endpoint == section["MINIO_ENDPOINT"]?.stringValue else { return nil }
            if let bucket = section["MINIO_BUCKET"]?.stringValue { own.bucket = bucket }
            return own
        }
        return try? S3ArtifactStore.settings(from: nil, environment: environment)
    }

    private func fetch(_ locations: [WeightsLocation], job: Job) async throws -> (String, String, WeightsLocation) {
        try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
        var reasons: [String] = []
        for location in locations {
            let temporary = "\(root)/tmp/\(UUID().uuidString).pt"
            do {
                try await get(location, job: job, to: temporary)
                let size = (try FileManager.default.attributesOfItem(atPath: temporary)[.size] as? NSNumber)?.int64Value ?? 0
                guard size > 0, size <= limit else {
                    throw YardError(.invalidInput, field: "weights", "the weights file is \(size) bytes")
                }
                return (temporary, try await offloadThrowing { () throws(YardError) in try FileDigest.sha256(of: temporary) }, location)
            } catch {
                unlink(temporary)
                reasons.append("\(location.kind.rawValue) \(location.key): \(Redaction.redactText("\(error)").prefix(200))")
            }
        }
        throw YardError(.notFound, field: "weights", reasons.isEmpty
                        ? "job \(job.id)'s best weights are in no place this server can read (no artifact, no S3 settings, no MLflow run)"
                        : "job \(job.id)'s best weights could not be fetched: " + reasons.joined(separator: "; "))
    }

    private func get(_ location: WeightsLocation, job: Job, to path: String) async throws {
        switch location.kind {
        case .artifact:
            try await artifacts.get(key: location.key, to: path)
        case .s3:
            guard let settings = try await s3Settings(for: job), let bucket = location.bucket, location.endpoint == nil || location.endpoint == settings.endpoint else {
                throw YardError(.unavailable, field: "minio", "no S3 credentials for \(location.endpoint ?? "the bucket") (the job's minio: section or the server's MINIO_* environment)")
            }
            let client = try S3Client(endpoint: settings.endpoint, accessKey: settings.accessKey,
                                      secretKey: settings.secretKey, region: settings.region)
            try await client.getFile(bucket: bucket, key: location.key, to: path)
        case .mlflow:
            guard let runID = location.runID,
                  let uri = try await MLflowTracker.trackingURI(job, secrets: store, defaultURI: defaultTrackingURI) else {
                throw YardError(.unavailable, field: "mlflow", "the job names no MLflow server")
            }
            let client = MLflowClient(trackingURI: uri)
            let run = try await client.getRun(runID)
            try await client.downloadArtifact(artifactURI: run.artifactURI, path: location.key, to: path, limit: Int(limit))
        }
    }

    private func place(_ temporary: String, at target: String) throws {
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // A link, not a rename: the temporary file is removed by the caller
        // and a concurrent fetch of the same hash finds the target whole.
        if link(temporary, target) != 0 && errno != EEXIST {
            let reason = String(cString: strerror(errno))
            throw YardError(.unavailable, field: "weights", "cannot keep weights at \(target): \(reason)")
        }
    }
}
