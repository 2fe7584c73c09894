import Foundation
import YardDomain

/// Artifacts in a local folder. A put is an `AtomicFile` write, so a reader
/// never sees a half-written file.
public struct LocalArtifactStore: ArtifactStore {
    public let root: String

    public init(root: String) { self.root = root }

    public func path(for key: String) throws -> String {
        try ArtifactKey.validate(key)
        return root + "/" + key
    }

    @discardableResult
    public func put(file: String, key: String) async throws -> Int64 {
        let target = try path(for: key)
        return try Self.copy(from: file, to: target)
    }

    public func get(key: String, to path: String) async throws {
        let source = try self.path(for: key)
        guard FileManager.default.fileExists(atPath: source) else {
            throw YardError(.notFound, field: "key", "no artifact \(key)")
        }
        _ = try Self.copy(from: source, to: path)
    }

    public func exists(key: String) async throws -> Bool {
        FileManager.default.fileExists(atPath: try path(for: key))
    }

    static func copy(from source: String, to target: String) throws -> Int64 {
        let folder = (target as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw YardError(.unavailable, field: "artifacts", "cannot create \(folder): \(error.localizedDescription)")
        }
        try AtomicFile.write(to: target, permissions: 0o644) { output in
            guard try FileCopy.copy(from: source, into: output, target: target) else {
                throw YardError(.unavailable, field: "artifacts", "\(source) changed while it was being stored; it will be stored again later")
            }
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? NSNumber)?.int64Value ?? 0
        return size
    }
}
