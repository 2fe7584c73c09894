import Foundation
import Glibc
import Synchronization

/// The write end of a child process's stdin, owned alone. Every write and
/// the close run in order on one serial queue, so a close can never race a
/// write or another close. With a shared `FileHandle`, such a race writes to
/// (or closes) whatever file reused the number in between: a Redis or HTTP
/// socket of the same process.
package final class ProcessInput: Sendable {
    private let queue: DispatchQueue
    /// -1 once closed; changed only on `queue`.
    private let fd: Mutex<Int32>

    /// Takes over `handle`'s descriptor (the handle is closed; the copy is
    /// close-on-exec, so no later child inherits it). `pipeSize`: what the
    /// pipe should hold, best effort (Linux's limit is
    /// /proc/sys/fs/pipe-max-size).
    package init(_ handle: FileHandle, label: String, pipeSize: Int32? = nil) {
        // Writing to a process that has just died must fail the write, not
        // kill this one (children get SIGPIPE back at spawn).
        signal(SIGPIPE, SIG_IGN)
        let own = fcntl(handle.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        try? handle.close()
        if let pipeSize, own >= 0 {
            let setPipeSize: Int32 = 1031  // F_SETPIPE_SZ (Linux; Glibc leaves it out without _GNU_SOURCE)
            _ = fcntl(own, setPipeSize, pipeSize)
        }
        fd = Mutex(own)
        queue = DispatchQueue(label: label)
    }

    deinit {
        let fd = fd.withLock { $0 }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Queues `data` after the writes before it. A write blocks until the
    /// process reads, so it never runs on the caller's thread. `failed`
    /// hears why, on the queue, if it cannot be written (closed, or the
    /// process has gone).
    package func write(_ data: Data, failed: @escaping @Sendable (String) -> Void) {
        queue.async { [self] in
            let fd = fd.withLock { $0 }
            guard fd >= 0 else { return failed("its input is closed") }
            let error: Int32? = data.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    offset += n
                }
                return nil
            }
            if let error { failed(String(cString: strerror(error))) }
        }
    }

    /// Closes after the writes queued before it; later calls do nothing.
    package func close() {
        queue.async { [self] in
            let fd = fd.withLock { fd in
                defer { fd = -1 }
                return fd
            }
            if fd >= 0 { Glibc.close(fd) }
        }
    }

    /// Waits for everything queued so far (tests).
    package func drain() { queue.sync {} }
}
