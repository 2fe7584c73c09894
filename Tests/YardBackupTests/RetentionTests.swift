import Crypto
import Foundation
import Testing
@testable import YardBackup
import YardDomain
import YardStore
import YardTestSupport

/// `yard gc` on a planted data dir: each kind of thing that must stay
/// stays, each kind that may go goes, and a dry run changes no byte.
@Suite("Retention (yard gc)")
struct RetentionTests {
    static let registered = String(repeating: "a", count: 64)
    static let exported = String(repeating: "b", count: 64)
    static let orphan = String(repeating: "c", count: 64)

    /// Paths that must survive, and paths that must go (with their sizes).
    struct Planted {
        var f: DataDirFixture
        var kept: [String]
        var freed: [String: Int]
    }

    static func plant(_ name: String) async throws -> Planted {
        let f = try DataDirFixture(name)
        let store = try f.store()
        var kept: [String] = [], freed: [String: Int] = [:]
        func file(_ path: String, _ size: Int, keep: Bool) throws {
            try f.write(path, [UInt8](repeating: 7, count: size))
            if keep { kept.append(path) } else { freed[path] = size }
        }
        // Running, queued and stopping jobs, however old: everything stays.
        for (id, state) in [("run", JobState.running), ("queue", .queued), ("stopping", .stopping)] {
            try await f.addJob(store, id, state, daysAgo: 100)
            try file("runs/\(id)/weights/last.pt", 1000, keep: true)
            try file("artifacts/\(id)/weights/last.pt", 1000, keep: true)
            try file("jobs/\(id)/config.yaml", 10, keep: true)
        }
        // An old finished job with a registered version: its best.pt stays (run folder and artifacts), the rest goes.
        try await f.addJob(store, "old-registered", .succeeded, daysAgo: 40)
        var version = ModelVersion(name: "shapes", version: "", jobID: "old-registered", runID: "r", source: "s", createdAt: Date())
        version.sha256 = registered
        version.exports = ["onnx": ExportedWeights(format: "onnx", sha256: exported, size: 5, imgsz: 64, exportMilliseconds: 1, createdAt: Date())]
        _ = try await store.createModelVersion(version)
        try file("runs/old-registered/weights/best.pt", 2000, keep: true)
        try file("runs/old-registered/weights/last.pt", 3000, keep: false)
        try file("runs/old-registered/weights/epoch5.pt", 3000, keep: false)
        try file("runs/old-registered/results.png", 100, keep: false)
        try file("artifacts/old-registered/weights/best.pt", 2000, keep: true)
        try file("artifacts/old-registered/results.csv", 50, keep: true)
        try file("artifacts/old-registered/weights/last.pt", 3000, keep: false)
        try file("models/sha256/aa/\(registered).pt", 2000, keep: true)
        try file("models/sha256/bb/\(exported).onnx", 500, keep: true)
        try file("models/sha256/cc/\(orphan).pt", 4000, keep: false)
        // Old finished jobs without a version: the run folder and scratch go; best.pt in the artifacts stays.
        for (id, state) in [("old-done", JobState.succeeded), ("old-failed", .failed), ("old-stopped", .stopped)] {
            try await f.addJob(store, id, state, daysAgo: 35)
            try file("runs/\(id)/weights/best.pt", 1500, keep: false)
            try file("runs/\(id)/weights/last.pt", 1500, keep: false)
            try file("jobs/\(id)/dataset/x.jpg", 700, keep: false)
            try file("artifacts/\(id)/weights/best.pt", 1500, keep: true)
        }
        // A recent finished job: all stays.
        try await f.addJob(store, "recent", .succeeded, daysAgo: 2)
        try file("runs/recent/weights/last.pt", 1000, keep: true)
        // A folder of a job the store no longer has, untouched for long: goes.
        try file("runs/pruned-job/weights/last.pt", 900, keep: false)
        var times = [timespec(tv_sec: time(nil) - 60 * 86400, tv_nsec: 0), timespec(tv_sec: time(nil) - 60 * 86400, tv_nsec: 0)]
        for path in ["runs/pruned-job/weights/last.pt", "runs/pruned-job/weights", "runs/pruned-job"] { utimensat(AT_FDCWD, f.data + "/" + path, &times, 0) }
        // Datasets: a version's objects (linked from its tree), one only a half-made add links, and an orphan.
        try f.addDataset(id: "v1.dir", files: ["images/a.jpg": "a-bytes", "labels/a.txt": "0 1"])
        for relpath in ["datasets/versions/v1.dir/manifest.json", "datasets/versions/v1.dir/data.yaml"] { kept.append(relpath) }
        for (relpath, content) in [("images/a.jpg", "a-bytes"), ("labels/a.txt", "0 1")] {
            kept.append("datasets/versions/v1.dir/tree/" + relpath)
            kept.append(try objectPath(content))
        }
        try f.write(try objectPath("half-made"), "half-made")
        try FileManager.default.createDirectory(atPath: f.data + "/datasets/versions/.tmp-x/tree", withIntermediateDirectories: true)
        link(f.data + "/" + (try objectPath("half-made")), f.data + "/datasets/versions/.tmp-x/tree/h.jpg")
        kept.append(try objectPath("half-made"))
        kept.append("datasets/versions/.tmp-x/tree/h.jpg")
        // A half-made add untouched for two days: abandoned, it goes (its object then has no version).
        try file("datasets/versions/.tmp-old/tree/o.jpg", 300, keep: false)
        for path in ["datasets/versions/.tmp-old/tree/o.jpg", "datasets/versions/.tmp-old/tree", "datasets/versions/.tmp-old"] {
            var old = [timespec(tv_sec: time(nil) - 2 * 86400, tv_nsec: 0), timespec(tv_sec: time(nil) - 2 * 86400, tv_nsec: 0)]
            utimensat(AT_FDCWD, f.data + "/" + path, &old, 0)
        }
        try file(try objectPath("nobody"), 12, keep: false)
        return Planted(f: f, kept: kept, freed: freed)
    }

    static func objectPath(_ content: String) throws -> String {
        let md5 = Insecure_MD5(content)
        return "datasets/objects/\(md5.prefix(2))/\(md5.dropFirst(2))"
    }

    static func options(_ f: DataDirFixture) -> RetentionOptions {
        var o = RetentionOptions(dataDirectory: f.data)
        o.grace = 0  // the planted cache files are seconds old
        return o
    }

    @Test func gcKeepsEveryReferencedFileAndFreesTheRest() async throws {
        let p = try await Self.plant("gc")
        defer { p.f.dir.remove() }
        let result = try Retention.run(Self.options(p.f))
        for path in p.kept { #expect(DataDirFixture.exists(p.f.data + "/" + path), "removed: \(path)") }
        for path in p.freed.keys { #expect(!DataDirFixture.exists(p.f.data + "/" + path), "kept: \(path)") }
        #expect(result.files == p.freed.count, "\(result.removals.map { "\($0.path) \($0.files)" })")
        #expect(result.bytes == Int64(p.freed.values.reduce(0, +)))
        #expect(!DataDirFixture.exists(p.f.data + "/jobs/old-done"), "an emptied folder goes too")
        // A second run finds nothing more.
        let again = try Retention.run(Self.options(p.f))
        #expect(again.files == 0, "\(again.removals.map(\.path))")
    }

    @Test func aDryRunChangesNoByteAndListsWhatARunFrees() async throws {
        let p = try await Self.plant("gc-dry")
        defer { p.f.dir.remove() }
        // SQLite's own -wal/-shm (made empty by any reader of the store) are not content.
        let content = { DataDirFixture.treeHash(p.f.data).filter { !$0.key.hasPrefix("yard.sqlite-") } }
        let before = content()
        var dry = Self.options(p.f)
        dry.dryRun = true
        let planned = try Retention.run(dry)
        #expect(content() == before)
        let done = try Retention.run(Self.options(p.f))
        #expect(planned.files == done.files && planned.bytes == done.bytes)
        #expect(planned.removals.map(\.path) == done.removals.map(\.path))
    }

    @Test func keepLastAndOlderThanBoundWhatGoes() async throws {
        let p = try await Self.plant("gc-keep")
        defer { p.f.dir.remove() }
        var options = Self.options(p.f)
        options.keepLast = 3  // recent, old-done/failed/stopped (35 days) are the newest four: three kept
        _ = try Retention.run(options)
        let survivors = ["old-done", "old-failed", "old-stopped"].filter { DataDirFixture.exists(p.f.data + "/runs/\($0)/weights/last.pt") }
        #expect(survivors.count == 2, "\(survivors)")
        #expect(!DataDirFixture.exists(p.f.data + "/runs/old-registered/weights/last.pt"))
        var later = Self.options(p.f)
        later.olderThan = 90 * 86400
        later.keepLast = 0
        _ = try Retention.run(later)
        #expect(survivors.allSatisfy { DataDirFixture.exists(p.f.data + "/runs/\($0)/weights/last.pt") }, "35 days is not older than 90")
        #expect(throws: YardError.self) { try RetentionOptions.parseAge("30 days") }
        #expect(try RetentionOptions.parseAge("12h") == 43200)
    }

    @Test func aFreshUnreferencedCacheFileStaysForTheGracePeriod() async throws {
        let p = try await Self.plant("gc-grace")
        defer { p.f.dir.remove() }
        _ = try Retention.run(RetentionOptions(dataDirectory: p.f.data))
        #expect(DataDirFixture.exists(p.f.data + "/models/sha256/cc/\(Self.orphan).pt"), "a fetch may be about to name it")
        #expect(DataDirFixture.exists(p.f.data + "/" + (try Self.objectPath("nobody"))))
    }
}

func Insecure_MD5(_ text: String) -> String {
    Insecure.MD5.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
}
