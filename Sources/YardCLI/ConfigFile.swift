import Foundation
import YardDomain
#if canImport(Glibc)
import Glibc
#endif

/// Reads a config file a user named, saying what is wrong with the path
/// when it cannot: missing, a folder, not a regular file, unreadable, empty,
/// too large or not UTF-8.
enum ConfigFile {
    static let maxSize = 1 << 20

    static func read(_ path: String) throws -> String {
        func fail(_ what: String) -> YardError {
            YardError(.invalidInput, field: path, "\(path): \(what); give the path of a job config YAML file")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw fail(errno == ENOENT ? "no such file" : String(cString: strerror(errno)).lowercased())
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw fail("is a folder, not a file")
        default: throw fail("is not a regular file (a device, pipe or socket)")
        }
        guard info.st_size > 0 else { throw fail("is empty") }
        guard info.st_size <= maxSize else { throw fail("is \(info.st_size / 1024) KiB; a job config is at most 1 MiB") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw fail(errno == EACCES ? "permission denied" : "cannot be opened (\(String(cString: strerror(errno)).lowercased()))")
        }
        defer { try? handle.close() }
        let data = (try? handle.readToEnd()) ?? Data()
        guard let text = String(validating: data, as: UTF8.self) else { throw fail("is not UTF-8 text") }
        return text
    }
}
