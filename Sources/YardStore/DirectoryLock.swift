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
