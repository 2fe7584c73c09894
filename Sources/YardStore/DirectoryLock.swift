import Foundation
import YardDomain

/// An exclusive lock on a data dir (`DATA/yard.lock`, flock), held for the
/// life of the process that owns it: two `yard up` on one data dir would
/// race for the same jobs, and a key rotation must not run beside a server.
/// The kernel drops the lock when the process dies, however it dies.
public final class DirectoryLock: Sendable {
    private let fd: Int32

    public init(directory: String, purpose: String) throws {
        let path = directory + "/yard.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw YardError(.unavailable, field: "--data-dir", "--data-dir: cannot open \(path) (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw YardError(.conflict, field: "--data-dir",
                            "--data-dir: \(directory) is in use by another yard process\(holder.isEmpty ? "" : " (pid \(holder))"); stop it before \(purpose)")
        }
        _ = ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.utf8CString.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress, $0.count - 1, 0) }
    }

    deinit { close(fd) }
}

extension DirectoryLock {
    /// Makes `path` this process's private data dir: its standard path,
    /// created if needed, 0700, files created 0600 from now on (the
    /// process's umask, inherited by the engine), locked against a second
    /// process. Returns the path and the lock to hold.
    public static func ownDataDirectory(_ path: String, purpose: String) throws -> (path: String, lock: DirectoryLock) {
        let data = URL(fileURLWithPath: path).standardizedFileURL.path
        umask(0o077)
        do {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        } catch {
            throw YardError(.invalidInput, field: "--data-dir", "--data-dir: cannot create \(data): \(error.localizedDescription)")
        }
        _ = chmod(data, 0o700)
        return (data, try DirectoryLock(directory: data, purpose: purpose))
    }
}
