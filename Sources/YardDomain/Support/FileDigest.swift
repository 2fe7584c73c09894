import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file's SHA-256, read in 1 MB pieces: weights checked against the
/// registry, a restore's files against the manifest, an S3 upload's
/// payload hash. One reader for all of them.
public enum FileDigest {
    /// The hex digest; a file that cannot be opened or read is a one-line
    /// error naming it (`notFound` when it is not there).
    public static func sha256(of path: String) throws(YardError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code: YardError.Code = errno == ENOENT ? .notFound : .unavailable
            throw YardError(code, field: path, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var hash = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw YardError(.unavailable, field: path, "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            buffer.withUnsafeBytes { hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hash.finalize().hex
    }
}
