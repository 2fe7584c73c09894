import Crypto
import Foundation
import GRDB
import Synchronization
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
    /// `--no-sync` sets this false: the backup returns without waiting for
    /// the disk (as `tar` does, and `pg_basebackup -N`). The archive is whole
    /// in the page cache, but a power cut in the next seconds can lose or cut
    /// it (restore then refuses it, naming the file), and nothing paces the
    /// writes, so the server's commits may wait behind the kernel's
    /// write-back while it runs. The default waits: the archive is on the
    /// disk, written at most 16 MB ahead of it, when the backup ends.
    public var sync = true
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

        let out = try ArchiveOutput(path: temporary, compression: compression, sync: options.sync)
        var finished = false
        defer { if !finished { out.discard() } }
        let writer = MemberWriter(out: out, total: total, settle: options.settle, progress: options.progress)
        let header = BackupHeader(format: BackupHeader.currentFormat, trainyard: Trainyard.version, createdAt: Date(), source: data,
                                  secretKeyIncluded: items.contains { $0.relative == "secret.key" }, checkpointsIncluded: options.checkpoints)
        try writer.addJSON(header, path: BackupManifest.header)
        try writer.addFile(at: snapshot, path: BackupManifest.dataPrefix + databaseName, settle: false)
        for item in items {
            try writer.addFile(at: data + "/" + item.relative, path: BackupManifest.dataPrefix + item.relative)
        }
        let entries = writer.finish()
        try writer.addJSON(BackupManifest(files: entries), path: BackupManifest.name)
        try out.write([UInt8](repeating: 0, count: Tar.block * 2))
        try out.finish()
        let size = out.fileSize
        guard rename(temporary, output) == 0 else {
            throw YardError(.unavailable, field: "OUT", "cannot rename the archive to \(output): \(String(cString: strerror(errno)))")
        }
        finished = true
        if options.sync {
            let dir = open(folder, O_RDONLY | O_CLOEXEC)
            if dir >= 0 { _ = fsync(dir); close(dir) }
        }
        return BackupResult(output: output, files: entries.count, bytes: writer.done, archiveBytes: size, compression: compression,
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
            // The snapshot is scratch, read once into the archive (which is
            // fsynced) and removed: no journal, no fsync (they took 0.6 s of
            // a 64 MB store's 0.9 s here).
            var scratch = Configuration()
            scratch.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = OFF")
                try db.execute(sql: "PRAGMA synchronous = OFF")
            }
            let destination = try DatabaseQueue(path: snapshot, configuration: scratch)
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

/// Writes members and keeps the manifest of what it wrote. A file is read
/// into a slot (8 MB, shared by many small files; one of its own for a
/// file up to 64 MB), written to the archive from there, and the slot is
/// handed to `SlotHasher`'s thread, which hashes it while this one reads
/// and writes the next files (sha256 was a quarter of a backup's CPU time
/// in `perf`, more than both copies). The bytes hashed are the bytes
/// written: a slot is reused only once it is hashed.
final class MemberWriter {
    let out: ArchiveOutput
    let total: Int64
    let settle: TimeInterval
    let progress: (@Sendable (Int64, Int64) -> Void)?
    /// What was written, in order; each `sha256` is filled by `finish`.
    private var written: [BackupManifest.Entry] = []
    /// A hard link's entry index -> its first path's.
    private var links: [Int: Int] = [:]
    var notes: [String] = []
    var done: Int64 = 0
    /// Hard links (dataset trees link their objects): the first entry of each inode.
    var seen: [String: Int] = [:]
    /// Files up to this size are read whole, checked unchanged, then written.
    static let wholeLimit = 64 << 20
    static let slotSize = 8 << 20
    private let hasher = SlotHasher(slots: 3)
    private var slot: Slot

    init(out: ArchiveOutput, total: Int64, settle: TimeInterval, progress: (@Sendable (Int64, Int64) -> Void)?) {
        self.out = out
        self.total = total
        self.settle = settle
        self.progress = progress
        slot = hasher.take(capacity: Self.slotSize)
    }

    /// Every entry with its sha256, once the last slot is hashed. The last call.
    func finish() -> [BackupManifest.Entry] {
        hasher.submit(slot)
        let digests = hasher.digests()
        var entries = written
        for index in entries.indices {
            if let first = links[index] { entries[index].sha256 = digests[first] ?? "" } else { entries[index].sha256 = digests[index] ?? "" }
        }
        return entries
    }

    func addJSON(_ value: some Encodable, path: String) throws {
        let bytes: [UInt8]
        do { bytes = Array(try BackupJSON.encoder.encode(value)) } catch { throw YardError(.internal, "cannot encode \(path): \(error)") }
        try out.write(Tar.header(path: path, kind: .file, size: Int64(bytes.count), mode: 0o600, mtime: Int64(Date().timeIntervalSince1970)))
        try out.write(bytes)
        try out.write([UInt8](repeating: 0, count: Tar.padding(Int64(bytes.count))))
    }

    func addFile(at source: String, path: String, settle: Bool = true) throws {
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
            try out.write(Tar.header(path: path, kind: .hardLink, size: 0, mode: mode, mtime: mtime, link: written[first].path))
            links[written.count] = first
            written.append(BackupManifest.Entry(path: path, size: written[first].size, sha256: "", link: written[first].path, mtime: nanoseconds))
            return
        }
        // A file written moments ago may be mid-write: read it once it is quiet (its size and time then).
        let settled = settle ? quiet(fd) : Self.stamp(fd)
        let index = written.count
        let (size, final) = settled.size <= Int64(Self.wholeLimit)
            ? try addWhole(fd: fd, source: source, path: path, settled: settled, mode: mode, entry: index)
            : try addStreamed(fd: fd, source: source, path: path, settled: settled, mode: mode, entry: index)
        written.append(BackupManifest.Entry(path: path, size: size, sha256: "", link: nil,
                                            mtime: Int64(final.seconds) * 1_000_000_000 + Int64(final.nanoseconds)))
        if st.st_nlink > 1 { seen[inode] = index }
    }

    /// Hands the slot to the hasher and takes one with room for `capacity` bytes.
    private func room(for capacity: Int) {
        guard slot.free < capacity else { return }
        hasher.submit(slot)
        slot = hasher.take(capacity: max(capacity, Self.slotSize))
    }

    /// Reads the file whole; if it changed meanwhile (size or mtime), again.
    private func addWhole(fd: Int32, source: String, path: String, settled: Stamp, mode: Int, entry: Int) throws -> (Int64, Stamp) {
        var stamp = settled
        var size = Int(stamp.size)
        var attempt = 0
        while true {
            if attempt > 0 {
                stamp = quiet(fd)
                size = Int(stamp.size)
            }
            room(for: size)
            let n = try Self.pread(fd, slot.memory.baseAddress! + slot.used, size, source)
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
        try out.write(UnsafeRawBufferPointer(rebasing: slot.memory[slot.used..<(slot.used + size)]))
        try out.write([UInt8](repeating: 0, count: Tar.padding(Int64(size))))
        slot.segments.append(Slot.Segment(entry: entry, start: slot.used, count: size, last: true))
        slot.used += size
        advance(Int64(size))
        return (Int64(size), stamp)
    }

    /// Streams a large file in slots; if it shrinks meanwhile, the rest is zeros (and said).
    private func addStreamed(fd: Int32, source: String, path: String, settled before: Stamp, mode: Int, entry: Int) throws -> (Int64, Stamp) {
        let size = before.size
        try out.write(Tar.header(path: path, kind: .file, size: size, mode: mode, mtime: Int64(before.seconds)))
        var offset: Int64 = 0
        while offset < size {
            let want = Int(min(Int64(Self.slotSize), size - offset))
            room(for: want)
            let start = slot.memory.baseAddress! + slot.used
            let n = try Self.pread(fd, start, want, source, offset: offset)
            if n < want { memset(start + n, 0, want - n) }
            try out.write(UnsafeRawBufferPointer(start: start, count: want))
            offset += Int64(want)
            slot.segments.append(Slot.Segment(entry: entry, start: slot.used, count: want, last: offset == size))
            slot.used += want
            advance(Int64(want))
        }
        try out.write([UInt8](repeating: 0, count: Tar.padding(size)))
        if Self.stamp(fd) != before { notes.append("\(path) changed while it was read (\(size) bytes); archived as read") }
        return (size, before)
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

/// Memory a backup reads files into; what of it is which entry's.
final class Slot: @unchecked Sendable {
    struct Segment {
        var entry: Int
        var start: Int
        var count: Int
        /// The entry's last bytes: its digest is final after them.
        var last: Bool
    }

    let memory: UnsafeMutableRawBufferPointer
    var used = 0
    var segments: [Segment] = []
    var free: Int { memory.count - used }

    init(capacity: Int) { memory = .allocate(byteCount: capacity, alignment: 64) }
    deinit { memory.deallocate() }
}

/// Hashes slots on a thread of its own, in the order they come; at most
/// `slots` exist at once (one being filled, the rest waiting or hashed),
/// so a writer faster than the hash waits for it rather than growing memory.
final class SlotHasher: @unchecked Sendable {
    private let queue = DispatchQueue(label: "yard.backup.hash")
    private let available: DispatchSemaphore
    private let pool = Mutex<[Slot]>([])
    /// Slots taken and not yet hashed: given back to the semaphore at the
    /// end (libdispatch traps on one disposed below its start value).
    private let out = Atomic<Int>(0)
    /// Only touched on `queue`: hashes of entries still being read, and the finished ones.
    private var running: [Int: SHA256] = [:]
    private var finished: [Int: String] = [:]

    init(slots: Int) { available = DispatchSemaphore(value: slots) }

    /// An empty slot of at least `capacity` bytes (waits while all are out).
    func take(capacity: Int) -> Slot {
        available.wait()
        out.add(1, ordering: .relaxed)
        let reused = pool.withLock { slots -> Slot? in
            if let index = slots.firstIndex(where: { $0.memory.count >= capacity }) { return slots.remove(at: index) }
            if !slots.isEmpty { slots.removeFirst() }  // too small: its memory goes, a bigger one comes
            return nil
        }
        guard let slot = reused else { return Slot(capacity: capacity) }
        slot.used = 0
        slot.segments = []
        return slot
    }

    func submit(_ slot: Slot) {
        queue.async { [self] in
            for segment in slot.segments {
                var hash = running.removeValue(forKey: segment.entry) ?? SHA256()
                hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: slot.memory[segment.start..<(segment.start + segment.count)]))
                if segment.last { finished[segment.entry] = hash.finalize().hex } else { running[segment.entry] = hash }
            }
            pool.withLock { $0.append(slot) }
            out.subtract(1, ordering: .relaxed)
            available.signal()
        }
    }

    deinit {
        // Nothing is queued now (each job holds the hasher); a backup that
        // failed midway still holds its slot.
        for _ in 0..<out.load(ordering: .relaxed) { available.signal() }
    }

    /// Every finished digest by entry index, once all submitted slots are hashed.
    func digests() -> [Int: String] { queue.sync { finished } }
}
