import Foundation
import YardDomain

/// Where the key that seals secrets at rest comes from: `YARD_SECRET_KEY`
/// (base64 keys, comma-separated, newest first), else a key file (one base64
/// key per line, newest first), created 0600 with a fresh key on first start.
/// The default key file is `DATA/secret.key`: a copy of the data dir without
/// that file reveals no secret.
public enum SecretKeyFile {
    public static let environmentVariable = "YARD_SECRET_KEY"

    public static func defaultPath(dataDirectory: String) -> String { dataDirectory + "/secret.key" }

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SecretBox {
        if let text = environment[environmentVariable], !text.isEmpty {
            return try SecretBox(keys: SecretBox.parseKeys(text, source: environmentVariable))
        }
        if !FileManager.default.fileExists(atPath: path) {
            try write([SecretBox.newKey()], to: path, exclusive: true)
        }
        _ = chmod(path, 0o600)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw YardError(.unavailable, field: path, "\(path): cannot read the secret key file")
        }
        return try SecretBox(keys: SecretBox.parseKeys(String(decoding: data, as: UTF8.self), source: path))
    }

    /// Writes a key file atomically (0600); `exclusive` keeps a file that
    /// already exists (two processes starting at once keep one key).
    public static func write(_ keys: [String], to path: String, exclusive: Bool = false) throws {
        let text = Data((keys.joined(separator: "\n") + "\n").utf8)
        guard exclusive else { return try AtomicFile.write(text, to: path, permissions: 0o600) }
        let temporary = path + ".new-\(getpid())"
        try AtomicFile.write(text, to: temporary, permissions: 0o600)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 && errno != EEXIST {
            throw YardError(.unavailable, field: path, "\(path): cannot create the secret key file (\(String(cString: strerror(errno))))")
        }
    }
}
