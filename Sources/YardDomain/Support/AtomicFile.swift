import Foundation

/// Writes a file whole or not at all: a temporary file in the same folder,
/// flushed to disk, then renamed over the target. The one file helper every
/// target shares (the domain otherwise does no I/O).
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, permissions: Int = 0o600) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(permissions))
        guard fd >= 0 else {
            throw YardError(.unavailable, field: path, "cannot write \(path) (\(String(cString: strerror(errno)))); check the folder exists and is writable")
        }
        var written = 0
        let ok = data.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n <= 0 { return false }
                written += n
            }
            return true
        } && fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        guard ok else {
            unlink(tmp)
            throw YardError(.unavailable, field: path, "cannot write \(path): \(reason)")
        }
        if rename(tmp, path) != 0 {
            unlink(tmp)
            throw YardError(.unavailable, field: path, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
