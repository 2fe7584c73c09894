import Crypto
import Foundation
import YardDomain
import YardStore

/// `yard restore ARCHIVE --data-dir D`. The whole archive is read and every
/// file checked against its manifest before anything in D changes: files
/// are unpacked into a staging folder inside D (same file system, so each
/// is then moved into place by a rename), hashed as they are written, and
/// only when every member matched is anything moved. A damaged, truncated
/// or hostile archive (an absolute, `..`, symlink or device member, a
/// member the manifest does not list or lists otherwise) restores nothing
/// and names the file. A dry run reads and checks the same way, writing
/// nothing at all.
public struct RestoreOptions: Sendable {
    public var archive: String
    public var dataDirectory: String
    public var overwrite = false
    public var dryRun = false

    public init(archive: String, dataDirectory: String) {
        self.archive = archive
        self.dataDirectory = dataDirectory
    }
}

public struct RestoreResult: Sendable {
    public enum Action: String, Sendable {
        /// Not in D: written.
        case add
        /// In D with other content, `--overwrite`: replaced.
        case replace
        /// In D with other content: kept as it is (the default).
        case skip
        /// In D already, the same bytes.
        case same
    }

    public struct Change: Sendable {
        public var path: String
        public var action: Action
        public var size: Int64
    }

    public var header: BackupHeader
    public var changes: [Change]
    public var dataDirectory: String
    public var dryRun: Bool

    public func count(_ action: Action) -> Int { changes.filter { $0.action == action }.count }
    public func bytes(_ action: Action) -> Int64 { changes.filter { $0.action == action }.reduce(0) { $0 + $1.size } }
}

public enum Restore {
    public static func run(_ options: RestoreOptions) throws -> RestoreResult {
        let data = URL(fileURLWithPath: options.dataDirectory).standardizedFileURL.path
        var lock: DirectoryLock?
        var staging: String?
        var restored = false
        let existed = FileManager.default.fileExists(atPath: data)
        defer {
            if let staging { try? FileManager.default.removeItem(atPath: staging) }
            if lock != nil, !restored, !existed {
                // A data dir this restore created for nothing goes again (it holds only the lock file).
                unlink(data + "/yard.lock")
                rmdir(data)
            }
            lock = nil
        }
        if !options.dryRun {
            let owned = try DirectoryLock.ownDataDirectory(data, purpose: "restoring into it")
            lock = owned.lock
            let folder = data + "/.restore-\(UUID().uuidString.prefix(8))"
            guard mkdir(folder, 0o700) == 0 else {
                throw YardError(.unavailable, field: "--data-dir", "cannot create \(folder): \(String(cString: strerror(errno)))")
            }
            staging = folder
        }
        let input = try ArchiveInput(path: options.archive)
        let read = try ArchiveReading.read(input, into: staging)
        // Every file matched the manifest: decide what changes. A dataset
        // version's data.yaml is compared as it will be written here (naming its tree in D).
        var changes: [RestoreResult.Change] = []
        var rewritten: [String: Data] = [:]
        for entry in read.manifest.files {
            let relative = String(entry.path.dropFirst(BackupManifest.dataPrefix.count))
            let target = data + "/" + relative
            var expected = entry.sha256
            if let original = read.datasetYAMLs[relative], let adapted = datasetYAML(original, relative: relative, data: data) {
                rewritten[relative] = adapted
                expected = SHA256.hash(data: adapted).hex
            }
            var st = stat()
            let action: RestoreResult.Action
            if lstat(target, &st) != 0 {
                action = .add
            } else if (st.st_mode & S_IFMT) == S_IFREG, (try? FileDigest.sha256(of: target)) == expected {
                action = .same
            } else {
                action = options.overwrite ? .replace : .skip
            }
            changes.append(.init(path: relative, action: action, size: entry.size))
        }
        let result = RestoreResult(header: read.header, changes: changes, dataDirectory: data, dryRun: options.dryRun)
        guard let staging else { return result }
        for (relative, content) in rewritten {
            try AtomicFile.write(content, to: staging + "/" + relative, permissions: 0o644, durable: false)
        }
        for entry in read.manifest.files where rewritten[String(entry.path.dropFirst(BackupManifest.dataPrefix.count))] == nil {
            guard let mtime = entry.mtime else { continue }
            var times = [timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000)),
                         timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000))]
            _ = utimensat(AT_FDCWD, staging + "/" + entry.path.dropFirst(BackupManifest.dataPrefix.count), &times, AT_SYMLINK_NOFOLLOW)
        }
        try apply(changes, from: staging, to: data)
        restored = true
        return result
    }

    /// Dataset versions' data.yaml name their tree by its absolute path in
    /// the data dir they were made in: the same file naming the tree in `data`.
    static func datasetYAML(_ original: [UInt8], relative: String, data: String) -> Data? {
        let parts = relative.split(separator: "/")
        guard parts.count == 4, let document = try? JSONDecoder().decode(JSONValue.self, from: Data(original)),
              case .object(var fields) = document else { return nil }
        let tree = data + "/datasets/versions/\(parts[2])/tree"
        guard fields["path"]?.stringValue != tree else { return nil }
        fields["path"] = .string(tree)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try? encoder.encode(JSONValue.object(fields))
    }

    static func apply(_ changes: [RestoreResult.Change], from staging: String, to data: String) throws {
        let fm = FileManager.default
        for change in changes where change.action == .add || change.action == .replace {
            let target = data + "/" + change.path
            let folder = (target as NSString).deletingLastPathComponent
            do { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
                throw YardError(.unavailable, field: change.path, "cannot create \(folder): \(error.localizedDescription)")
            }
            var st = stat()
            if change.action == .replace, lstat(target, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                try? fm.removeItem(atPath: target)
            }
            if change.path == Backup.databaseName {
                // The old database's journal would be applied to the new file.
                for suffix in ["-wal", "-shm", "-journal"] { unlink(target + suffix) }
            }
            guard rename(staging + "/" + change.path, target) == 0 else {
                throw YardError(.unavailable, field: change.path, "cannot move \(change.path) into \(data): \(String(cString: strerror(errno)))")
            }
        }
        let dir = open(data, O_RDONLY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }
}

/// Reads a whole archive, checking it: the header first, files under
/// `data/`, the manifest last, each member's bytes against it.
enum ArchiveReading {
    struct Read {
        var header: BackupHeader
        var manifest: BackupManifest
        /// Dataset versions' data.yaml (relative path: bytes), rewritten for the target.
        var datasetYAMLs: [String: [UInt8]]
    }

    static func isDatasetYAML(_ relative: String) -> Bool {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "datasets" && parts[1] == "versions" && parts[3] == "data.yaml"
    }

    /// Limits on the two JSON members (the manifest of a million files is ~150 MB).
    static let jsonLimit: Int64 = 512 << 20

    static func read(_ input: ArchiveInput, into staging: String?) throws -> Read {
        var header: BackupHeader?
        var manifest: BackupManifest?
        var seen: [String: (size: Int64, sha256: String)] = [:]
        var yamls: [String: [UInt8]] = [:]
        var order: [String] = []
        var pax: [String: String] = [:]
        var block = [UInt8](repeating: 0, count: Tar.block)
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var ended = false
        while true {
            let n = try block.withUnsafeMutableBytes { (p) in try input.read(into: p.baseAddress!, count: Tar.block) }
            if n == 0 { break }
            guard n == Tar.block else { throw Tar.damaged("it is truncated (a header cut short after \(order.last ?? "the start"))") }
            guard let parsed = try Tar.parse(block, pax: pax) else {
                ended = true
                break
            }
            pax = [:]
            if manifest != nil { throw Tar.damaged("\(MemberPath.printable(parsed.path)) comes after the manifest (nothing restored)") }
            switch parsed.kind {
            case .pax, .globalPax:
                guard parsed.size <= 1 << 20 else { throw Tar.damaged("a pax header of \(parsed.size) bytes") }
                let bytes = try readAll(input, size: parsed.size, after: order.last)
                if parsed.kind == .pax { pax = try Tar.parsePax(bytes) }
                continue
            case .directory:
                try MemberPath.check(parsed.path)
                continue
            case .hardLink, .file:
                break
            }
            try MemberPath.check(parsed.path)
            let path = parsed.path
            if header == nil {
                guard path == BackupManifest.header, parsed.kind == .file, parsed.size <= 1 << 20 else {
                    throw Tar.damaged("it does not start with \(BackupManifest.header) (first member \(MemberPath.printable(path))); it is not a yard backup")
                }
                do { header = try BackupJSON.decoder.decode(BackupHeader.self, from: Data(try readAll(input, size: parsed.size, after: nil))) } catch let error as YardError {
                    throw error
                } catch { throw Tar.damaged("\(BackupManifest.header) cannot be read") }
                guard header!.format <= BackupHeader.currentFormat else {
                    throw YardError(.invalidInput, field: "ARCHIVE", "the archive is format \(header!.format), newer than this yard reads (\(BackupHeader.currentFormat)); restore it with a newer yard")
                }
                continue
            }
            if path == BackupManifest.name {
                guard parsed.kind == .file, parsed.size <= jsonLimit else { throw Tar.damaged("\(BackupManifest.name) is not a file of a sane size") }
                do {
                    manifest = try BackupJSON.decoder.decode(BackupManifest.self, from: Data(try readAll(input, size: parsed.size, after: order.last)))
                } catch let error as YardError { throw error } catch { throw Tar.damaged("\(BackupManifest.name) cannot be read") }
                continue
            }
            guard path.hasPrefix(BackupManifest.dataPrefix), path.count > BackupManifest.dataPrefix.count else {
                throw Tar.damaged("\(MemberPath.printable(path)) is outside data/ (nothing restored)")
            }
            guard seen[path] == nil else { throw Tar.damaged("\(MemberPath.printable(path)) appears twice (nothing restored)") }
            let relative = String(path.dropFirst(BackupManifest.dataPrefix.count))
            guard relative == Backup.databaseName || !Backup.excluded(relative, isDirectory: false) else {
                throw Tar.damaged("\(MemberPath.printable(path)) is not a file a backup holds (nothing restored)")
            }
            if parsed.kind == .hardLink {
                guard let first = seen[parsed.link] else {
                    throw Tar.damaged("\(MemberPath.printable(path)) links to \(MemberPath.printable(parsed.link)), which is not an earlier file of the archive (nothing restored)")
                }
                if let staging {
                    let target = staging + "/" + relative
                    try makeParent(target)
                    guard link(staging + "/" + String(parsed.link.dropFirst(BackupManifest.dataPrefix.count)), target) == 0 else {
                        throw YardError(.unavailable, field: path, "cannot unpack \(path): \(String(cString: strerror(errno)))")
                    }
                }
                seen[path] = first
                order.append(path)
                continue
            }
            var hash = SHA256()
            var fd: Int32 = -1
            if let staging {
                let target = staging + "/" + relative
                try makeParent(target)
                fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(parsed.mode & 0o755 | 0o600))
                guard fd >= 0 else { throw YardError(.unavailable, field: path, "cannot unpack \(path): \(String(cString: strerror(errno)))") }
            }
            defer { if fd >= 0 { close(fd) } }
            var remaining = parsed.size
            let keepYAML = isDatasetYAML(relative) && parsed.size <= 1 << 20
            if keepYAML { yamls[relative] = [] }
            while remaining > 0 {
                let want = Int(min(Int64(buffer.count), remaining))
                let got = try buffer.withUnsafeMutableBytes { (p) in try input.read(into: p.baseAddress!, count: want) }
                guard got == want else { throw Tar.damaged("it is truncated inside \(MemberPath.printable(path)) (nothing restored)") }
                try buffer.withUnsafeBytes { (p) in
                    let slice = UnsafeRawBufferPointer(rebasing: p[0..<got])
                    hash.update(bufferPointer: slice)
                    if keepYAML { yamls[relative, default: []] += slice }
                    if fd >= 0, !AtomicFile.writeAll(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: slice.baseAddress!), count: got, deallocator: .none), to: fd) {
                        throw YardError(.unavailable, field: path, "cannot unpack \(path) into the data dir: \(String(cString: strerror(errno))) (nothing restored)")
                    }
                }
                remaining -= Int64(got)
            }
            try skipPadding(input, size: parsed.size, path: path)
            seen[path] = (parsed.size, hash.finalize().hex)
            order.append(path)
        }
        guard let header else { throw Tar.damaged("it is empty or not a tar archive") }
        guard let manifest else { throw Tar.damaged("it is truncated: the manifest, the last member, is missing (last file read: \(order.last ?? "none"))") }
        guard ended else { throw Tar.damaged("it is truncated after the manifest") }
        try input.finish()
        // Each member as the manifest says, and nothing the manifest lacks.
        var listed = Set<String>()
        for entry in manifest.files {
            try MemberPath.check(entry.path)
            guard entry.path.hasPrefix(BackupManifest.dataPrefix), let got = seen[entry.path] else {
                throw Tar.damaged("\(MemberPath.printable(entry.path)) is in the manifest but not in the archive (nothing restored)")
            }
            guard got.size == entry.size, got.sha256 == entry.sha256 else {
                throw Tar.damaged("\(MemberPath.printable(entry.path)) does not match the manifest (sha256 \(got.sha256.prefix(12)), listed \(entry.sha256.prefix(12))) (nothing restored)")
            }
            listed.insert(entry.path)
        }
        if let extra = order.first(where: { !listed.contains($0) }) {
            throw Tar.damaged("\(MemberPath.printable(extra)) is not in the manifest (nothing restored)")
        }
        return Read(header: header, manifest: manifest, datasetYAMLs: yamls)
    }

    static func readAll(_ input: ArchiveInput, size: Int64, after: String?) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = try bytes.withUnsafeMutableBytes { (p) -> Int in
            p.count == 0 ? 0 : try input.read(into: p.baseAddress!, count: p.count)
        }
        guard n == Int(size) else { throw Tar.damaged("it is truncated after \(after ?? "the start") (nothing restored)") }
        try skipPadding(input, size: size, path: after ?? "the start")
        return bytes
    }

    static func skipPadding(_ input: ArchiveInput, size: Int64, path: String) throws {
        let pad = Tar.padding(size)
        guard pad > 0 else { return }
        var zeros = [UInt8](repeating: 0, count: pad)
        let n = try zeros.withUnsafeMutableBytes { (p) in try input.read(into: p.baseAddress!, count: pad) }
        guard n == pad else { throw Tar.damaged("it is truncated after \(MemberPath.printable(path)) (nothing restored)") }
    }

    static func makeParent(_ path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw YardError(.unavailable, field: path, "cannot create \(folder): \(error.localizedDescription)")
        }
    }
}
