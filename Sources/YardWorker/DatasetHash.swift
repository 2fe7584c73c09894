import Crypto
import Foundation
import YardDomain

/// A content hash of a dataset, for lineage: sha256 over every file's
/// relative path and sha256, in path order (the files `DatasetFiles` lists).
public enum DatasetHash {
    public static func compute(_ dataset: DatasetFiles) -> String {
        var hasher = SHA256()
        if let yaml = dataset.yaml, let text = FileManager.default.contents(atPath: yaml) {
            hasher.update(data: Data("data.yaml\0".utf8) + Data(SHA256.hash(data: text)))
        }
        for relative in dataset.files {
            guard let handle = FileHandle(forReadingAtPath: dataset.root + "/" + relative) else { continue }
            var fileHasher = SHA256()
            while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { fileHasher.update(data: chunk) }
            try? handle.close()
            hasher.update(data: Data((relative + "\0").utf8) + Data(fileHasher.finalize()))
        }
        return hasher.finalize().hex
    }
}

/// Runs blocking work (listing and hashing files) on a thread of its own, so
/// it never holds one of the few threads Swift concurrency shares.
func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = "yard-offload"
        thread.start()
    }
}
