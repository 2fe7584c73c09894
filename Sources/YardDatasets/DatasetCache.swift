import Foundation
import YardArtifacts
import YardDomain

/// Pulls an `s3://bucket/prefix` YOLO dataset into a local folder. With the
/// cache on, the folder is shared (`DATA/datasets/s3/bucket/prefix`) and keyed
/// by the objects' ETags: an object is downloaded only when it is new or
/// changed, so a second job on the same data downloads nothing. With
/// `minio.cache: false` every job pulls a fresh copy into its own folder.
public struct DatasetCache: Sendable {
    public struct Pulled: Sendable {
        /// What to give Ultralytics as `data`: the local data.yaml, or the folder.
        public var data: String
        public var objects: Int
        public var downloaded: Int
        public var bytes: Int64
    }

    let client: S3Client
    let root: String

    public init(client: S3Client, root: String) {
        self.client = client
        self.root = root
    }

    /// Parses `s3://bucket/prefix`.
    public static func parse(_ uri: String) throws(YardError) -> (bucket: String, prefix: String) {
        let rest = uri.dropFirst("s3://".count)
        let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bucket = parts.first, !bucket.isEmpty else {
            throw YardError.invalid("train.data", "\(uri) must look like s3://bucket/prefix")
        }
        var prefix = parts.count > 1 ? String(parts[1]) : ""
        if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
        guard !prefix.split(separator: "/").contains("..") else { throw YardError.invalid("train.data", "\(uri) must not contain '..'") }
        return (String(bucket), prefix)
    }

    /// `rewriteYAML: false` leaves the files exactly as in the bucket (for
    /// `datasets add`, whose version id is the hash of those bytes).
    public func pull(_ uri: String, rewriteYAML: Bool = true) async throws -> Pulled {
        let (bucket, prefix) = try Self.parse(uri)
        let objects = try await client.list(bucket: bucket, prefix: prefix)
        guard !objects.isEmpty else {
            throw YardError(.notFound, field: "train.data", "\(uri) holds no objects; upload the dataset there first")
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        let manifestPath = root + "/.trainyard-manifest.json"
        var manifest = (fm.contents(atPath: manifestPath)).flatMap { try? JSONDecoder().decode([String: String].self, from: $0) } ?? [:]
        var downloaded = 0
        var bytes: Int64 = 0
        var wanted = Set<String>()
        for object in objects where !object.key.hasSuffix("/") {
            let relative = String(object.key.dropFirst(prefix.count))
            try ArtifactKey.validate(relative)  // confined to the cache folder
            wanted.insert(relative)
            let local = root + "/" + relative
            if manifest[relative] == object.etag, fm.fileExists(atPath: local) { continue }
            try await client.getFile(bucket: bucket, key: object.key, to: local)
            manifest[relative] = object.etag
            downloaded += 1
            bytes += object.size
        }
        // Objects deleted from the bucket leave the copy too.
        for stale in manifest.keys where !wanted.contains(stale) {
            try? fm.removeItem(atPath: root + "/" + stale)
            manifest[stale] = nil
        }
        try AtomicFile.write(try JSONEncoder().encode(manifest), to: manifestPath)
        let yaml = wanted.contains("data.yaml") ? "data.yaml" : wanted.first { $0.hasSuffix(".yaml") && !$0.contains("/") }
        var data = root
        if let yaml {
            data = root + "/" + yaml
            if rewriteYAML { try rewritePath(data) }
        }
        return Pulled(data: data, objects: wanted.count, downloaded: downloaded, bytes: bytes)
    }

    /// Points the YAML's top-level `path:` at the local copy.
    private func rewritePath(_ yamlPath: String) throws {
        let text = (try? String(contentsOfFile: yamlPath, encoding: .utf8)) ?? ""
        let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("path:") }
        let rewritten = (["path: \(root)"] + kept.map(String.init)).joined(separator: "\n")
        try AtomicFile.write(Data(rewritten.utf8), to: yamlPath)
    }
}
