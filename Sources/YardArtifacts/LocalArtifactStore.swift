import Foundation
import YardDomain

/// Artifacts in a local folder. A put copies to a temporary name and renames,
/// so a reader never sees a half-written file.
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
        let fm = FileManager.default
        let folder = (target as NSString).deletingLastPathComponent
        let tmp = target + ".part-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw YardError(.unavailable, field: "artifacts", "cannot create \(folder): \(error.localizedDescription)")
        }
        guard try FileCopy.copy(from: source, to: tmp) else {
            throw YardError(.unavailable, field: "artifacts", "\(source) changed while it was being stored; it will be stored again later")
        }
        guard rename(tmp, target) == 0 else {
            try? fm.removeItem(atPath: tmp)
            throw YardError(.unavailable, field: "artifacts", "cannot store \(source) as \(target)")
        }
        let size = (try? fm.attributesOfItem(atPath: target)[.size] as? NSNumber)?.int64Value ?? 0
        return size
    }
}
