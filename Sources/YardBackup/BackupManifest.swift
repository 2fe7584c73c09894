import Foundation
import YardDomain

/// What a backup holds, written as the archive's last member
/// (`manifest.json`): every file with its size and sha256. The first member
/// (`trainyard-backup.json`) says what made the archive.
public struct BackupManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        /// The member's path in the archive (`data/...`).
        public var path: String
        public var size: Int64
        public var sha256: String
        /// Set for a hard link: the earlier member it is the same file as.
        public var link: String?
        /// Modification time in nanoseconds since 1970 (tar's field has
        /// seconds; a dataset version's check compares nanoseconds).
        public var mtime: Int64?

        public init(path: String, size: Int64, sha256: String, link: String? = nil, mtime: Int64? = nil) {
            self.path = path
            self.size = size
            self.sha256 = sha256
            self.link = link
            self.mtime = mtime
        }
    }

    public var files: [Entry]

    public static let header = "trainyard-backup.json"
    public static let name = "manifest.json"
    public static let dataPrefix = "data/"
}

/// The archive's first member.
public struct BackupHeader: Codable, Sendable, Equatable {
    public var format: Int
    public var trainyard: String
    public var createdAt: Date
    /// The data dir it was made from (dataset versions' data.yaml name it;
    /// a restore elsewhere rewrites those paths).
    public var source: String
    public var secretKeyIncluded: Bool
    public var checkpointsIncluded: Bool

    public static let currentFormat = 1
}

enum BackupJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()
}

/// Checks a member's path: relative, no `.`/`..`/empty parts, no NUL or
/// backslash, bounded. Every path from an archive passes here before it is
/// joined to a folder.
enum MemberPath {
    static func check(_ path: String) throws {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/") else {
            throw Tar.damaged("\(Self.printable(path)) is an absolute path (nothing restored)")
        }
        guard !parts.contains("..") else { throw Tar.damaged("\(Self.printable(path)) climbs out with '..' (nothing restored)") }
        guard path.utf8.count <= 4096, !path.contains("\0"), !path.contains("\\"),
              parts.dropLast(path.hasSuffix("/") ? 1 : 0).allSatisfy({ !$0.isEmpty && $0 != "." })
        else { throw Tar.damaged("\(Self.printable(path)) is not a plain relative path (nothing restored)") }
    }

    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) }.prefix(300))
    }
}
