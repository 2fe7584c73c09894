import YardDomain

/// Keeps a job's files (weights, results.csv, plots, the log) under keys of
/// the form `JOB_ID/relative/path`. Drivers: `LocalArtifactStore` (a folder)
/// and `S3ArtifactStore` (S3 or MinIO).
public protocol ArtifactStore: Sendable {
    /// Stores a local file under `key`; returns its size in bytes.
    @discardableResult
    func put(file: String, key: String) async throws -> Int64
    /// Copies the object at `key` to a local path.
    func get(key: String, to path: String) async throws
    func exists(key: String) async throws -> Bool
}

public enum ArtifactKey {
    /// Checks a key is relative, has no `..`, and only ordinary characters:
    /// every key from outside is confined to the store's root.
    public static func validate(_ key: String) throws(YardError) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !key.hasPrefix("/"), key.utf8.count <= 1024,
              parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
              !key.contains("\0"), !key.contains("\\")
        else {
            throw YardError(.invalidInput, field: "key", "artifact key \"\(key.prefix(80))\" must be a relative path without '..'")
        }
    }
}
