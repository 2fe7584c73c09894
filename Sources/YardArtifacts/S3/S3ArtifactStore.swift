import Foundation
import YardDomain

/// Artifacts in an S3 bucket (or MinIO), under an optional prefix.
public struct S3ArtifactStore: ArtifactStore {
    public let client: S3Client
    public let bucket: String
    public let prefix: String

    public init(client: S3Client, bucket: String, prefix: String = "") {
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
    }

    public func objectKey(_ key: String) throws -> String {
        try ArtifactKey.validate(key)
        return prefix + key
    }

    @discardableResult
    public func put(file: String, key: String) async throws -> Int64 {
        try await client.putFile(file, bucket: bucket, key: try objectKey(key))
    }

    public func get(key: String, to path: String) async throws {
        do {
            try await client.getFile(bucket: bucket, key: try objectKey(key), to: path)
        } catch let failure as S3Client.Failure where failure.status == 404 {
            throw YardError(.notFound, field: "key", "no artifact \(key) in s3://\(bucket)/\(prefix)")
        }
    }

    public func exists(key: String) async throws -> Bool {
        try await client.head(bucket: bucket, key: try objectKey(key)) != nil
    }

    /// The S3 settings of a job config's `minio:` section, else of the
    /// worker's environment (same names). Nil when neither names an endpoint.
    public static func settings(from section: JSONValue?, environment: [String: String]) throws(YardError) -> Settings? {
        func value(_ name: String) -> String? {
            section?[name]?.stringValue ?? environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let endpoint = value("MINIO_ENDPOINT") else { return nil }
        guard let id = value("MINIO_ID") ?? value("AWS_ACCESS_KEY_ID"), let secret = value("MINIO_SECRET_KEY") ?? value("AWS_SECRET_ACCESS_KEY") else {
            throw YardError.invalid("minio", "MINIO_ENDPOINT is set but MINIO_ID and MINIO_SECRET_KEY are not; give both")
        }
        return Settings(endpoint: endpoint, accessKey: id, secretKey: secret, bucket: value("MINIO_BUCKET") ?? "trainyard",
                        region: value("MINIO_REGION") ?? value("AWS_REGION") ?? "us-east-1")
    }

    public struct Settings: Sendable, Equatable {
        public var endpoint: String
        public var accessKey: String
        public var secretKey: String
        public var bucket: String
        public var region: String
    }
}
