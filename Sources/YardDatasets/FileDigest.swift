import Crypto
import Foundation
import YardDomain

/// What identifies a file's content without reading it: when size, mtime
/// and inode are unchanged, the md5 computed earlier still holds (DVC's
/// own shortcut).
public struct FileStat: Sendable, Hashable {
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var inode: UInt64

    public static func of(_ path: String) -> FileStat? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileStat(info)
    }

    public init(size: Int64, mtimeNanoseconds: Int64, inode: UInt64) {
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.inode = inode
    }

    init(_ info: stat) {
        size = Int64(info.st_size)
        mtimeNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        inode = UInt64(info.st_ino)
    }
}

/// A file's md5 and, when asked, its first bytes (an image's header, a
/// label file whole) and last two (a JPEG's end marker).
public struct FileDigest: Sendable {
    public var stat: FileStat
    public var md5: String
    public var head: [UInt8]
    public var tail: [UInt8]
    /// The md5 came from the cache; the file was not read whole.
    public var cached: Bool

    /// Reads `path` once. With a cache entry for the same stat only `keep`
    /// bytes of its head and its last two are read.
    public static func read(_ path: String, keep: Int, cache: HashCache?) throws(YardError) -> FileDigest {
        var scratch: [UInt8] = []
        return try read(path, keep: keep, cache: cache, scratch: &scratch)
    }

    /// As `read`, reading a file of up to 64 MiB whole into `scratch` (grown
    /// as needed and kept by the caller, one per thread): one read call and
    /// no allocation per file on the scanner's hot path.
    public static func read(_ path: String, keep: Int, cache: HashCache?, scratch: inout [UInt8]) throws(YardError) -> FileDigest {
        let whole: Int64 = 64 << 20
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))") }
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let fileStat = FileStat(info)
        guard fileStat.size <= whole, cache?.lookup(path, fileStat) == nil else {
            close(fd)
            return try readStreaming(path, keep: keep, cache: cache)
        }
        defer { close(fd) }
        let size = Int(fileStat.size)
        if scratch.count < size { scratch = [UInt8](repeating: 0, count: max(size, 1 << 20)) }
        let got = scratch.withUnsafeMutableBytes { preadAll(fd, UnsafeMutableRawBufferPointer(rebasing: $0[0..<size]), offset: 0) }
        guard got == size else {
            throw YardError(.unavailable, field: path, "cannot read \(path): it changed size while being read")
        }
        let md5 = scratch.withUnsafeBytes { raw in
            var hasher = Insecure.MD5()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[0..<size]))
            return hasher.finalize().hex
        }
        cache?.store(path, fileStat, md5: md5)
        return FileDigest(stat: fileStat, md5: md5, head: Array(scratch[0..<min(keep, size)]),
                          tail: Array(scratch[max(0, size - 2)..<size]), cached: false)
    }

    private static func readStreaming(_ path: String, keep: Int, cache: HashCache?) throws(YardError) -> FileDigest {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0 else { throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))") }
        let fileStat = FileStat(info)
        if let md5 = cache?.lookup(path, fileStat) {
            var head = [UInt8](repeating: 0, count: Int(min(Int64(keep), fileStat.size)))
            let got = head.withUnsafeMutableBytes { preadAll(fd, $0, offset: 0) }
            head.removeLast(head.count - got)
            var tail = [UInt8](repeating: 0, count: Int(min(2, fileStat.size)))
            let gotTail = tail.withUnsafeMutableBytes { preadAll(fd, $0, offset: max(0, fileStat.size - 2)) }
            tail.removeLast(tail.count - gotTail)
            return FileDigest(stat: fileStat, md5: md5, head: head, tail: tail, cached: true)
        }
        var hasher = Insecure.MD5()
        var head: [UInt8] = []
        var tail: [UInt8] = []
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: Int(min(Int64(chunk), max(fileStat.size, 1))))
        while true {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                while true {
                    let n = Glibc.read(fd, raw.baseAddress, raw.count)
                    if n < 0 && errno == EINTR { continue }
                    return n
                }
            }
            if n < 0 { throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if head.count < keep { head += buffer[0..<min(n, keep - head.count)] }
            tail = n >= 2 ? Array(buffer[(n - 2)..<n]) : Array((tail + buffer[0..<n]).suffix(2))
        }
        let md5 = hasher.finalize().hex
        cache?.store(path, fileStat, md5: md5)
        return FileDigest(stat: fileStat, md5: md5, head: head, tail: tail, cached: false)
    }

    private static func preadAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, offset: Int64) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return done
    }
}

/// md5s already computed, by absolute path and stat, kept in one text file
/// (`md5 size mtime-ns inode path` per line) so that re-adding or
/// re-validating unchanged files does not read them again. Safe to use from
/// many threads at once.
public final class HashCache: @unchecked Sendable {
    private struct Entry { var stat: FileStat; var md5: String }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var changed = false
    public let path: String?

    /// An empty cache that is never saved (`path` nil), or the one at `path`.
    public init(path: String?) {
        self.path = path
        guard let path, let data = FileManager.default.contents(atPath: path) else { return }
        for line in data.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 4, omittingEmptySubsequences: false)
            guard fields.count == 5, fields[0].count == 32,
                  let size = Int64(String(decoding: fields[1], as: UTF8.self)),
                  let mtime = Int64(String(decoding: fields[2], as: UTF8.self)),
                  let inode = UInt64(String(decoding: fields[3], as: UTF8.self)) else { continue }
            let file = String(decoding: fields[4], as: UTF8.self)
            entries[file] = Entry(stat: FileStat(size: size, mtimeNanoseconds: mtime, inode: inode), md5: String(decoding: fields[0], as: UTF8.self))
        }
    }

    public func lookup(_ file: String, _ stat: FileStat) -> String? {
        lock.lock(); defer { lock.unlock() }
        guard let entry = entries[file], entry.stat == stat else { return nil }
        return entry.md5
    }

    public func store(_ file: String, _ stat: FileStat, md5: String) {
        guard !file.contains("\n") else { return }
        lock.lock(); defer { lock.unlock() }
        entries[file] = Entry(stat: stat, md5: md5)
        changed = true
    }

    /// Writes the cache (whole or not at all), dropping entries of files
    /// that no longer exist when it has grown past `limit`.
    public func save(limit: Int = 2_000_000) throws {
        lock.lock(); defer { lock.unlock() }
        guard let path, changed else { return }
        if entries.count > limit {
            entries = entries.filter { FileStat.of($0.key) == $0.value.stat }
        }
        var text = ""
        text.reserveCapacity(entries.count * 120)
        for (file, entry) in entries {
            text += "\(entry.md5) \(entry.stat.size) \(entry.stat.mtimeNanoseconds) \(entry.stat.inode) \(file)\n"
        }
        try AtomicFile.write(Data(text.utf8), to: path, durable: false)
        changed = false
    }
}

/// DVC's directory hash: md5 of the JSON list `[{"md5": ..., "relpath": ...}]`
/// sorted by path, as Python's `json.dumps(..., sort_keys=True)` writes it
/// (ASCII only, `", "` and `": "` separators), plus `.dir`.
public enum DVCHash {
    public static func directory(_ entries: [(relpath: String, md5: String)]) -> String {
        let sorted = entries.sorted { pathOrder($0.relpath, $1.relpath) }
        var json = "["
        for (i, entry) in sorted.enumerated() {
            if i > 0 { json += ", " }
            json += "{\"md5\": \"\(entry.md5)\", \"relpath\": \(JSONString.quote(entry.relpath, JSONString.python))}"
        }
        json += "]"
        return Insecure.MD5.hash(data: Data(json.utf8)).hex + ".dir"
    }

    /// DVC sorts the entries by their relpath as Python compares strings
    /// (by code point): `a-b/c` comes before `a/b`.
    static func pathOrder(_ a: String, _ b: String) -> Bool {
        var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
        while true {
            switch (i.next(), j.next()) {
            case let (p?, q?): if p != q { return p.value < q.value }
            case (nil, _?): return true
            default: return false
            }
        }
    }
}
