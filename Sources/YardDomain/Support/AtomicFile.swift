import Foundation

/// Writes a file whole or not at all: a temporary file in the same folder,
/// flushed to disk, renamed over the target, then the folder flushed so the
/// rename survives a crash too. The one file helper every target shares (the
/// domain otherwise does no I/O).
public enum AtomicFile {
    /// `durable: false` skips the flushes, for a file whose loss in a crash
    /// costs nothing (it is still never seen half written).
    public static func write(_ data: Data, to path: String, permissions: Int = 0o600, durable: Bool = true) throws {
        let file = try Temporary(for: path, permissions: permissions)
        guard writeAll(data, to: file.fd) else {
            let reason = String(cString: strerror(errno))
            file.discard()
            throw YardError(.unavailable, field: path, "cannot write \(path): \(reason)")
        }
        try file.commit(durable: durable)
    }

    /// Writes all of `data` to a descriptor, retrying short and interrupted
    /// writes; false (with `errno` set) when it cannot.
    public static func writeAll(_ data: Data, to fd: Int32) -> Bool {
        data.withUnsafeBytes { buffer -> Bool in
            var written = 0
            while written < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                written += n
            }
            return true
        }
    }

    /// Streams a file into place: `body` writes to the temporary file; when
    /// it returns, the file is flushed and renamed over `path`; when it
    /// throws, nothing is left behind and its error is rethrown.
    public static func write<T>(to path: String, permissions: Int = 0o600, _ body: (FileHandle) throws -> T) throws -> T {
        let file = try Temporary(for: path, permissions: permissions)
        let result: T
        do { result = try body(file.handle) } catch {
            file.discard()
            throw error
        }
        try file.commit()
        return result
    }

    /// The same for a body that awaits (a download).
    public static func write<T>(to path: String, permissions: Int = 0o600, isolation: isolated (any Actor)? = #isolation,
                                _ body: (FileHandle) async throws -> T) async throws -> T {
        let file = try Temporary(for: path, permissions: permissions)
        let result: T
        do { result = try await body(file.handle) } catch {
            file.discard()
            throw error
        }
        try file.commit()
        return result
    }

    /// The temporary file beside the target.
    private struct Temporary {
        let path: String
        let target: String
        let fd: Int32

        init(for target: String, permissions: Int) throws {
            self.target = target
            path = target + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(permissions))
            guard fd >= 0 else {
                throw YardError(.unavailable, field: target, "cannot write \(target) (\(String(cString: strerror(errno)))); check the folder exists and is writable")
            }
        }

        /// Writes to the descriptor; `commit` or `discard` closes it.
        var handle: FileHandle { FileHandle(fileDescriptor: fd, closeOnDealloc: false) }

        func commit(durable: Bool = true) throws {
            let synced = !durable || fsync(fd) == 0
            let reason = String(cString: strerror(errno))
            close(fd)
            guard synced else {
                unlink(path)
                throw YardError(.unavailable, field: target, "cannot write \(target): \(reason)")
            }
            guard rename(path, target) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(path)
                throw YardError(.unavailable, field: target, "cannot write \(target): \(reason)")
            }
            guard durable else { return }
            // The rename lives in the folder: flush it too. Some file systems
            // cannot fsync a folder (EINVAL); there the rename is as durable as it gets.
            let parent = (target as NSString).deletingLastPathComponent
            let folder = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard folder >= 0 else { return }
            defer { close(folder) }
            if fsync(folder) != 0 && errno != EINVAL {
                throw YardError(.unavailable, field: target, "cannot flush the folder of \(target): \(String(cString: strerror(errno)))")
            }
        }

        func discard() {
            close(fd)
            unlink(path)
        }
    }
}
