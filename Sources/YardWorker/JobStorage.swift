import Crypto
import Foundation
import YardArtifacts
import YardDatasets
import YardDomain

/// Where one job's files go: S3/MinIO when its config's `minio:` section (or
/// the worker's environment) names an endpoint, else the worker's own store.
struct JobStorage: Sendable {
    let artifacts: any ArtifactStore
    let s3: S3Client?
    let bucket: String?

    var isRemote: Bool { s3 != nil }

    static func resolve(config: JSONValue, fallback: any ArtifactStore,
                        environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> JobStorage {
        guard let settings = try S3ArtifactStore.settings(from: config["minio"], environment: environment) else {
            return JobStorage(artifacts: fallback, s3: nil, bucket: nil)
        }
        let client = try S3Client(endpoint: settings.endpoint, accessKey: settings.accessKey, secretKey: settings.secretKey,
                                  region: settings.region)
        do {
            try await client.createBucket(settings.bucket)
        } catch let failure as S3Client.Failure {
            throw YardError(.unavailable, field: "minio.MINIO_BUCKET", "cannot use bucket \(settings.bucket): \(failure.code): \(failure.message)")
        }
        return JobStorage(artifacts: S3ArtifactStore(client: client, bucket: settings.bucket), s3: client, bucket: settings.bucket)
    }

    /// An `s3://` dataset pulled into a local folder (see `DatasetCache`).
    func pullDataset(_ uri: String, dataDirectory: String, jobDirectory: String, cache: Bool) async throws -> (DatasetCache.Pulled, String) {
        guard let s3 else {
            throw YardError.invalid("train.data", "\(uri) is on S3 but neither the config's minio: section nor the worker's environment names MINIO_ENDPOINT, MINIO_ID and MINIO_SECRET_KEY")
        }
        let (bucket, prefix) = try DatasetCache.parse(uri)
        // Under datasets/s3: beside the dataset store (versions/, objects/), never in it.
        let root = cache ? "\(dataDirectory)/datasets/s3/\(bucket)/\(prefix)".replacingOccurrences(of: "//", with: "/") : jobDirectory + "/dataset"
        if !cache { try? FileManager.default.removeItem(atPath: root) }
        let pulled = try await DatasetCache(client: s3, root: root.hasSuffix("/") ? String(root.dropLast()) : root).pull(uri)
        // Content hash from the objects' ETags (their MD5s), independent of where the copy lives.
        let objects = try await s3.list(bucket: bucket, prefix: prefix).sorted { $0.key < $1.key }
        var hasher = SHA256()
        for object in objects { hasher.update(data: Data("\(object.key.dropFirst(prefix.count))\0\(object.etag)\n".utf8)) }
        return (pulled, hasher.finalize().hex)
    }
}
