import Crypto
import Foundation
import GRDB
import YardDomain
import YardStore
import YardTestSupport

/// A data dir laid out as `yard up` leaves it: a real store (the same
/// migrations), weights, artifacts, run folders, a dataset version whose
/// tree hard-links its objects.
struct DataDirFixture {
    let dir: TemporaryDirectory
    var data: String { dir.path + "/data" }

    init(_ name: String) throws {
        dir = try TemporaryDirectory("yard-backup-\(name)")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
    }

    func store() throws -> SQLiteJobStore {
        SQLiteJobStore(database: try YardDatabase(path: data + "/yard.sqlite"))
    }

    static func job(_ id: String) throws -> Job {
        let parser = JobConfigParser { _ in true }
        let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: /d.yaml, epochs: 3}\n")
        return Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date(timeIntervalSince1970: 1000))
    }

    /// A job in `state`, finished `daysAgo` days ago when terminal, with epochs.
    func addJob(_ store: SQLiteJobStore, _ id: String, _ state: JobState, daysAgo: Double = 40, epochs: Int = 2) async throws {
        try await store.insert(Self.job(id), secrets: [:])
        let finished = Date().addingTimeInterval(-daysAgo * 86400)
        _ = try await store.update(id) {
            $0.state = state
            $0.epoch = epochs
            if state.isTerminal { $0.finishedAt = finished }
        }
        for epoch in 1...epochs {
            try await store.recordEpoch(EpochRecord(jobID: id, epoch: epoch, metrics: ["metrics/mAP50(B)": Double(epoch) / 10], seconds: 1))
        }
    }

    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let path = data + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String { try write(relative, Array(text.utf8)) }

    /// A dataset version: objects, a tree of hard links, manifest, data.yaml naming the tree.
    func addDataset(id: String, files: [String: String]) throws {
        var manifest: [[String: Any]] = []
        for (relpath, content) in files.sorted(by: { $0.key < $1.key }) {
            let md5 = Insecure.MD5.hash(data: Data(content.utf8)).map { String(format: "%02x", $0) }.joined()
            let object = "datasets/objects/\(md5.prefix(2))/\(md5.dropFirst(2))"
            if !FileManager.default.fileExists(atPath: data + "/" + object) { try write(object, content) }
            let tree = data + "/datasets/versions/\(id)/tree/" + relpath
            try FileManager.default.createDirectory(atPath: (tree as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard link(data + "/" + object, tree) == 0 else { throw FixtureError("link \(tree): \(errno)") }
            manifest.append(["relpath": relpath, "md5": md5, "size": content.utf8.count, "mtime": 0])
        }
        try write("datasets/versions/\(id)/manifest.json", String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self))
        try write("datasets/versions/\(id)/data.yaml", "{\"names\":{\"0\":\"a\"},\"path\":\"\(data)/datasets/versions/\(id)/tree\",\"train\":\"images\"}")
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &+ 0x9E3779B97F4A7C15
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// sha256 of every file under `root` (and each folder's presence): what "no byte changed" is checked by.
    static func treeHash(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return out }
        while let relative = walker.nextObject() as? String {
            let path = root + "/" + relative
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR { out[relative] = "dir"; continue }
            let data = FileManager.default.contents(atPath: path) ?? Data()
            out[relative] = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        return out
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A tmpfs mounted on a fresh folder (root only): a real full disk.
struct SmallDisk {
    let path: String

    static let canMount: Bool = {
        guard getuid() == 0, let probe = try? SmallDisk(megabytes: 1) else { return false }
        probe.remove()
        return true
    }()

    init(megabytes: Int) throws {
        path = NSTemporaryDirectory() + "yard-small-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/mount")
        process.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw FixtureError("mount failed")
        }
    }

    func remove() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/umount")
        process.arguments = [path]
        try? process.run()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: path)
    }
}
