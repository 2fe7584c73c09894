import Foundation
import Logging
import YardArtifacts
import YardDatasets
import YardDomain
import YardJobs
import YardStore

/// Registers dataset versions: reads a folder, a ZIP or a COCO file on the
/// server's machine, validates it, stores it in the data dir's version
/// store and records it. One import runs at a time (they read every byte of
/// a dataset); the others wait their turn.
public struct DatasetService: Sendable {
    public let store: any JobStore
    public let library: DatasetLibrary
    /// Folders a source must lie in; empty: anywhere the server can read,
    /// unless the API needs a token (then a root must be given).
    public let importRoots: [String]
    public let tokenRequired: Bool
    public let allowSymlinks: Bool
    /// The most bytes a ZIP may unpack to, counted as they are written (`--max-dataset-bytes`).
    public let maxDatasetBytes: Int64
    /// Where `s3://` sources are read: MINIO_ENDPOINT, MINIO_ID, MINIO_SECRET_KEY.
    let environment: [String: String]
    let gate = ImportGate()

    public init(store: any JobStore, dataDirectory: String, importRoots: [String], tokenRequired: Bool, allowSymlinks: Bool,
                maxDatasetBytes: Int64 = DatasetArchive.Limits.defaultMaxBytes,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
        self.maxDatasetBytes = maxDatasetBytes
        self.store = store
        self.library = DatasetLibrary(dataDirectory: dataDirectory)
        self.importRoots = importRoots.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        self.tokenRequired = tokenRequired
        self.allowSymlinks = allowSymlinks
    }

    public struct AddRequest: Codable, Sendable {
        public var name: String
        public var source: String
        public var format: String?
        /// "0.8,0.1,0.1"
        public var split: String?
        public var seed: UInt64?
        public var names: [String]?

        public init(name: String, source: String, format: String? = nil, split: String? = nil, seed: UInt64? = nil, names: [String]? = nil) {
            self.name = name
            self.source = source
            self.format = format
            self.split = split
            self.seed = seed
            self.names = names
        }
    }

    public struct Added: Codable, Sendable {
        public var version: DatasetVersion
        public var created: Bool
        public var report: ValidationReport
    }

    public enum Progress: Sendable {
        case waiting
        case phase(String, done: Int, total: Int)
    }

    /// Checks a request before any work: the name, the source's form and place.
    public func check(_ request: AddRequest) throws(YardError) -> DatasetPlan.Options {
        try DatasetVersion.validateName(request.name)
        let source = request.source
        if source.hasPrefix("s3://") {
            _ = try DatasetCache.parse(source)
            guard try S3ArtifactStore.settings(from: nil, environment: environment) != nil else {
                throw YardError.invalid("source", "\(source.prefix(80)) is on S3, but the server's environment names no MINIO_ENDPOINT (with MINIO_ID and MINIO_SECRET_KEY)")
            }
        } else if !source.hasPrefix("/") {
            throw YardError.invalid("source", "\(source.prefix(80)) must be an absolute path on the server (`yard datasets add` resolves relative ones)")
        }
        let path = URL(fileURLWithPath: source).standardizedFileURL.path
        let real = DatasetFiles.realPath(path) ?? path
        if source.hasPrefix("s3://") {
            // Read with the server's own S3 credentials, into its data dir.
        } else if importRoots.isEmpty {
            if tokenRequired {
                throw YardError.invalid("source", "this server needs a token, so datasets are added only from folders it names; start it with --dataset-root DIR")
            }
        } else {
            let roots = importRoots.map { DatasetFiles.realPath($0) ?? $0 }
            guard roots.contains(where: { real == $0 || real.hasPrefix($0 + "/") }) else {
                throw YardError.invalid("source", "\(path) is outside the folders this server adds datasets from (\(importRoots.joined(separator: ", "))); move it under one")
            }
        }
        try DatasetPlan.checkFormat(request.format)
        // A YAML's path: and splits may not lead out of the roots (after symlinks and ..).
        let roots = importRoots.isEmpty ? nil : importRoots.map { DatasetFiles.realPath($0) ?? $0 }
        var options = DatasetPlan.Options(format: request.format, seed: request.seed ?? 0, names: request.names,
                                          allowExternalSymlinks: allowSymlinks, roots: roots)
        if let split = request.split { options.ratios = try DatasetPlan.Options.parseRatios(split) }
        if let names = request.names {
            guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0.count <= 200 }) else { throw YardError.invalid("names", "give 1 or more non-empty class names") }
        }
        return options
    }

    public func add(_ request: AddRequest, progress: @escaping @Sendable (Progress) -> Void = { _ in }) async throws -> Added {
        var options = try check(request)
        if !(await gate.tryEnter()) {
            progress(.waiting)
            await gate.enter()
        }
        defer { Task { await gate.leave() } }
        // Inside the gate no other add runs: what is left is an earlier one's, cut short.
        let library = self.library
        await offload { library.removeLeftovers() }
        var source = request.source.hasPrefix("s3://") ? request.source : URL(fileURLWithPath: request.source).standardizedFileURL.path
        var unpacked: String?
        defer { if let unpacked { try? FileManager.default.removeItem(atPath: unpacked) } }
        if request.source.hasPrefix("s3://") {
            let folder = library.root + "/tmp/" + UUID().uuidString
            unpacked = folder
            progress(.phase("download", done: 0, total: 1))
            guard let settings = try S3ArtifactStore.settings(from: nil, environment: environment) else { throw YardError.invalid("source", "no S3 settings") }
            let client = try S3Client(endpoint: settings.endpoint, accessKey: settings.accessKey, secretKey: settings.secretKey, region: settings.region)
            do {
                let pulled = try await DatasetCache(client: client, root: folder).pull(request.source, rewriteYAML: false)
                progress(.phase("download", done: pulled.objects, total: pulled.objects))
            } catch let failure as S3Client.Failure {
                throw YardError(.unavailable, field: "source", "cannot read \(request.source): \(failure.code): \(failure.message)")
            } catch let error as YardError {
                throw error
            } catch {
                throw YardError(.unavailable, field: "source", "cannot read \(request.source): \(String("\(error)".prefix(200)))")
            }
            try? FileManager.default.removeItem(atPath: folder + "/.trainyard-manifest.json")
            source = folder
            // What the bucket held is all a YAML in it may name.
            options.roots = [DatasetFiles.realPath(folder) ?? folder]
        } else if source.lowercased().hasSuffix(".zip") {
            let folder = library.root + "/tmp/" + UUID().uuidString
            unpacked = folder
            progress(.phase("unzip", done: 0, total: 1))
            let zip = source, limits = DatasetArchive.Limits(maxBytes: maxDatasetBytes)
            source = try await offloadThrowing { () throws(YardError) in
                try DatasetArchive.extract(zip, to: folder, limits: limits) { progress(.phase("unzip", done: $0, total: $1)) }
            }
            // What the archive holds is all a YAML in it may name.
            options.roots = [DatasetFiles.realPath(folder) ?? folder]
        }
        let from = source, planned = options
        let prepared = try await offloadThrowing { () throws(YardError) in
            try library.prepare(source: from, options: planned) { progress(.phase("read", done: $0, total: $1)) }
        }
        let existing = try await store.datasetVersions(name: request.name).first { $0.id == prepared.id }
        if let existing, library.exists(existing.id) {
            try await push(existing.id, progress: progress)
            return Added(version: existing, created: false, report: library.report(existing.id) ?? prepared.result.report)
        }
        try await offloadThrowing { () throws(YardError) in
            try library.store(prepared) { progress(.phase("store", done: $0, total: $1)) }
        }
        try await push(prepared.id, progress: progress)
        let report = prepared.result.report
        let version = DatasetVersion(
            name: request.name, number: 0, id: prepared.id, createdAt: Date(), source: request.source, format: prepared.plan.format,
            task: prepared.plan.task, files: report.files, bytes: report.bytes, classes: report.classes, splits: report.splits,
            errors: report.errors, warnings: report.warnings, notes: prepared.plan.notes)
        let (recorded, created) = try await DatasetControl(store: store).versionAdded(version)
        return Added(version: recorded, created: created, report: library.report(prepared.id) ?? report)
    }
}

extension DatasetService {
    /// With S3 settings in the server's environment, the version is copied to
    /// its bucket (`_datasets/…`), where workers on other machines fetch it.
    func push(_ id: String, progress: @escaping @Sendable (Progress) -> Void) async throws {
        guard let settings = try S3ArtifactStore.settings(from: nil, environment: environment) else { return }
        let client = try S3Client(endpoint: settings.endpoint, accessKey: settings.accessKey, secretKey: settings.secretKey, region: settings.region)
        let remote = S3ArtifactStore(client: client, bucket: settings.bucket)
        do {
            if try await library.isPushed(id, to: remote) { return }
            try await client.createBucket(settings.bucket)
            try await library.push(id, to: remote) { progress(.phase("upload", done: $0, total: $1)) }
        } catch let failure as S3Client.Failure {
            throw YardError(.unavailable, field: "MINIO_BUCKET", "the version is stored here, but copying it to s3://\(settings.bucket) failed: \(failure.code): \(failure.message); add it again to retry")
        }
    }
}

/// One holder at a time, the others queued in order.
actor ImportGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func tryEnter() -> Bool {
        guard !busy else { return false }
        busy = true
        return true
    }

    func enter() async {
        if !busy { busy = true; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}
