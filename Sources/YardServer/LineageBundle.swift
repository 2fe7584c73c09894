import Crypto
import Foundation
import YardDomain

/// `yard lineage REF --bundle OUT.tar`: a run's record as one tar, enough
/// for another Trainyard to run it again given the data (`yard rerun
/// --from-bundle`): `lineage.json` (the lineage answer), `config.json`
/// (secrets masked), `metrics.json` (final, test split, every epoch),
/// `weights.json` (sha256 of the registered versions, the parent and the
/// best weights), `dataset/manifest.json` (DVC's relpath/md5/size listing of
/// the version) and `environment.txt` (the engine's installed
/// distributions when the run started). `bundle.json` lists them and says
/// why any is missing.
struct LineageBundle {
    static let format = "trainyard-lineage-bundle"

    let service: LineageService

    func files(for lineage: Lineage) async throws -> [(name: String, data: Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let job = lineage.job.id
        var files: [(name: String, data: Data)] = []
        var missing: [String] = []
        files.append(("lineage.json", try encoder.encode(lineage)))
        files.append(("config.json", try encoder.encode(lineage.config)))
        let epochs = try await service.store.epochs(of: job)
        files.append(("metrics.json", try encoder.encode(Metrics(final: lineage.metrics, fitness: lineage.fitness, test: lineage.test, epochs: epochs))))

        var weights = Weights(registered: lineage.registered.map { .init(name: $0.name, version: $0.version, sha256: $0.sha256, size: $0.size) },
                              parent: lineage.parent, best: nil)
        let best = "\(job)/weights/best.pt"
        if let sha = try await hash(of: best) { weights.best = .init(name: best, version: nil, sha256: sha, size: nil) } else {
            missing.append("weights.json best: \(best) is not in the server's artifact store")
        }
        files.append(("weights.json", try encoder.encode(weights)))

        if let version = lineage.dataset.version {
            do {
                let library = service.library, id = version.id
                let manifest = try await offloadThrowing { () throws(YardError) in try library.manifest(id) }
                files.append(("dataset/manifest.json", try encoder.encode(manifest.map { ManifestLine(relpath: $0.relpath, md5: $0.md5, size: $0.size) })))
            } catch {
                missing.append("dataset/manifest.json: dataset \(version.reference)'s files are not on the server")
            }
        } else {
            missing.append("dataset/manifest.json: the job trained on \(lineage.dataset.data ?? "?"), not a registered dataset version (its DVC hash is in lineage.json)")
        }
        if let environment = try await read("\(job)/environment.txt") {
            files.append(("environment.txt", environment))
        } else {
            missing.append("environment.txt: the run kept none (its engine predates it, or its artifacts are in another bucket)")
        }
        let index = Index(format: Self.format, version: 1, job: job, model: lineage.model.map { "\($0.name)@v\($0.version)" },
                          files: files.map(\.name), missing: missing)
        return [("bundle.json", try encoder.encode(index))] + files
    }

    /// An artifact of the server's store read whole (small files only), or nil when it has none.
    private func read(_ key: String) async throws -> Data? {
        guard let path = try await fetch(key) else { return nil }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return FileManager.default.contents(atPath: path)
    }

    private func hash(of key: String) async throws -> String? {
        guard let path = try await fetch(key) else { return nil }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await offloadThrowing {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw YardError(.notFound, field: key, "cannot read \(key)") }
            defer { try? handle.close() }
            var hasher = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
            return hasher.finalize().hex
        }
    }

    private func fetch(_ key: String) async throws -> String? {
        guard (try? await service.artifacts.exists(key: key)) == true else { return nil }
        let folder = service.dataDirectory + "/tmp"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/bundle-\(UUID().uuidString)"
        do { try await service.artifacts.get(key: key, to: path) } catch {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return path
    }

    struct Index: Codable {
        var format: String
        var version: Int
        var job: String
        var model: String?
        var files: [String]
        var missing: [String]
    }

    struct Metrics: Codable {
        var final: [String: Double]?
        var fitness: Double?
        var test: [String: Double]?
        var epochs: [EpochRecord]
    }

    struct Weights: Codable {
        struct File: Codable {
            var name: String
            var version: String?
            var sha256: String?
            var size: Int64?
        }
        var registered: [File]
        var parent: ParentModel?
        var best: File?
    }

    struct ManifestLine: Codable {
        var relpath: String
        var md5: String
        var size: Int64
    }
}

/// A POSIX ustar archive of in-memory files (names under 100 bytes).
enum TarWriter {
    static func archive(_ files: [(name: String, data: Data)], mtime: Date = Date()) -> Data {
        var out = Data()
        for file in files {
            out.append(contentsOf: header(name: file.name, size: file.data.count, mtime: Int(mtime.timeIntervalSince1970)))
            out.append(file.data)
            out.append(Data(count: (512 - file.data.count % 512) % 512))
        }
        out.append(Data(count: 1024))
        return out
    }

    static func header(name: String, size: Int, mtime: Int) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (i, byte) in text.utf8.prefix(width).enumerated() { h[offset + i] = byte }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            put(String(String(value, radix: 8).suffix(width - 1)).leftPadded(to: width - 1), at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(0o644, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(mtime, at: 136, width: 12)
        h[156] = UInt8(ascii: "0")
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        for i in 148..<156 { h[i] = UInt8(ascii: " ") }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(sum, radix: 8).leftPadded(to: 6), at: 148, width: 6)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        return h
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
