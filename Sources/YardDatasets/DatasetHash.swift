import Foundation
import YardDomain

/// A dataset's content hash, for lineage: DVC's directory hash of the
/// dataset folder (what `dvc add` prints for it), plus its YAML as
/// `data.yaml` when the YAML lies outside that folder. Unchanged files are
/// not read again (the data dir's hash cache).
public enum DatasetHash {
    public static func compute(_ dataset: DatasetFiles, cache: HashCache?) -> String {
        var entries: [(relpath: String, md5: String)] = []
        for relative in dataset.files {
            if let digest = try? FileDigest.read(dataset.root + "/" + relative, keep: 0, cache: cache) { entries.append((relative, digest.md5)) }
        }
        if let yaml = dataset.yaml, !yaml.hasPrefix(dataset.root + "/"), let digest = try? FileDigest.read(yaml, keep: 0, cache: cache) {
            entries.append(("data.yaml", digest.md5))
        }
        try? cache?.save()
        return DVCHash.directory(entries)
    }
}
