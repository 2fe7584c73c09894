import Foundation

/// One immutable version of a registered dataset. Its `id` is the DVC
/// directory hash of its files (`md5` of DVC's sorted relpath/md5 listing,
/// with DVC's `.dir` suffix), so `dvc add` on the same folder prints the same
/// value; `number` counts the versions of one name from 1.
public struct DatasetVersion: Sendable, Codable, Hashable {
    public var name: String
    public var number: Int
    public var id: String
    public var createdAt: Date
    /// What it was added from, as given (a path, a ZIP, an `s3://` URI).
    public var source: String
    /// `yolo`, `flat` (split on import), `coco` (converted) or `classify`.
    public var format: String
    /// `detect` or `classify`.
    public var task: String
    public var files: Int
    public var bytes: Int64
    public var classes: [String]
    public var splits: [String: SplitSummary]
    /// Counts of the validation report's problems, by severity.
    public var errors: Int
    public var warnings: Int
    /// What the import did beyond copying (a split's seed and ratios, a
    /// conversion's dropped boxes), one line each.
    public var notes: [String]
    /// The user who added it.
    public var createdBy: String?

    public init(name: String, number: Int, id: String, createdAt: Date, source: String, format: String, task: String,
                files: Int, bytes: Int64, classes: [String], splits: [String: SplitSummary], errors: Int, warnings: Int, notes: [String]) {
        self.name = name
        self.number = number
        self.id = id
        self.createdAt = createdAt
        self.source = source
        self.format = format
        self.task = task
        self.files = files
        self.bytes = bytes
        self.classes = classes
        self.splits = splits
        self.errors = errors
        self.warnings = warnings
        self.notes = notes
    }

    /// `NAME@ID`: how a job records the version it trained on.
    public var reference: String { "\(name)@\(id)" }

    enum CodingKeys: String, CodingKey {
        case name, number, id, source, format, task, files, bytes, classes, splits, errors, warnings, notes
        case createdAt = "created_at", createdBy = "created_by"
    }

    /// Images, labelled images, boxes (instances) and boxes per class of one split.
    public struct SplitSummary: Sendable, Codable, Hashable {
        public var images: Int
        public var labelled: Int
        public var instances: Int
        public var classCounts: [Int]

        public init(images: Int, labelled: Int, instances: Int, classCounts: [Int]) {
            self.images = images
            self.labelled = labelled
            self.instances = instances
            self.classCounts = classCounts
        }

        enum CodingKeys: String, CodingKey {
            case images, labelled, instances
            case classCounts = "class_counts"
        }
    }

    /// Dataset names: letters, digits, `_ - .`, at most 128, starting with a
    /// letter or digit (a leading `-` reads as a command-line option, a leading `.` as a hidden folder).
    public static func validateName(_ name: String, field: String = "name") throws(YardError) {
        let ok = !name.isEmpty && name.count <= 128 && name.first.map { $0.isASCII && ($0.isLetter || $0.isNumber) } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        guard ok else { throw YardError.invalid(field, "\"\(name.prefix(40))\" must be 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit") }
    }
}

/// `dataset:NAME`, `dataset:NAME@3` (a version number) or
/// `dataset:NAME@1f0e3a…` (a prefix of a version id, at least 6 characters),
/// as a job's `train.data` names a registered dataset.
public struct DatasetReference: Sendable, Hashable, CustomStringConvertible {
    public static let scheme = "dataset:"

    public var name: String
    /// Nil: the latest version.
    public var version: String?

    public init(name: String, version: String? = nil) {
        self.name = name
        self.version = version
    }

    public static func isReference(_ data: String) -> Bool { data.hasPrefix(scheme) }

    public static func parse(_ data: String, field: String = "train.data") throws(YardError) -> DatasetReference {
        guard data.hasPrefix(scheme) else { throw YardError.invalid(field, "\(data) is not a dataset:NAME reference") }
        let rest = data.dropFirst(scheme.count)
        let parts = rest.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        do { try DatasetVersion.validateName(name, field: field) } catch {
            throw YardError.invalid(field, "\(data): the dataset name \(error.message.dropFirst(field.count + 2))")
        }
        guard parts.count == 2 else { return DatasetReference(name: name) }
        let version = String(parts[1])
        let isNumber = Int(version).map { $0 > 0 } ?? false
        let isID = version.count >= 6 && version.count <= 40 && version.allSatisfy { $0.isHexDigit || $0 == "." || $0 == "d" || $0 == "i" || $0 == "r" }
        guard isNumber || isID else {
            throw YardError.invalid(field, "\(data): the version must be a number (@3) or at least 6 characters of its id (@1f0e3a); `yard datasets show \(name)` lists them")
        }
        return DatasetReference(name: name, version: version)
    }

    public var description: String { Self.scheme + name + (version.map { "@" + $0 } ?? "") }
}
