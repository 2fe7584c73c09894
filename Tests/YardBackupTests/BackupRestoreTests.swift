import Crypto
import Foundation
import GRDB
import Testing
@testable import YardBackup
import YardDomain
import YardStore
import YardTestSupport

@Suite("Backup and restore")
struct BackupRestoreTests {
    /// A data dir with a job and its epochs, weights, a checkpoint, a large
    /// file, a long unicode path, an empty file and a dataset version.
    static func populated(_ name: String) async throws -> DataDirFixture {
        let f = try DataDirFixture(name)
        let store = try f.store()
        try await f.addJob(store, "job-a", .succeeded, daysAgo: 1, epochs: 3)
        try await f.addJob(store, "job-b", .running, epochs: 1)
        try f.write("artifacts/job-a/weights/best.pt", DataDirFixture.randomBytes(200_000, seed: 1))
        try f.write("artifacts/job-a/weights/last.pt", DataDirFixture.randomBytes(100_000, seed: 2))
        try f.write("runs/job-a/weights/epoch2.pt", DataDirFixture.randomBytes(50_000, seed: 3))
        try f.write("runs/job-a/results.csv", "epoch,loss\n1,0.5\n")
        try f.write("runs/job-b/weights/last.pt", DataDirFixture.randomBytes(3_000_000, seed: 4))
        try f.write("models/sha256/ab/ab\(String(repeating: "0", count: 62)).pt", DataDirFixture.randomBytes(70_000, seed: 5))
        try f.write("runs/job-a/" + String(repeating: "deep/", count: 30) + "plot ünïcode.png", DataDirFixture.randomBytes(700, seed: 6))
        try f.write("runs/job-a/empty.txt", [])
        try f.write("secret.key", "c2VjcmV0\n")
        try f.write("webhooks.json", "{}")
        try f.addDataset(id: "d41d8cd98f00b204e9800998ecf8427e.dir", files: ["images/a.jpg": "jpeg-a", "images/b.jpg": "jpeg-b", "labels/a.txt": "0 0.5 0.5 0.1 0.1"])
        return f
    }

    /// Each compression, and `--no-sync` (not waiting for the disk) with each: the archive is as whole.
    @Test(arguments: ["none", "zstd", "gzip"], [true, false])
    func aRestoredDataDirHasEveryFileTheStoreAndTheHardLinks(compression: String, sync: Bool) async throws {
        let f = try await Self.populated("roundtrip-\(compression)-\(sync)")
        defer { f.dir.remove() }
        var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("out.tar"))
        options.compression = compression
        options.sync = sync
        let result = try Backup.run(options)
        #expect(result.compression.rawValue == compression)
        #expect(!result.secretKeyIncluded)
        let target = f.dir.file("restored")
        let restored = try Restore.run(RestoreOptions(archive: result.output, dataDirectory: target))
        #expect(restored.count(.add) == result.files)
        let before = DataDirFixture.treeHash(f.data), after = DataDirFixture.treeHash(target)
        for (path, hash) in before where !path.hasPrefix("yard.sqlite") && path != "secret.key" && !path.hasSuffix("data.yaml") && path != "yard.lock" {
            #expect(after[path] == hash, "\(path)")
        }
        #expect(after["secret.key"] == nil, "the key stays out unless asked for")
        // The store: the same jobs and epochs.
        let store = SQLiteJobStore(database: try YardDatabase(path: target + "/yard.sqlite"))
        #expect(try await store.epochs(of: "job-a").map(\.epoch) == [1, 2, 3])
        #expect(try await store.job("job-b")?.state == .running)
        // The dataset tree still shares its objects' inodes, and data.yaml names the new tree.
        let version = target + "/datasets/versions/d41d8cd98f00b204e9800998ecf8427e.dir"
        var tree = stat(), object = stat()
        let md5 = Insecure.MD5.hash(data: Data("jpeg-a".utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(lstat(version + "/tree/images/a.jpg", &tree) == 0 && lstat(target + "/datasets/objects/\(md5.prefix(2))/\(md5.dropFirst(2))", &object) == 0)
        #expect(tree.st_ino == object.st_ino)
        // Modification times to the nanosecond (a dataset version's check compares them).
        var original = stat()
        #expect(lstat(f.data + "/datasets/versions/d41d8cd98f00b204e9800998ecf8427e.dir/tree/images/a.jpg", &original) == 0)
        #expect(tree.st_mtim.tv_sec == original.st_mtim.tv_sec && tree.st_mtim.tv_nsec == original.st_mtim.tv_nsec)
        let yaml = try String(contentsOfFile: version + "/data.yaml", encoding: .utf8)
        #expect(yaml.contains("\"path\":\"\(version)/tree\""), "\(yaml)")
        #expect(!DataDirFixture.exists(target + "/.restore-"), "no staging left")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target).allSatisfy { !$0.hasPrefix(".restore-") })
    }

    /// Files cross the hasher's slots every way: many small ones sharing
    /// slots, one a little past a slot's size (a slot of its own), one past
    /// the whole-read limit (streamed over several slots), a hard link to a
    /// file hashed in an earlier slot; with the writer held back by the
    /// archive's writeback. The restore checks every byte against
    /// the manifest's digests, so a digest of the wrong bytes fails it.
    @Test(arguments: ["none", "zstd"])
    func digestsAreTheFilesOwnAcrossTheHashersSlots(compression: String) async throws {
        let f = try DataDirFixture("slots-\(compression)")
        defer { f.dir.remove() }
        _ = try f.store()
        for i in 0..<300 { _ = try f.write("runs/small/\(i).bin", DataDirFixture.randomBytes(40_000 + i, seed: UInt64(i + 1))) }
        var past = [UInt8](repeating: 1, count: MemberWriter.slotSize + 4097)
        past[MemberWriter.slotSize] = 2
        _ = try f.write("runs/past-a-slot.bin", past)
        var big = [UInt8](repeating: 3, count: MemberWriter.wholeLimit + 3 * MemberWriter.slotSize / 2)
        for k in stride(from: 0, to: big.count, by: MemberWriter.slotSize / 2) { big[k] = UInt8(truncatingIfNeeded: k >> 20) }
        _ = try f.write("runs/streamed.bin", big)
        #expect(link(f.data + "/runs/small/3.bin", f.data + "/runs/linked.bin") == 0)
        var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("out.tar"))
        options.compression = compression  // over 16 MB either way: the writer waits for the disk (Writeback)
        let result = try Backup.run(options)
        let target = f.dir.file("restored")
        _ = try Restore.run(RestoreOptions(archive: result.output, dataDirectory: target))
        let before = DataDirFixture.treeHash(f.data), after = DataDirFixture.treeHash(target)
        for (path, hash) in before where path.hasPrefix("runs/") { #expect(after[path] == hash, "\(path)") }
        #expect(after.keys.filter { $0.hasPrefix("runs/") }.count == before.keys.filter { $0.hasPrefix("runs/") }.count)
        #expect(before.keys.filter { $0.hasPrefix("runs/") }.count >= 303)
    }

    @Test func checkpointsAndTheKeyAreLeftOutOrPutInAsAsked() async throws {
        let f = try await Self.populated("options")
        defer { f.dir.remove() }
        var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("lean.tar"))
        options.checkpoints = false
        options.includeSecretKey = true
        let result = try Backup.run(options)
        #expect(result.secretKeyIncluded)
        let target = f.dir.file("lean")
        _ = try Restore.run(RestoreOptions(archive: result.output, dataDirectory: target))
        #expect(DataDirFixture.exists(target + "/artifacts/job-a/weights/best.pt"))
        #expect(!DataDirFixture.exists(target + "/artifacts/job-a/weights/last.pt"))
        #expect(!DataDirFixture.exists(target + "/runs/job-a/weights/epoch2.pt"))
        #expect(!DataDirFixture.exists(target + "/runs/job-b/weights/last.pt"))
        #expect(try String(contentsOfFile: target + "/secret.key", encoding: .utf8) == "c2VjcmV0\n")
    }

    @Test func anExistingArchiveOrAMissingStoreIsAOneLineError() async throws {
        let f = try await Self.populated("refuse")
        defer { f.dir.remove() }
        try f.dir.write("taken.tar", "mine")
        #expect(throws: YardError.self) { try Backup.run(BackupOptions(dataDirectory: f.data, output: f.dir.file("taken.tar"))) }
        #expect(try String(contentsOfFile: f.dir.file("taken.tar"), encoding: .utf8) == "mine")
        let error = #expect(throws: YardError.self) { try Backup.run(BackupOptions(dataDirectory: f.dir.file("nowhere"), output: f.dir.file("x.tar"))) }
        #expect(error?.message.contains("holds no Trainyard database") == true)
    }

    @Test func mergingKeepsWhatIsThereOverwriteReplacesItAndADryRunChangesNoByte() async throws {
        let f = try await Self.populated("merge")
        defer { f.dir.remove() }
        let archive = try Backup.run(BackupOptions(dataDirectory: f.data, output: f.dir.file("m.tar"))).output
        let target = f.dir.file("existing")
        try FileManager.default.createDirectory(atPath: target + "/runs/job-a", withIntermediateDirectories: true)
        try "mine".write(toFile: target + "/runs/job-a/results.csv", atomically: true, encoding: .utf8)
        try "other".write(toFile: target + "/keep.txt", atomically: true, encoding: .utf8)

        // A dry run: every change listed, no byte changed, nothing created.
        let before = DataDirFixture.treeHash(target)
        var dry = RestoreOptions(archive: archive, dataDirectory: target)
        dry.dryRun = true
        let planned = try Restore.run(dry)
        #expect(planned.changes.first { $0.path == "runs/job-a/results.csv" }?.action == .skip)
        #expect(planned.count(.add) > 0)
        #expect(DataDirFixture.treeHash(target) == before)
        let absent = f.dir.file("absent")
        var dryAbsent = RestoreOptions(archive: archive, dataDirectory: absent)
        dryAbsent.dryRun = true
        _ = try Restore.run(dryAbsent)
        #expect(!DataDirFixture.exists(absent))

        let merged = try Restore.run(RestoreOptions(archive: archive, dataDirectory: target))
        #expect(merged.count(.skip) == 1)
        #expect(try String(contentsOfFile: target + "/runs/job-a/results.csv", encoding: .utf8) == "mine")
        #expect(try String(contentsOfFile: target + "/keep.txt", encoding: .utf8) == "other")
        #expect(DataDirFixture.exists(target + "/artifacts/job-a/weights/best.pt"))
        // A second restore finds everything the same.
        let again = try Restore.run(RestoreOptions(archive: archive, dataDirectory: target))
        #expect(again.count(.add) == 0 && again.count(.skip) == 1)

        var overwrite = RestoreOptions(archive: archive, dataDirectory: target)
        overwrite.overwrite = true
        let replaced = try Restore.run(overwrite)
        #expect(replaced.count(.replace) == 1)
        #expect(try String(contentsOfFile: target + "/runs/job-a/results.csv", encoding: .utf8) == "epoch,loss\n1,0.5\n")
    }

    @Test func aRestoreBesideARunningServerIsRefused() async throws {
        let f = try await Self.populated("locked")
        defer { f.dir.remove() }
        let archive = try Backup.run(BackupOptions(dataDirectory: f.data, output: f.dir.file("l.tar"))).output
        let target = f.dir.file("busy")
        let (_, lock) = try DirectoryLock.ownDataDirectory(target, purpose: "test")
        let error = #expect(throws: YardError.self) { try Restore.run(RestoreOptions(archive: archive, dataDirectory: target)) }
        #expect(error?.message.contains("in use by another yard process") == true || error?.message.contains("in use") == true, "\(error?.message ?? "")")
        _ = lock
    }

    /// A store written to all the time while it is backed up: the snapshot is whole.
    @Test func theStoreSnapshotIsConsistentWhileItIsWritten() async throws {
        let f = try await Self.populated("busy-store")
        defer { f.dir.remove() }
        let store = try f.store()
        let writing = Task {
            var n = 0
            while !Task.isCancelled {
                n += 1
                let epoch = n + 1  // addJob recorded epoch 1: the record's epoch and the last row are one apart at most
                try await store.recordEpoch(EpochRecord(jobID: "job-b", epoch: epoch, metrics: ["x": Double(epoch)], seconds: 1))
                _ = try await store.update("job-b") { $0.epoch = epoch }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        let archive = try Backup.run(BackupOptions(dataDirectory: f.data, output: f.dir.file("b.tar"))).output
        writing.cancel()
        _ = try? await writing.value
        let target = f.dir.file("snap")
        _ = try Restore.run(RestoreOptions(archive: archive, dataDirectory: target))
        let queue = try DatabaseQueue(path: target + "/yard.sqlite")
        let check = try await queue.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        #expect(check == "ok")
        // The job's record and its epochs were copied in one transaction: the record's epoch is the last epoch row.
        let restored = SQLiteJobStore(database: try YardDatabase(path: target + "/yard.sqlite"))
        let epochs = try await restored.epochs(of: "job-b").map(\.epoch)
        let job = try #require(try await restored.job("job-b"))
        #expect(epochs.max() == job.epoch || (epochs.max() ?? 0) == (job.epoch ?? 0) + 1, "\(epochs.max() ?? -1) vs \(job.epoch ?? -1)")
    }

    /// A checkpoint rewritten in place each "epoch" as Ultralytics saves
    /// last.pt (the file truncated, then its bytes written in one call):
    /// every backup holds one whole version, never an empty or cut file.
    /// Four backups at random phases of the writer (a probabilistic check:
    /// it cannot prove that no interleaving tears a read).
    @Test func aCheckpointBeingRewrittenIsArchivedWhole() async throws {
        let f = try await Self.populated("torn")
        defer { f.dir.remove() }
        let path = f.data + "/runs/job-b/weights/last.pt"
        let piece = 1 << 20, pieces = 4
        try Data(repeating: 1, count: piece * pieces).write(to: URL(fileURLWithPath: path))
        let stop = ManagedFlag()
        let writer = Thread {
            var value: UInt8 = 1
            while !stop.isSet {
                value = value == 250 ? 2 : value + 1
                let content = [UInt8](repeating: value, count: piece * pieces)
                let fd = open(path, O_WRONLY | O_TRUNC)
                usleep(200_000)  // torch serialises the checkpoint between the open and the write (big models: longer)
                _ = pwrite(fd, content, content.count, 0)
                close(fd)
                usleep(700_000)
            }
        }
        writer.start()
        defer { stop.set() }
        for round in 0..<4 {
            usleep(UInt32.random(in: 0..<1_000_000))
            var options = BackupOptions(dataDirectory: f.data, output: f.dir.file("t\(round).tar"))
            options.compression = "none"
            options.settle = 0.5
            let result = try Backup.run(options)
            #expect(!result.notes.contains { $0.contains("kept changing") }, "\(result.notes)")
            let target = f.dir.file("torn-\(round)")
            _ = try Restore.run(RestoreOptions(archive: result.output, dataDirectory: target))
            let bytes = try Data(contentsOf: URL(fileURLWithPath: target + "/runs/job-b/weights/last.pt"))
            #expect(bytes.count == piece * pieces && Set(bytes).count == 1, "round \(round): \(bytes.count) bytes, values \(Set(bytes).sorted())")
        }
    }

    @Test(.enabled(if: SmallDisk.canMount, "needs root to mount a tmpfs"))
    func aFullDiskIsOneErrorAndLeavesNothing() async throws {
        let f = try await Self.populated("full")
        defer { f.dir.remove() }
        try f.write("runs/job-a/big.bin", DataDirFixture.randomBytes(3 << 20, seed: 9))
        let disk = try SmallDisk(megabytes: 2)
        defer { disk.remove() }
        for compression in ["none", "zstd"] {
            var options = BackupOptions(dataDirectory: f.data, output: disk.path + "/out-\(compression).tar")
            options.compression = compression
            let error = #expect(throws: YardError.self) { try Backup.run(options) }
            #expect(error?.message.contains("No space left on device") == true || error?.message.contains("no space") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("\n") == false)
            let left = try FileManager.default.contentsOfDirectory(atPath: disk.path)
            #expect(left.isEmpty, "left: \(left)")
        }
    }
}

final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
