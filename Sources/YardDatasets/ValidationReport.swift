import Foundation
import YardDomain

/// One thing wrong with a dataset, with the file (relative to the dataset's
/// folder) and line it is on.
public struct DatasetProblem: Sendable, Codable, Hashable {
    public enum Severity: String, Sendable, Codable {
        /// Ultralytics drops the image (or the file is unusable).
        case error
        /// Trained as is (or repaired by Ultralytics), but worth a look.
        case warning
    }

    public var severity: Severity
    /// A stable name: corrupt_image, bad_label, class_out_of_range,
    /// out_of_range_box, degenerate_box, duplicate_row, missing_label,
    /// orphan_label, duplicate_image, truncated_jpeg, unreadable.
    public var kind: String
    public var file: String
    public var line: Int?
    public var message: String

    public init(_ severity: Severity, _ kind: String, file: String, line: Int? = nil, _ message: String) {
        self.severity = severity
        self.kind = kind
        self.file = file
        self.line = line
        self.message = message
    }

    /// `labels/train/a.txt:3: class 7 is beyond names (0-1)`.
    public var location: String { line.map { "\(file):\($0)" } ?? file }
}

/// What `yard datasets validate` reports: every problem, counts per split
/// and class, and the images' sizes.
public struct ValidationReport: Sendable, Codable, Hashable {
    public var root: String
    public var task: String
    public var classes: [String]
    public var files: Int
    public var bytes: Int64
    public var splits: [String: DatasetVersion.SplitSummary]
    /// "WxH" bucketed to the next power of two of the longer side
    /// ("≤640") → images.
    public var imageSizes: [String: Int]
    public var problems: [DatasetProblem]
    public var seconds: Double

    public var errors: Int { problems.count { $0.severity == .error } }
    public var warnings: Int { problems.count { $0.severity == .warning } }

    enum CodingKeys: String, CodingKey {
        case root, task, classes, files, bytes, splits, problems, seconds, errors, warnings
        case imageSizes = "image_sizes"
    }

    public init(root: String, task: String, classes: [String], files: Int, bytes: Int64, splits: [String: DatasetVersion.SplitSummary],
                imageSizes: [String: Int], problems: [DatasetProblem], seconds: Double) {
        self.root = root
        self.task = task
        self.classes = classes
        self.files = files
        self.bytes = bytes
        self.splits = splits
        self.imageSizes = imageSizes
        self.problems = problems
        self.seconds = seconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(root: try c.decode(String.self, forKey: .root), task: try c.decode(String.self, forKey: .task),
                  classes: try c.decode([String].self, forKey: .classes), files: try c.decode(Int.self, forKey: .files),
                  bytes: try c.decode(Int64.self, forKey: .bytes), splits: try c.decode([String: DatasetVersion.SplitSummary].self, forKey: .splits),
                  imageSizes: try c.decode([String: Int].self, forKey: .imageSizes), problems: try c.decode([DatasetProblem].self, forKey: .problems),
                  seconds: try c.decode(Double.self, forKey: .seconds))
    }

    /// With the counts by severity, for readers of the JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(root, forKey: .root)
        try c.encode(task, forKey: .task)
        try c.encode(classes, forKey: .classes)
        try c.encode(files, forKey: .files)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(splits, forKey: .splits)
        try c.encode(imageSizes, forKey: .imageSizes)
        try c.encode(problems, forKey: .problems)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(errors, forKey: .errors)
        try c.encode(warnings, forKey: .warnings)
    }

    /// The bucket an image's longer side falls in.
    static func sizeBucket(_ width: Int, _ height: Int) -> String {
        let side = max(width, height)
        for bound in [32, 64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560, 4096] where side <= bound {
            return "≤\(bound)"
        }
        return ">4096"
    }
}

/// Checks one YOLO label file, line by line, the way Ultralytics'
/// `verify_image_label` does, plus degenerate boxes.
public enum YOLOLabels {
    public struct Checked: Sendable {
        /// Class id of every kept row.
        public var classes: [Int]
        public var problems: [DatasetProblem]
        /// The rows Ultralytics would train on (duplicates and degenerate
        /// boxes removed), for `--fix`.
        public var cleaned: [String]
        /// A row Ultralytics rejects: it drops the whole image.
        public var rejected: Bool
    }

    /// - Parameter keypoints: `kpt_shape` product when the dataset is a pose one.
    public static func check(_ text: [UInt8], file: String, classCount: Int, keypoints: Int?) -> Checked {
        var out = Checked(classes: [], problems: [], cleaned: [], rejected: false)
        var seen = Set<String>()
        var number = 0
        for raw in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            // Bytes split on blanks: no Foundation trimming on the scanner's hot path.
            let fields = raw.split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == 13 }).map { String(decoding: $0, as: UTF8.self) }
            if fields.isEmpty { continue }
            let line = fields.joined(separator: " ")
            func fail(_ kind: String, _ message: String) {
                out.problems.append(DatasetProblem(.error, kind, file: file, line: number, message))
                out.rejected = true
            }
            let values = fields.map { Double($0) }
            // A row is quoted only as a short, escaped excerpt of the field at fault.
            if let bad = values.firstIndex(where: { $0 == nil || !$0!.isFinite }) {
                fail("bad_label", "value \(bad + 1) is not a number: \"\(Excerpt.of(fields[bad]))\""); continue
            }
            let numbers = values.map { $0! }
            let expected: String? = {
                if let keypoints { return numbers.count == 5 + keypoints ? nil : "\(5 + keypoints) values (class, box, keypoints)" }
                if numbers.count == 5 { return nil }
                if numbers.count >= 7, numbers.count % 2 == 1 { return nil }  // class + polygon of 3+ points
                return "5 values (class cx cy w h) or a class and 3+ polygon points"
            }()
            if let expected { fail("bad_label", "\(numbers.count) values; expected \(expected)"); continue }
            let cls = numbers[0]
            guard cls >= 0, cls == cls.rounded() else { fail("bad_label", "class \"\(Excerpt.of(fields[0]))\" is not a non-negative integer"); continue }
            // Compared as a double first: Int(1e300) traps.
            if cls >= Double(classCount) {
                fail("class_out_of_range", "class \(fields[0].prefix(20)) is beyond the dataset's \(classCount) names (0-\(classCount - 1))"); continue
            }
            let coordinates = numbers.dropFirst()
            if let bad = coordinates.first(where: { $0 < 0 || $0 > 1 }) {
                fail("out_of_range_box", "coordinate \(bad) is outside 0-1 (YOLO labels are normalised to the image size)"); continue
            }
            if keypoints != nil || numbers.count == 5, numbers[3] <= 0 || numbers[4] <= 0 {
                out.problems.append(DatasetProblem(.warning, "degenerate_box", file: file, line: number, "box of zero width or height"))
                continue
            }
            guard seen.insert(line).inserted else {
                out.problems.append(DatasetProblem(.warning, "duplicate_row", file: file, line: number, "the same row again (Ultralytics drops it)"))
                continue
            }
            out.classes.append(Int(cls))
            out.cleaned.append(line)
        }
        return out
    }
}
