import Foundation
import YardDomain
import YardStore
import YardTracker

/// `yard secrets rotate`: seals every job secret and spooled tracking URI of
/// a data dir with a new key, while no server runs on it. With a key file,
/// the new key is added first (old keys still open), everything is
/// re-sealed, then the old keys are dropped: a crash at any step leaves a
/// keyring that opens everything. With `YARD_SECRET_KEY`, the caller lists
/// the new key first and the old ones after it, and drops the old ones
/// once this has run.
public enum SecretRotation {
    public struct Result: Sendable {
        public var rows: Int
        public var spoolFiles: Int
        public var keyID: String
        public var keyFile: String?
    }

    public static func rotate(dataDirectory: String, keyFile: String?,
                              environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> Result {
        let data = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: data + "/yard.sqlite") else {
            throw YardError(.notFound, field: "--data-dir", "--data-dir: \(data) holds no Trainyard database")
        }
        let lock = try DirectoryLock(directory: data, purpose: "rotating its secret key")
        defer { withExtendedLifetime(lock) {} }
        let box: SecretBox
        var path: String?
        var newKey = ""
        if let text = environment[SecretKeyFile.environmentVariable], !text.isEmpty {
            box = try SecretBox(keys: SecretBox.parseKeys(text, source: SecretKeyFile.environmentVariable))
            guard box.keys.count >= 2 else {
                throw YardError(.invalidInput, field: SecretKeyFile.environmentVariable,
                                "\(SecretKeyFile.environmentVariable): list the new key first and the old one(s) after it, comma-separated")
            }
        } else {
            let file = keyFile ?? SecretKeyFile.defaultPath(dataDirectory: data)
            _ = try SecretKeyFile.load(path: file, environment: [:])  // creates it 0600 if missing
            let oldKeys = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            let new = SecretBox.newKey()
            try SecretKeyFile.write([new] + oldKeys, to: file)
            box = try SecretBox(keys: SecretBox.parseKeys(([new] + oldKeys).joined(separator: "\n"), source: file))
            path = file
            newKey = new
        }
        let store = SQLiteJobStore(database: try YardDatabase(path: data + "/yard.sqlite"), secrets: box)
        let rows = try await store.resealSecrets()
        let spools = try TrackingSpool.reseal(directory: data + "/tracking", with: box)
        if let path { try SecretKeyFile.write([newKey], to: path) }
        return Result(rows: rows, spoolFiles: spools, keyID: box.keys[0].id, keyFile: path)
    }
}
