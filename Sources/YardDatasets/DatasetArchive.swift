import Foundation
import YardDomain
@preconcurrency import ZIPFoundation

/// A ZIP of a dataset, unpacked in this process (ZIPFoundation, no `unzip`
/// needed). Its listing is checked whole before anything is written: no
/// absolute name, no `..`, no backslash, no symlink, at most `maxFiles`
/// entries, and at most `maxBytes` declared. The headers are not trusted
/// beyond that: the bytes that actually come out are counted as they are
/// written, and the unpacking stops before the total passes `maxBytes`.
/// Whatever fails, the folder is removed: nothing half-unpacked is left.
public enum DatasetArchive {
    public struct Limits: Sendable {
        /// Bytes written in all (`--max-dataset-bytes`).
        public var maxBytes: Int64
        public var maxFiles: Int

        public static let defaultMaxBytes: Int64 = 10_000_000_000

        public init(maxBytes: Int64 = Limits.defaultMaxBytes, maxFiles: Int = 2_000_000) {
            self.maxBytes = maxBytes
            self.maxFiles = maxFiles
        }
    }

    /// Unpacks `zip` into `folder` (made here) and returns the dataset's
    /// folder: `folder`, or the one folder at its top (`zip -r name.zip name/`).
    /// `progress(entries done, entries)`.
    public static func extract(_ zip: String, to folder: String, limits: Limits = Limits(),
                               progress: ((Int, Int) -> Void)? = nil) throws(YardError) -> String {
        let name = (zip as NSString).lastPathComponent
        guard FileManager.default.fileExists(atPath: zip) else {
            throw YardError(.notFound, field: "source", "\(zip) does not exist")
        }
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: zip), accessMode: .read) } catch {
            throw YardError.invalid("source", "\(zip) is not a readable ZIP file (\(describe(error))); make it again with zip -r")
        }
        // The listing, checked whole before a byte is written.
        var count = 0
        var declared: Int64 = 0
        for entry in archive {
            count += 1
            guard count <= limits.maxFiles else {
                throw YardError.invalid("source", "\(name) holds more than \(limits.maxFiles) entries; split the dataset")
            }
            _ = try components(of: entry, in: name)
            declared = declared.addingReportingOverflow(Int64(clamping: entry.uncompressedSize)).partialValue
            if declared < 0 { declared = .max }
        }
        if let listed = listedEntries(zip), listed != count {
            throw YardError.invalid("source", "\(name) is damaged: its directory lists \(listed) entries but \(count) can be read; make it again with zip -r")
        }
        guard declared <= limits.maxBytes else {
            throw YardError.invalid("source", "\(name) unpacks to \(bytes(declared)), over the \(bytes(limits.maxBytes)) limit; start the server with a larger --max-dataset-bytes")
        }

        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw YardError(.unavailable, field: "source", "cannot make \(folder) to unpack \(name) in: \(describe(error))")
        }
        var finished = false
        defer { if !finished { try? FileManager.default.removeItem(atPath: folder) } }
        var written: Int64 = 0
        var done = 0
        var folders: Set<String> = [folder]
        for entry in archive {
            done += 1
            let parts = try components(of: entry, in: name)
            let relpath = parts.joined(separator: "/")
            if parts.isEmpty { continue }
            let target = folder + "/" + relpath
            do {
                if entry.type == .directory {
                    try makeFolders(target, known: &folders)
                    continue
                }
                try makeFolders((target as NSString).deletingLastPathComponent, known: &folders)
                // O_EXCL: a name twice is an error, never an overwrite; nothing here is a symlink to follow.
                let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    if errno == EEXIST { throw Stop.twice }
                    throw Stop.io(String(cString: strerror(errno)))
                }
                defer { close(fd) }
                _ = try archive.extract(entry, bufferSize: 64 << 10, skipCRC32: false) { chunk in
                    guard written + Int64(chunk.count) <= limits.maxBytes else { throw Stop.limit }
                    try chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
                        var offset = 0
                        while offset < raw.count {
                            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                            if n < 0 {
                                if errno == EINTR { continue }
                                throw Stop.io(String(cString: strerror(errno)))
                            }
                            offset += n
                            written += Int64(n)
                        }
                    }
                }
            } catch Stop.limit {
                let onDisk = treeBytes(folder)
                throw YardError.invalid("source", "\(name) unpacks to more than the \(bytes(limits.maxBytes)) limit, though its headers declare \(bytes(declared)); stopped after \(onDisk) bytes were written (removed); if it is genuine, start the server with a larger --max-dataset-bytes")
            } catch Stop.twice {
                throw YardError.invalid("source", "\(name) holds \(excerpt(relpath)) twice; not unpacked")
            } catch Stop.io(let reason) {
                throw YardError(.unavailable, field: "source", "cannot unpack \(excerpt(relpath)) from \(name): \(reason)")
            } catch {
                throw YardError.invalid("source", "\(name) is damaged at \(excerpt(relpath)) (\(describe(error))); make it again with zip -r")
            }
            progress?(done, count)
        }
        finished = true
        // One folder at the top (zip -r name.zip name/): the dataset is that folder.
        let top = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix("__MACOSX") }
        if top.count == 1, DatasetPlan.isFolder(folder + "/" + top[0]) { return folder + "/" + top[0] }
        return folder
    }

    enum Stop: Error {
        case limit
        case twice
        case io(String)
    }

    /// An entry's path as folder names below the unpacking folder; refused
    /// when it would land outside it, or is a symlink.
    static func components(of entry: Entry, in zip: String) throws(YardError) -> [String] {
        let path = entry.path
        let parts = path.split(separator: "/").filter { $0 != "." }
        if path.hasPrefix("/") || path.contains("\\") || path.utf8.contains(0) || parts.contains("..") {
            throw YardError.invalid("source", "\(zip) has an entry \(excerpt(path)) that would land outside its folder; not unpacked")
        }
        if entry.type == .symlink {
            throw YardError.invalid("source", "\(zip) has an entry \(excerpt(path)) that is a symlink; not unpacked (put the file itself in the archive)")
        }
        return parts.map(String.init)
    }

    /// The entry count the end of central directory record states (ZIP64's
    /// when there is one); nil when it cannot be found.
    static func listedEntries(_ zip: String) -> Int? {
        guard let handle = FileHandle(forReadingAtPath: zip) else { return nil }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size >= 22 else { return nil }
        let tailLength = min(size, 22 + 65_535 + 20)
        try? handle.seek(toOffset: size - tailLength)
        guard let data = try? handle.read(upToCount: Int(tailLength)) else { return nil }
        let tail = [UInt8](data)
        func u16(_ at: Int) -> UInt64 { UInt64(tail[at]) | UInt64(tail[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt64 { u16(at) | u16(at + 2) << 16 }
        guard let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: { u32($0) == 0x0605_4B50 }) else { return nil }
        let count = u16(end + 10)
        guard count == 0xFFFF, end >= 20, u32(end - 20) == 0x0706_4B50 else { return Int(count) }
        // ZIP64: the locator names the ZIP64 end record, whose count is at +32.
        let record = u32(end - 20 + 8) | u32(end - 20 + 12) << 32
        try? handle.seek(toOffset: record)
        guard let raw = try? handle.read(upToCount: 40), raw.count == 40 else { return nil }
        let bytes = [UInt8](raw)
        guard bytes.prefix(4).elementsEqual([0x50, 0x4B, 0x06, 0x06]) else { return nil }
        return Int(clamping: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[32 + $1]) << (8 * UInt64($1)) })
    }

    private static func makeFolders(_ path: String, known: inout Set<String>) throws {
        guard known.insert(path).inserted else { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw Stop.io("cannot make its folder: \(describe(error))")
        }
    }

    /// Bytes of the regular files under `folder`, as they are on disk now.
    static func treeBytes(_ folder: String) -> Int64 {
        var total: Int64 = 0
        for relpath in FileManager.default.subpaths(atPath: folder) ?? [] {
            var info = stat()
            if lstat(folder + "/" + relpath, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { total += Int64(info.st_size) }
        }
        return total
    }

    static func bytes(_ n: Int64) -> String {
        n >= 1_000_000_000 ? String(format: "%.1f GB", Double(n) / 1e9)
            : n >= 1_000_000 ? String(format: "%.1f MB", Double(n) / 1e6)
            : n >= 1_000 ? String(format: "%.1f kB", Double(n) / 1e3) : "\(n) bytes"
    }

    static func describe(_ error: any Error) -> String {
        excerpt(String(describing: error), limit: 120)
    }

    static func excerpt(_ text: String, limit: Int = 80) -> String { Excerpt.of(text, limit: limit) }
}
