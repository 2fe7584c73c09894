import Crypto
import Foundation
import GRDB
import YardDomain

/// `yard backup OUT`: one archive of a data dir, made while a server may be
/// using it. It runs beside the server, not through it: SQLite's online
/// backup copies a consistent snapshot of the store across processes (the
/// server's writes go on meanwhile, WAL readers never block them), then
/// every other file is read once, hashed as it is written. The store is
/// copied first, so each file it names was already there.
///
/// A file that changes while it is read (a running job's `last.pt`) is read
/// again, up to three times, so the archive never holds a torn checkpoint
/// of a file that size; content-addressed files (weights, dataset objects)
/// and artifacts are written by rename and never change in place.
public struct BackupOptions: Sendable {
    public var dataDirectory: String
    public var output: String
    /// `--no-checkpoints` sets this false: `last.pt` and `epochN.pt` stay out (`best.pt` stays in).
    public var checkpoints = true
    public var includeSecretKey = false
    public var compression = "auto"
    /// A file modified less than this long ago may be in the middle of a
    /// write (Ultralytics rewrites last.pt in place, once an epoch): it is
    /// read once it has been quiet this long (waiting at most 5 times this per file).
    public var settle: TimeInterval = 1
    /// `(bytes done, bytes in all)`, called often; the caller throttles.
    public var progress: (@Sendable (Int64, Int64) -> Void)?

    public init(dataDirectory: String, output: String) {
        self.dataDirectory = dataDirectory
        self.output = output
    }
}

public struct BackupResult: Sendable {
    public var output: String
    public var files: Int
    /// Bytes of the files read (the store's snapshot included).
    public var bytes: Int64
    public var archiveBytes: Int64
    public var compression: ArchiveCompression
    public var secretKeyIncluded: Bool
    /// Files read again because they changed (or still changing when left as read).
    public var notes: [String]
}

public enum Backup {
    static let databaseName = "yard.sqlite"
    /// Never archived: the lock, the live database files (the snapshot
    /// stands for them), scratch of fetches and dataset adds in progress.
    static func excluded(_ relative: String, isDirectory: Bool) -> Bool {
        if ["yard.lock", "yard.sqlite", "yard.sqlite-wal", "yard.sqlite-shm", "yard.sqlite-journal", "models/tmp"].contains(relative) { return true }
        if relative.hasPrefix(".restore-") || relative.hasPrefix(".backup-") { return true }
        if relative.hasPrefix("datasets/versions/.tmp-") { return true }
        return false
    }

    public static func isCheckpoint(_ relative: String) -> Bool {
        guard relative.hasPrefix("runs/") || relative.hasPrefix("artifacts/") else { return false }
        let name = (relative as NSString).lastPathComponent
        if name == "last.pt" { return true }
        guard name.hasPrefix("epoch"), name.hasSuffix(".pt") else { return false }
        let digits = name.dropFirst(5).dropLast(3)
        return !digits.isEmpty && digits.allSatisfy(\.isNumber)
    }

    struct Item {
        var relative: String
        var size: Int64
    }

    public static func run(_ options: BackupOptions) throws -> BackupResult {
        let fm = FileManager.default
        let data = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        guard fm.fileExists(atPath: data + "/" + databaseName) else {
            throw YardError(.notFound, field: "--data-dir", "--data-dir: \(data) holds no Trainyard database (\(databaseName)); pass the data dir of `yard up`")
        }
        let output = URL(fileURLWithPath: options.output).standardizedFileURL.path
        let folder = (output as NSString).deletingLastPathComponent
        let name = (output as NSString).lastPathComponent
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw YardError(.notFound, field: "OUT", "OUT: the folder \(folder) does not exist")
        }
        guard !fm.fileExists(atPath: output) else {
            throw YardError(.conflict, field: "OUT", "OUT: \(output) exists; choose another name or remove it")
        }
        let compression = try ArchiveCompression.resolve(options.compression)
        let temporary = temporaryPaths(output: output)[0], snapshot = temporaryPaths(output: output)[1]
        defer { for suffix in ["", "-wal", "-shm", "-journal"] { unlink(snapshot + suffix) } }
        try snapshotStore(from: data + "/" + databaseName, to: snapshot)

        let items = try walk(data, checkpoints: options.checkpoints, includeSecretKey: options.includeSecretKey, skipping: [temporary, snapshot])
        let snapshotSize = (try? fm.attributesOfItem(atPath: snapshot)[.size] as? NSNumber)?.int64Value ?? 0
        let total = items.reduce(snapshotSize) { $0 + $1.size }

        let out = try ArchiveOutput(path: temporary, compression: compression)
        var finished = false
        defer { if !finished { out.discard() } }
        let writer = MemberWriter(out: out, total: total, settle: options.settle, progress: options.progress)
        let header = BackupHeader(format: BackupHeader.currentFormat, trainyard: Trainyard.version, createdAt: Date(), source: data,
                                  secretKeyIncluded: items.contains { $0.relative == "secret.key" }, checkpointsIncluded: options.checkpoints)
        try writer.addJSON(header, path: BackupManifest.header)
        try writer.addFile(at: snapshot, path: BackupManifest.dataPrefix + databaseName, manifest: true, settle: false)
        for item in items {
            try writer.addFile(at: data + "/" + item.relative, path: BackupManifest.dataPrefix + item.relative, manifest: true)
        }
        try writer.addJSON(BackupManifest(files: writer.entries), path: BackupManifest.name)
        try out.write([UInt8](repeating: 0, count: Tar.block * 2))
        try out.finish()
        let size = out.fileSize
        guard rename(temporary, output) == 0 else {
            throw YardError(.unavailable, field: "OUT", "cannot rename the archive to \(output): \(String(cString: strerror(errno)))")
        }
        finished = true
        let dir = open(folder, O_RDONLY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }
        return BackupResult(output: output, files: writer.entries.count, bytes: writer.done, archiveBytes: size, compression: compression,
                            secretKeyIncluded: header.secretKeyIncluded, notes: writer.notes)
    }

    /// The files a backup to `output` makes before its end (the archive
    /// under a temporary name, the store's snapshot): what an interrupted
    /// backup removes.
    public static func temporaryPaths(output: String) -> [String] {
        let path = URL(fileURLWithPath: output).standardizedFileURL.path
        let folder = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        let snapshot = folder + "/.\(name).store-\(getpid())"
        return [folder + "/.\(name).partial-\(getpid())", snapshot, snapshot + "-journal", snapshot + "-wal", snapshot + "-shm"]
    }

    /// SQLite's online backup of the live store into a new file.
    static func snapshotStore(from path: String, to snapshot: String) throws {
        do {
            var config = Configuration()
            config.readonly = true
            config.busyMode = .timeout(30)
            let source = try DatabaseQueue(path: path, configuration: config)
            let destination = try DatabaseQueue(path: snapshot)
            try source.backup(to: destination)
            try destination.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
            }
            try destination.close()
            try source.close()
        } catch {
            throw YardError(.unavailable, field: "--data-dir", "cannot snapshot the store \(path): \(error)")
        }
    }

    /// Every file to archive, sorted, relative to the data dir.
    static func walk(_ data: String, checkpoints: Bool, includeSecretKey: Bool, skipping: Set<String>) throws -> [Item] {
        var items: [Item] = []
        var pending = [""]
        while let relativeFolder = pending.popLast() {
            let folder = relativeFolder.isEmpty ? data : data + "/" + relativeFolder
            // readdir, not FileManager (which took ~4 ms a folder here: a second for a dataset's 256 object folders).
            guard let dir = opendir(folder) else {
                throw YardError(.unavailable, field: "--data-dir", "cannot read \(folder): \(String(cString: strerror(errno)))")
            }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names {
                let relative = relativeFolder.isEmpty ? name : relativeFolder + "/" + name
                let path = data + "/" + relative
                if skipping.contains(path) { continue }
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }  // removed meanwhile
                let type = st.st_mode & S_IFMT
                if excluded(relative, isDirectory: type == S_IFDIR) { continue }
                if type == S_IFDIR {
                    pending.append(relative)
                } else if type == S_IFREG {
                    if relative == "secret.key" && !includeSecretKey { continue }
                    if !checkpoints && isCheckpoint(relative) { continue }
                    items.append(Item(relative: relative, size: Int64(st.st_size)))
                }
                // Symlinks, sockets, FIFOs: a data dir holds none Trainyard made; not archived.
            }
        }
        return items.sorted { $0.relative < $1.relative }
    }
}

/// Writes members and keeps the manifest of what it wrote.
final class MemberWriter {
    let out: ArchiveOutput
    let total: Int64
    let settle: TimeInterval
    let progress: (@Sendable (Int64, Int64) -> Void)?
    var entries: [BackupManifest.Entry] = []
    var notes: [String] = []
    var done: Int64 = 0
    /// Hard links (dataset trees link their objects): the first path of each inode.
    var seen: [String: BackupManifest.Entry] = [:]
    /// Files up to this size are read whole, checked unchanged, then written.
    static let wholeLimit = 64 << 20
    var buffer = [UInt8](repeating: 0, count: 8 << 20)

    init(out: ArchiveOutput, total: Int64, settle: TimeInterval, progress: (@Sendable (Int64, Int64) -> Void)?) {
        self.out = out
        self.total = total
        self.settle = settle
        self.progress = progress
    }

    func addJSON(_ value: some Encodable, path: String) throws {
        let bytes: [UInt8]
        do { bytes = Array(try BackupJSON.encoder.encode(value)) } catch { throw YardError(.internal, "cannot encode \(path): \(error)") }
        try out.write(Tar.header(path: path, kind: .file, size: Int64(bytes.count), mode: 0o600, mtime: Int64(Date().timeIntervalSince1970)))
        try out.write(bytes)
        try out.write([UInt8](repeating: 0, count: Tar.padding(Int64(bytes.count))))
    }

    func addFile(at source: String, path: String, manifest: Bool, settle: Bool = true) throws {
        let fd = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return }  // removed since the walk (a finished job's scratch): nothing to keep
            throw YardError(.unavailable, field: source, "cannot read \(source): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw YardError(.unavailable, field: source, "cannot stat \(source)") }
        let mode = Int(st.st_mode & 0o777)
        let mtime = Int64(st.st_mtim.tv_sec)
        let nanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let inode = "\(st.st_dev):\(st.st_ino)"
        if st.st_nlink > 1, let first = seen[inode] {
            try out.write(Tar.header(path: path, kind: .hardLink, size: 0, mode: mode, mtime: mtime, link: first.path))
            entries.append(BackupManifest.Entry(path: path, size: first.size, sha256: first.sha256, link: first.path, mtime: nanoseconds))
            return
        }
        // A file written moments ago may be mid-write: read it once it is quiet (its size and time then).
        let settled = settle ? quiet(fd) : Self.stamp(fd)
        var digest: String
        var written: Int64
        var final: Stamp
        if settled.size <= Int64(Self.wholeLimit) {
            (digest, written, final) = try addWhole(fd: fd, source: source, path: path, settled: settled, mode: mode)
        } else {
            (digest, written, final) = try addStreamed(fd: fd, source: source, path: path, settled: settled, mode: mode)
        }
        let entry = BackupManifest.Entry(path: path, size: written, sha256: digest, link: nil,
                                         mtime: Int64(final.seconds) * 1_000_000_000 + Int64(final.nanoseconds))
        if st.st_nlink > 1 { seen[inode] = entry }
        if manifest { entries.append(entry) }
    }

    /// Reads the file whole; if it changed meanwhile (size or mtime), again.
    private func addWhole(fd: Int32, source: String, path: String, settled: Stamp, mode: Int) throws -> (String, Int64, Stamp) {
        var stamp = settled
        var size = Int(stamp.size)
        var attempt = 0
        while true {
            if attempt > 0 {
                stamp = quiet(fd)
                size = Int(stamp.size)
            }
            if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
            let n = try buffer.withUnsafeMutableBytes { (p) -> Int in try Self.pread(fd, p.baseAddress!, size, source) }
            let after = Self.stamp(fd)
            if after == stamp && n == size { break }
            attempt += 1
            if attempt >= 3 {
                size = n
                notes.append("\(path) kept changing while it was read; archived as last read")
                break
            }
            if attempt == 1 { notes.append("\(path) changed while it was read; read again") }
        }
        try out.write(Tar.header(path: path, kind: .file, size: Int64(size), mode: mode, mtime: Int64(stamp.seconds)))
        var hash = SHA256()
        try buffer.withUnsafeBytes { (p) in
            let slice = UnsafeRawBufferPointer(rebasing: p[0..<size])
            hash.update(bufferPointer: slice)
            try out.write(slice)
        }
        try out.write([UInt8](repeating: 0, count: Tar.padding(Int64(size))))
        advance(Int64(size))
        return (hash.finalize().hex, Int64(size), stamp)
    }

    /// Streams a large file in chunks; if it shrinks meanwhile, the rest is zeros (and said).
    private func addStreamed(fd: Int32, source: String, path: String, settled before: Stamp, mode: Int) throws -> (String, Int64, Stamp) {
        let size = before.size
        try out.write(Tar.header(path: path, kind: .file, size: size, mode: mode, mtime: Int64(before.seconds)))
        var hash = SHA256()
        var offset: Int64 = 0
        let chunk = buffer.count
        while offset < size {
            let want = Int(min(Int64(chunk), size - offset))
            try buffer.withUnsafeMutableBytes { (p) in
                var n = try Self.pread(fd, p.baseAddress!, want, source, offset: offset)
                if n < want {
                    memset(p.baseAddress! + n, 0, want - n)
                    n = want
                }
                let slice = UnsafeRawBufferPointer(rebasing: p[0..<want])
                hash.update(bufferPointer: slice)
                try out.write(slice)
            }
            offset += Int64(want)
            advance(Int64(want))
        }
        try out.write([UInt8](repeating: 0, count: Tar.padding(size)))
        if Self.stamp(fd) != before { notes.append("\(path) changed while it was read (\(size) bytes); archived as read") }
        return (hash.finalize().hex, size, before)
    }

    private func advance(_ bytes: Int64) {
        done += bytes
        progress?(done, total)
    }

    struct Stamp: Equatable {
        var size: Int64
        var seconds: Int
        var nanoseconds: Int
        var time: TimeInterval { TimeInterval(seconds) + TimeInterval(nanoseconds) / 1e9 }
    }

    /// The file's stamp once it has not been modified for `settle` (or after waiting 5 times that).
    func quiet(_ fd: Int32) -> Stamp {
        var stamp = Self.stamp(fd)
        var waited: TimeInterval = 0
        while waited < settle * 5 {
            let age = Date().timeIntervalSince1970 - stamp.time
            guard age >= 0, age < settle else { break }
            let pause = min(settle - age + 0.01, settle * 5 - waited)
            usleep(UInt32(pause * 1e6))
            waited += pause
            stamp = Self.stamp(fd)
        }
        return stamp
    }

    static func stamp(_ fd: Int32) -> Stamp {
        var st = stat()
        _ = fstat(fd, &st)
        return Stamp(size: Int64(st.st_size), seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec)
    }

    static func pread(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int, _ source: String, offset: Int64 = 0) throws -> Int {
        var done = 0
        while done < count {
            let n = Foundation.pread(fd, pointer + done, count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw YardError(.unavailable, field: source, "cannot read \(source): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        return done
    }
}
