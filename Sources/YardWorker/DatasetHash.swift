import Crypto
import Foundation
import YardDomain

/// A content hash of a dataset, for lineage: sha256 over every file's
/// relative path and sha256, in path order. A detection dataset is its
/// data.yaml plus the folder its `path:` names (else the YAML's folder); a
/// classification dataset is its folder.
public enum DatasetHash {
    public static func compute(data: String) -> String? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: data, isDirectory: &isDirectory) else { return nil }
        var hasher = SHA256()
        let root: String
        if isDirectory.boolValue {
            root = data
        } else {
            guard let yaml = fm.contents(atPath: data) else { return nil }
            hasher.update(data: Data("data.yaml\0".utf8) + Data(SHA256.hash(data: yaml)))
            let folder = (data as NSString).deletingLastPathComponent
            let document = try? JobConfigParser.decodeDocument(String(decoding: yaml, as: UTF8.self))
            if let path = document?["path"]?.stringValue, !path.isEmpty {
                root = path.hasPrefix("/") ? path : URL(fileURLWithPath: folder).appendingPathComponent(path).standardizedFileURL.path
            } else {
                root = folder
            }
        }
        guard let enumerator = fm.enumerator(atPath: root) else { return nil }
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var dir: ObjCBool = false
            if fm.fileExists(atPath: root + "/" + relative, isDirectory: &dir), !dir.boolValue, !relative.hasSuffix(".cache") {
                files.append(relative)
            }
        }
        for relative in files.sorted() {
            guard let handle = FileHandle(forReadingAtPath: root + "/" + relative) else { continue }
            var fileHasher = SHA256()
            while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { fileHasher.update(data: chunk) }
            try? handle.close()
            hasher.update(data: Data((relative + "\0").utf8) + Data(fileHasher.finalize()))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Runs blocking work (hashing files) on a thread of its own, so it never
/// holds one of the few threads Swift concurrency shares.
func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = "yard-offload"
        thread.start()
    }
}
