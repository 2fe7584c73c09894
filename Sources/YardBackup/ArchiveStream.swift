import Foundation
import Synchronization
import YardDomain

/// How an archive is compressed: zstd or gzip through the tool on PATH (a
/// subprocess fed by a pipe), or not at all.
public enum ArchiveCompression: String, Sendable, CaseIterable {
    case zstd, gzip, none

    /// `auto`: zstd when it is on PATH, else gzip, else none.
    public static func resolve(_ requested: String) throws -> ArchiveCompression {
        switch requested {
        case "auto": return tool("zstd") != nil ? .zstd : tool("gzip") != nil ? .gzip : .none
        case "zstd", "gzip":
            guard tool(requested) != nil else {
                throw YardError(.invalidInput, field: "--compression", "--compression \(requested): \(requested) is not on PATH; install it or use --compression auto")
            }
            return ArchiveCompression(rawValue: requested)!
        case "none": return .none
        default: throw YardError(.invalidInput, field: "--compression", "--compression must be auto, zstd, gzip or none, not \(requested)")
        }
    }

    static func tool(_ name: String) -> String? {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(folder)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    var compressArguments: [String] { self == .zstd ? ["-q", "-c", "-3"] : ["-c", "-6"] }
}

/// Where an archive is written: a new file (created, never replaced), fed
/// directly or through a compressor, with writes coalesced in a buffer;
/// paced by `Writeback` and fsynced at the end unless `sync` is false.
final class ArchiveOutput {
    let path: String
    private let file: Int32
    private var fd: Int32
    private var process: Process?
    private var errorLog: String?
    private var buffer: [UInt8] = []
    private let bufferSize = 1 << 20
    private(set) var written: Int64 = 0
    private let writeback: Writeback?

    init(path: String, compression: ArchiveCompression, sync: Bool = true) throws {
        self.path = path
        file = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw YardError(.unavailable, field: path, "cannot create \(path): \(String(cString: strerror(errno)))") }
        fd = file
        writeback = sync ? Writeback(file: file) : nil
        buffer.reserveCapacity(bufferSize)
        guard compression != .none, let tool = ArchiveCompression.tool(compression.rawValue) else { return }
        signal(SIGPIPE, SIG_IGN)  // a compressor that died is reported by its exit status, not by killing us
        let log = NSTemporaryDirectory() + "/yard-backup-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        errorLog = log
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = compression.compressArguments
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle(fileDescriptor: file, closeOnDealloc: false)
        process.standardError = FileHandle(forWritingAtPath: log)
        do { try process.run() } catch {
            unlink(log)
            throw YardError(.unavailable, field: "--compression", "cannot start \(tool): \(error.localizedDescription)")
        }
        self.process = process
        fd = input.fileHandleForWriting.fileDescriptor
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, 1031 /* F_SETPIPE_SZ */, Int32(1 << 20))  // 1 MB writes in one go, not 16 wake-ups of 64 KB
        pipeHandle = input.fileHandleForWriting
    }

    private var pipeHandle: FileHandle?

    func write(_ bytes: [UInt8]) throws {
        bytes.withUnsafeBytes { buffer.append(contentsOf: $0) }
        if buffer.count >= bufferSize { try flush() }
    }

    func write(_ pointer: UnsafeRawBufferPointer) throws {
        if pointer.count < bufferSize / 4 {
            buffer.append(contentsOf: pointer)
            if buffer.count >= bufferSize { try flush() }
            return
        }
        try flush()
        try raw(pointer)
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        // Written from the buffer itself: a copy here made removeAll allocate (and fault in) a new MB each flush.
        try buffer.withUnsafeBytes { (p) in try raw(p) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func raw(_ pointer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < pointer.count {
            let n = Foundation.write(fd, pointer.baseAddress! + done, pointer.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw failure(String(cString: strerror(errno))) }
            done += n
        }
        written += Int64(pointer.count)
        // Through a compressor, the file is its output (a little behind).
        writeback?.grew(to: process == nil ? written : fileSize)
    }

    /// The compressor's own words when it failed (a full disk), else `reason`.
    private func failure(_ reason: String) -> YardError {
        var why = reason
        if let process {
            try? pipeHandle?.close()
            pipeHandle = nil
            process.waitUntilExit()
            if let log = errorLog, let text = try? String(contentsOfFile: log, encoding: .utf8),
               let last = text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                why = String(last)
            }
        }
        return YardError(.unavailable, field: path, "cannot write the archive: \(why)")
    }

    /// Flushes everything, to the disk unless `sync` was off; the file is whole when this returns.
    func finish() throws {
        try flush()
        if let process {
            try? pipeHandle?.close()
            pipeHandle = nil
            process.waitUntilExit()
            if process.terminationStatus != 0 { throw failure("the compressor exited with status \(process.terminationStatus)") }
        }
        guard let writeback else { return }
        writeback.drain()
        guard fsync(file) == 0 else { throw YardError(.unavailable, field: path, "cannot write the archive: \(String(cString: strerror(errno)))") }
    }

    /// Size of the archive file.
    var fileSize: Int64 {
        var st = stat()
        return fstat(file, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// Removes the file (and stops the compressor); nothing is left behind.
    func discard() {
        if let process, process.isRunning { process.terminate() }
        try? pipeHandle?.close()
        pipeHandle = nil
        process?.waitUntilExit()
        unlink(path)
    }

    deinit {
        if let log = errorLog { unlink(log) }
        writeback?.drain()  // no sync left to run on a closed (or reused) descriptor
        close(file)
    }
}

/// Keeps little of the archive waiting to be written to the disk: a thread
/// of its own fdatasyncs the file each time it has grown by 4 MB, and the
/// writer waits while more than 16 MB are not on the disk yet. A backup
/// left to the kernel put hundreds of MB in the disk's queue at once, and
/// the server's own commits (SQLite's checkpoint fsync) waited behind them:
/// a training's epoch events were late by up to 545 ms (bench/backup.sh).
/// The disk writes while the backup reads and hashes, so the fsync at the
/// end has little left to do; written pages leave the page cache (the
/// server's pages stay).
final class Writeback: @unchecked Sendable {
    static let step: Int64 = 4 << 20
    static let limit: Int64 = 16 << 20
    private let file: Int32
    private let queue = DispatchQueue(label: "yard.backup.writeback")
    private let synced = Atomic<Int64>(0)
    private let syncing = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// The size last handed to the thread (the writer's only).
    private var asked: Int64 = 0

    init(file: Int32) { self.file = file }

    /// The file is `size` bytes now: hands a sync to the thread when it grew
    /// enough, and waits while too much is unsynced.
    func grew(to size: Int64) {
        kick(size, always: false)
        while size - synced.load(ordering: .acquiring) > Self.limit {
            kick(size, always: true)
            done.wait()
        }
    }

    private func kick(_ size: Int64, always: Bool) {
        guard !syncing.load(ordering: .acquiring), always || size - asked >= Self.step else { return }
        asked = size
        syncing.store(true, ordering: .releasing)
        queue.async { [self] in
            _ = fdatasync(file)
            _ = posix_fadvise(file, 0, off_t(size), POSIX_FADV_DONTNEED)  // clean now: dropped from the cache
            synced.store(size, ordering: .releasing)
            syncing.store(false, ordering: .releasing)
            done.signal()
        }
    }

    /// Waits for the sync in flight.
    func drain() { queue.sync {} }
}

/// An archive being read: the file itself, or a decompressor's output
/// when the file starts with zstd's or gzip's magic number.
final class ArchiveInput {
    let path: String
    private let file: Int32
    private let fd: Int32
    private var process: Process?
    private var pipeHandle: FileHandle?
    private var errorLog: String?
    private(set) var consumed: Int64 = 0

    init(path: String) throws {
        self.path = path
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw YardError(.notFound, field: "ARCHIVE", "\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw YardError(.invalidInput, field: "ARCHIVE", "\(path) is not a file") }
        file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw YardError(.unavailable, field: "ARCHIVE", "cannot open \(path): \(String(cString: strerror(errno)))") }
        var magic = [UInt8](repeating: 0, count: 4)
        let n = pread(file, &magic, 4, 0)
        let compression: ArchiveCompression = n == 4 && magic == [0x28, 0xB5, 0x2F, 0xFD] ? .zstd : n >= 2 && magic[0] == 0x1F && magic[1] == 0x8B ? .gzip : .none
        guard compression != .none else {
            fd = file
            return
        }
        guard let tool = ArchiveCompression.tool(compression.rawValue) else {
            close(file)
            throw YardError(.unavailable, field: "ARCHIVE", "\(path) is \(compression.rawValue)-compressed and \(compression.rawValue) is not on PATH; install it")
        }
        signal(SIGPIPE, SIG_IGN)
        let log = NSTemporaryDirectory() + "/yard-restore-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        errorLog = log
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-d", "-c", "-q"]
        let output = Pipe()
        process.standardInput = FileHandle(fileDescriptor: file, closeOnDealloc: false)
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: log)
        do { try process.run() } catch {
            close(file)
            throw YardError(.unavailable, field: "ARCHIVE", "cannot start \(tool): \(error.localizedDescription)")
        }
        self.process = process
        pipeHandle = output.fileHandleForReading
        fd = output.fileHandleForReading.fileDescriptor
    }

    /// Reads up to `count` bytes, fewer only at the end of the stream.
    func read(into pointer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var done = 0
        while done < count {
            let n = Foundation.read(fd, pointer + done, count - done)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw YardError(.unavailable, field: "ARCHIVE", "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        consumed += Int64(done)
        return done
    }

    /// Checks the decompressor ended well (a truncated zstd/gzip stream is
    /// reported by it, not by the tar reader).
    func finish() throws {
        guard let process else { return }
        // Whatever follows the tar's end is drained, so the decompressor can finish.
        var sink = [UInt8](repeating: 0, count: 65536)
        while (try? sink.withUnsafeMutableBytes { (p) in try read(into: p.baseAddress!, count: p.count) }) ?? 0 > 0 {}
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            let text = errorLog.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
            let last = text.split(separator: "\n").last.map(String.init) ?? "exit status \(process.terminationStatus)"
            throw Tar.damaged("the compressed stream is truncated or corrupt (\(last.trimmingCharacters(in: .whitespaces)))")
        }
    }

    deinit {
        try? pipeHandle?.close()  // a decompressor still writing gets EPIPE and ends
        if let process, process.isRunning { process.terminate(); process.waitUntilExit() }
        if let log = errorLog { unlink(log) }
        close(file)
    }
}
