import Foundation
import YardArtifacts
import YardDomain

/// Where dataset versions are kept, in the service's data dir:
///
///     datasets/objects/ab/cdef…      one file per md5 (DVC's cache layout)
///     datasets/versions/ID/tree/…    the version's folder: links to objects
///     datasets/versions/ID/data.yaml what its jobs train on (path: the tree)
///     datasets/versions/ID/manifest.json, report.json
///     datasets/hash-cache.txt        md5s of source files by stat
///
/// A version is written under a temporary name and renamed into place, so
/// it is whole or absent. Images (every file but text) are hard-linked into
/// the object store where the filesystem allows (copied otherwise); labels
/// and YAML are always copied, since those are what people edit in place.
/// A hard-linked file edited in place afterwards is caught by
/// `verify`, which a job runs before training.
public struct DatasetLibrary: Sendable {
    public let root: String

    public init(dataDirectory: String) {
        root = dataDirectory + "/datasets"
    }

    public struct Prepared: Sendable {
        public var id: String
        public var plan: DatasetPlan
        public var result: DatasetValidator.Result
    }

    public struct ManifestEntry: Codable, Sendable {
        public var relpath: String
        public var md5: String
        public var size: Int64
        public var mtime: Int64
        /// A JPEG without its end marker: Ultralytics re-saves it in place
        /// when it scans the dataset, so it is a copy of its own and not checked.
        public var repairable: Bool?
    }

    public var hashCache: HashCache { HashCache(path: root + "/hash-cache.txt") }

    /// Plans, reads and validates a source; nothing is written but the hash cache.
    public func prepare(source: String, options: DatasetPlan.Options, progress: (@Sendable (Int, Int) -> Void)? = nil) throws(YardError) -> Prepared {
        let plan = try DatasetPlan.make(source: source, options: options)
        try makeFolder(root)
        let cache = hashCache
        let result = try DatasetValidator.run(plan, root: source, cache: cache, progress: progress)
        try? cache.save()
        let id = DVCHash.directory(zip(plan.entries, result.digests).map { ($0.relpath, $1.md5) })
        return Prepared(id: id, plan: plan, result: result)
    }

    public func versionDirectory(_ id: String) -> String { root + "/versions/" + id }
    public func treeDirectory(_ id: String) -> String { versionDirectory(id) + "/tree" }

    public func exists(_ id: String) -> Bool {
        FileManager.default.fileExists(atPath: versionDirectory(id) + "/manifest.json")
    }

    /// What a job's `train.data` becomes: the version's data.yaml, or its
    /// folder for a classification dataset.
    public func dataPath(_ id: String) -> String {
        let yaml = versionDirectory(id) + "/data.yaml"
        return FileManager.default.fileExists(atPath: yaml) ? yaml : treeDirectory(id)
    }

    public func report(_ id: String) -> ValidationReport? {
        FileManager.default.contents(atPath: versionDirectory(id) + "/report.json").flatMap { try? JSONDecoder().decode(ValidationReport.self, from: $0) }
    }

    /// Writes the version (a no-op when it exists). `progress(done, total)`.
    public func store(_ prepared: Prepared, progress: (@Sendable (Int, Int) -> Void)? = nil) throws(YardError) {
        let id = prepared.id
        guard !exists(id) else { return }
        let fm = FileManager.default
        let final = versionDirectory(id)
        let temporary = root + "/versions/.tmp-\(id)-\(UUID().uuidString.prefix(8))"
        try makeFolder(temporary + "/tree")
        var stored = false
        defer { if !stored { try? fm.removeItem(atPath: temporary) } }
        var manifest: [ManifestEntry] = []
        var folders = Set<String>()
        let total = prepared.plan.entries.count
        let repairable = Set(prepared.result.report.problems.filter { $0.kind == "truncated_jpeg" }.map(\.file))
        for (i, (entry, digest)) in zip(prepared.plan.entries, prepared.result.digests).enumerated() {
            let object = try storeObject(entry.content, md5: digest.md5, size: digest.size, relpath: entry.relpath, folders: &folders)
            let stat = try place(object, at: temporary + "/tree/" + entry.relpath, copy: repairable.contains(entry.relpath),
                                 field: entry.relpath, folders: &folders)
            guard stat.size == digest.size else {
                throw YardError(.conflict, field: entry.relpath, "\(entry.relpath) changed while it was being added; add the dataset again")
            }
            manifest.append(ManifestEntry(relpath: entry.relpath, md5: digest.md5, size: stat.size, mtime: stat.mtimeNanoseconds,
                                          repairable: repairable.contains(entry.relpath) ? true : nil))
            if (i + 1) % max(1, total / 100) == 0 || i + 1 == total { progress?(i + 1, total) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            if var document = prepared.plan.yamlDocument {
                document["path"] = .string(treeDirectory(id))
                try AtomicFile.write(try encoder.encode(JSONValue.object(document)), to: temporary + "/data.yaml", permissions: 0o644)
            }
            var report = prepared.result.report
            report.root = treeDirectory(id)
            try AtomicFile.write(try encoder.encode(report), to: temporary + "/report.json", permissions: 0o644)
            try AtomicFile.write(try encoder.encode(manifest), to: temporary + "/manifest.json", permissions: 0o644)
        } catch let error as YardError {
            throw error
        } catch {
            throw YardError(.internal, "cannot encode the version's records: \(error)")
        }
        if rename(temporary, final) != 0 {
            guard exists(id) else {  // another add of the same content won the race: fine
                throw YardError(.unavailable, field: final, "cannot store the version at \(final): \(String(cString: strerror(errno)))")
            }
            return
        }
        stored = true
    }

    /// The object for one entry: an image hard-linked from its source where
    /// the filesystem allows (a link appears whole), else written under a
    /// temporary name and renamed into place.
    private func storeObject(_ content: DatasetPlan.Content, md5: String, size: Int64, relpath: String,
                             folders: inout Set<String>) throws(YardError) -> String {
        let folder = root + "/objects/" + md5.prefix(2)
        let object = folder + "/" + md5.dropFirst(2)
        if let stat = FileStat.of(object) {
            if stat.size == size { return object }
            unlink(object)  // not what its name says (cut short before this store checked sizes): replaced
        }
        if folders.insert(folder).inserted { try makeFolder(folder) }
        let data: Data
        switch content {
        case .bytes(let bytes):
            data = Data(bytes)
        case .file(let source):
            let editable = ["txt", "yaml", "yml", "json", "names", "csv", "xml"].contains(DatasetPlan.pathExtension(relpath))
            if !editable, link(source, object) == 0 { return object }
            guard let contents = FileManager.default.contents(atPath: source) else {
                throw YardError(.unavailable, field: relpath, "cannot read \(source): \(String(cString: strerror(errno)))")
            }
            data = contents
        }
        let temporary = object + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o444)
        guard fd >= 0 else { throw YardError(.unavailable, field: relpath, "cannot store \(relpath): \(String(cString: strerror(errno)))") }
        let written = AtomicFile.writeAll(data, to: fd)
        let reason = String(cString: strerror(errno))
        close(fd)
        guard written, rename(temporary, object) == 0 else {
            let why = written ? String(cString: strerror(errno)) : reason
            unlink(temporary)
            throw YardError(.unavailable, field: relpath, "cannot store \(relpath): \(why)")
        }
        return object
    }

    // MARK: Versions in an artifact store (S3), for workers on other machines

    /// Where versions live in an artifact store: `_datasets/objects/ab/cdef…`
    /// and `_datasets/versions/ID/…`. A job id starts with a letter or digit,
    /// so no job's artifacts can land here.
    public static let remotePrefix = "_datasets"

    static func remoteObject(_ md5: String) -> String { "\(remotePrefix)/objects/\(md5.prefix(2))/\(md5.dropFirst(2))" }
    static func remoteVersion(_ id: String, _ file: String) -> String { "\(remotePrefix)/versions/\(id)/\(file)" }

    public func manifest(_ id: String) throws(YardError) -> [ManifestEntry] {
        guard let data = FileManager.default.contents(atPath: versionDirectory(id) + "/manifest.json"),
              let manifest = try? JSONDecoder().decode([ManifestEntry].self, from: data) else {
            throw YardError(.notFound, field: "version", "no stored version \(id)")
        }
        return manifest
    }

    /// Whether `remote` holds the whole version (its manifest goes last).
    public func isPushed(_ id: String, to remote: any ArtifactStore) async throws -> Bool {
        try await remote.exists(key: Self.remoteVersion(id, "manifest.json"))
    }

    /// Copies a stored version to `remote`: the objects it does not hold
    /// yet, then the YAML and report, then the manifest (so a version whose
    /// manifest is there is whole). `progress(done, total)`.
    public func push(_ id: String, to remote: any ArtifactStore, progress: (@Sendable (Int, Int) -> Void)? = nil) async throws {
        let manifest = try manifest(id)
        var sent = Set<String>()
        for (i, entry) in manifest.enumerated() {
            let key = Self.remoteObject(entry.md5)
            if sent.insert(key).inserted, !(try await remote.exists(key: key)) {
                try await remote.put(file: treeDirectory(id) + "/" + entry.relpath, key: key)
            }
            if (i + 1) % max(1, manifest.count / 100) == 0 || i + 1 == manifest.count { progress?(i + 1, manifest.count) }
        }
        for file in ["data.yaml", "report.json", "manifest.json"] where FileManager.default.fileExists(atPath: versionDirectory(id) + "/" + file) {
            try await remote.put(file: versionDirectory(id) + "/" + file, key: Self.remoteVersion(id, file))
        }
    }

    /// Fetches a version from `remote` into this library (a no-op when it is
    /// here): objects not here yet, the version's folder built from them,
    /// its data.yaml pointed at that folder; written whole or not at all.
    public func pull(_ id: String, from remote: any ArtifactStore) async throws {
        guard !exists(id) else { return }
        let fm = FileManager.default
        let temporary = root + "/versions/.tmp-\(id)-pull-\(UUID().uuidString.prefix(8))"
        try makeFolder(temporary + "/tree")
        var stored = false
        defer { if !stored { try? fm.removeItem(atPath: temporary) } }
        guard try await remote.exists(key: Self.remoteVersion(id, "manifest.json")) else {
            throw YardError(.notFound, field: "train.data", "dataset version \(id) is neither in this worker's data dir nor in the job's bucket; add the dataset on a server whose MINIO_BUCKET is the bucket its jobs use")
        }
        try await remote.get(key: Self.remoteVersion(id, "manifest.json"), to: temporary + "/manifest.remote.json")
        guard let data = fm.contents(atPath: temporary + "/manifest.remote.json"),
              let remoteManifest = try? JSONDecoder().decode([ManifestEntry].self, from: data) else {
            throw YardError(.unavailable, field: "train.data", "dataset version \(id): its manifest in the bucket is not readable")
        }
        var folders = Set<String>()
        var manifest: [ManifestEntry] = []
        for entry in remoteManifest {
            try ArtifactKey.validate(entry.relpath)  // confined to the version's folder
            guard entry.md5.count == 32, entry.md5.allSatisfy(\.isHexDigit) else {
                throw YardError(.unavailable, field: "train.data", "dataset version \(id): a bad md5 in its manifest")
            }
            let folder = root + "/objects/" + entry.md5.prefix(2)
            let object = folder + "/" + entry.md5.dropFirst(2)
            if FileStat.of(object)?.size != entry.size {
                if folders.insert(folder).inserted { try makeFolder(folder) }
                let part = object + ".tmp-\(UUID().uuidString.prefix(8))"
                try await remote.get(key: Self.remoteObject(entry.md5), to: part)
                guard (try FileDigest.read(part, keep: 0, cache: nil)).md5 == entry.md5, rename(part, object) == 0 else {
                    unlink(part)
                    throw YardError(.unavailable, field: "train.data", "dataset version \(id): \(entry.relpath) arrived damaged; try again")
                }
            }
            let stat = try place(object, at: temporary + "/tree/" + entry.relpath, copy: entry.repairable == true,
                                 field: "train.data", folders: &folders)
            manifest.append(ManifestEntry(relpath: entry.relpath, md5: entry.md5, size: stat.size, mtime: stat.mtimeNanoseconds, repairable: entry.repairable))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if try await remote.exists(key: Self.remoteVersion(id, "data.yaml")) {
            try await remote.get(key: Self.remoteVersion(id, "data.yaml"), to: temporary + "/data.remote.yaml")
            guard var document = fm.contents(atPath: temporary + "/data.remote.yaml").flatMap({ try? JSONDecoder().decode([String: JSONValue].self, from: $0) }) else {
                throw YardError(.unavailable, field: "train.data", "dataset version \(id): its data.yaml in the bucket is not readable")
            }
            document["path"] = .string(treeDirectory(id))
            try AtomicFile.write(try encoder.encode(JSONValue.object(document)), to: temporary + "/data.yaml", permissions: 0o644)
        }
        if try await remote.exists(key: Self.remoteVersion(id, "report.json")) {
            try await remote.get(key: Self.remoteVersion(id, "report.json"), to: temporary + "/report.json")
        }
        try? fm.removeItem(atPath: temporary + "/manifest.remote.json")
        try? fm.removeItem(atPath: temporary + "/data.remote.yaml")
        try AtomicFile.write(try encoder.encode(manifest), to: temporary + "/manifest.json", permissions: 0o644)
        if rename(temporary, versionDirectory(id)) != 0 {
            guard exists(id) else {
                throw YardError(.unavailable, field: "train.data", "cannot store dataset version \(id): \(String(cString: strerror(errno)))")
            }
            return
        }
        stored = true
    }

    /// Puts an object at its place in a version's folder: a hard link, or a
    /// copy of its own (`copy`, or where linking fails); returns its stat.
    private func place(_ object: String, at target: String, copy: Bool, field: String,
                       folders: inout Set<String>) throws(YardError) -> FileStat {
        let parent = (target as NSString).deletingLastPathComponent
        if folders.insert(parent).inserted { try makeFolder(parent) }
        if copy || link(object, target) != 0 {
            do { try FileManager.default.copyItem(atPath: object, toPath: target) } catch {
                throw YardError(.unavailable, field: field, "cannot store \(target): \(error.localizedDescription)")
            }
        }
        guard let stat = FileStat.of(target) else { throw YardError(.unavailable, field: field, "cannot store \(target)") }
        return stat
    }

    /// Removes what an add that was cut short (a crash, a kill) left:
    /// unpacked archives, half-written versions and objects. Call it with
    /// no add under way.
    public func removeLeftovers() {
        let fm = FileManager.default
        try? fm.removeItem(atPath: root + "/tmp")
        for name in (try? fm.contentsOfDirectory(atPath: root + "/versions")) ?? [] where name.hasPrefix(".tmp-") {
            try? fm.removeItem(atPath: root + "/versions/" + name)
        }
        for folder in (try? fm.contentsOfDirectory(atPath: root + "/objects")) ?? [] {
            for name in (try? fm.contentsOfDirectory(atPath: root + "/objects/" + folder)) ?? [] where name.contains(".tmp-") {
                try? fm.removeItem(atPath: root + "/objects/\(folder)/\(name)")
            }
        }
    }

    /// Checks, by size and mtime, that no file of the version was edited
    /// since it was stored (a hard link shares its source's edits).
    public func verify(_ id: String, reference: String) throws(YardError) {
        guard let data = FileManager.default.contents(atPath: versionDirectory(id) + "/manifest.json"),
              let manifest = try? JSONDecoder().decode([ManifestEntry].self, from: data) else {
            throw YardError(.notFound, field: "train.data", "dataset \(reference) is not in \(versionDirectory(id)); a worker on another machine fetches versions from the job's bucket (give the server MINIO_* settings and the job a minio: section) or shares the server's --data-dir")
        }
        let tree = treeDirectory(id)
        for entry in manifest where entry.repairable != true {
            guard let stat = FileStat.of(tree + "/" + entry.relpath) else {
                throw YardError(.conflict, field: "train.data", "dataset \(reference): \(entry.relpath) is missing from its stored copy; add the dataset again")
            }
            guard stat.size == entry.size, stat.mtimeNanoseconds == entry.mtime else {
                throw YardError(.conflict, field: "train.data", "dataset \(reference): \(entry.relpath) changed after it was added (it is a hard link to its source, which was edited in place); add the dataset again to make a new version")
            }
        }
    }

    /// `--fix`: a cleaned copy of a plan at `out` (which must not exist):
    /// images Ultralytics would drop (and their labels), duplicate images
    /// and labels without images are left out, label files keep their good
    /// rows. The source is never touched.
    public static func writeFixed(_ plan: DatasetPlan, _ result: DatasetValidator.Result, to out: String) throws(YardError) -> (kept: Int, dropped: Int) {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: out) else { throw YardError.invalid("fix", "\(out) exists; give a new folder for the cleaned copy") }
        let droppedLabels = Set(plan.splits.flatMap { $0.images.filter { result.dropped.contains($0.relpath) }.compactMap(\.label) })
        let orphans = Set(plan.orphanLabels)
        var kept = 0, dropped = 0
        let temporary = out + ".tmp-\(UUID().uuidString.prefix(8))"
        defer { try? fm.removeItem(atPath: temporary) }
        do {
            for entry in plan.entries {
                if result.dropped.contains(entry.relpath) || droppedLabels.contains(entry.relpath) || orphans.contains(entry.relpath) {
                    dropped += 1; continue
                }
                let target = temporary + "/" + entry.relpath
                try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if let rows = result.cleanedLabels[entry.relpath] {
                    try Data((rows.joined(separator: "\n") + (rows.isEmpty ? "" : "\n")).utf8).write(to: URL(fileURLWithPath: target))
                } else {
                    switch entry.content {
                    case .bytes(let bytes): try Data(bytes).write(to: URL(fileURLWithPath: target))
                    case .file(let source): try fm.copyItem(atPath: source, toPath: target)
                    }
                }
                kept += 1
            }
            try fm.moveItem(atPath: temporary, toPath: out)
        } catch {
            throw YardError(.unavailable, field: out, "cannot write the cleaned copy to \(out): \(error.localizedDescription)")
        }
        return (kept, dropped)
    }

    private func makeFolder(_ path: String) throws(YardError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw YardError(.unavailable, field: path, "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
