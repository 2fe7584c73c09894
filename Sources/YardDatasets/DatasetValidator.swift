import Crypto
import Dispatch
import Foundation
import Synchronization
import YardDomain

/// Reads every file of a plan once, on all cores: its md5 (for the version
/// id and duplicate images), an image's header (format, size, damage) and a
/// label file whole (checked row by row).
public enum DatasetValidator {
    public struct Digest: Sendable {
        public var md5: String
        public var size: Int64
        public var stat: FileStat?
    }

    public struct Result: Sendable {
        public var report: ValidationReport
        /// By entry, in the plan's order.
        public var digests: [Digest]
        /// Images `--fix` leaves out, and cleaned label rows by label path.
        public var dropped: Set<String>
        public var cleanedLabels: [String: [String]]
    }

    /// `progress(done, total)` is called from worker threads, at most every 1% or so.
    public static func run(_ plan: DatasetPlan, root: String, cache: HashCache?, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) throws(YardError) -> Result {
        let started = Date()
        let entries = plan.entries
        let images = Set(plan.splits.flatMap { $0.images.map(\.relpath) })
        let labels = Set(plan.splits.flatMap { $0.images.compactMap(\.label) })
        /// What a thread learns of one file; only results are kept, not bytes.
        struct Read: @unchecked Sendable {
            var digest: Digest?
            var error: String?
            var probe: ImageProbe.Outcome?
            var labels: YOLOLabels.Checked?
        }
        let classCount = plan.names.count, keypoints = plan.keypoints
        let slots = Slots<Read>(count: entries.count, initial: Read())
        let done = Atomic<Int>(0)
        let total = entries.count
        let step = max(1, total / 200)
        let workers = max(1, min(threads, total))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var scratch: [UInt8] = []
            var i = worker
            while i < total {
                let entry = entries[i]
                let isImage = images.contains(entry.relpath), isLabel = labels.contains(entry.relpath)
                let keep = isImage ? ImageProbe.headBytes : isLabel ? Int.max : 0
                var read = Read()
                var head: [UInt8] = [], tail: [UInt8] = []
                switch entry.content {
                case .bytes(let bytes):
                    read.digest = Digest(md5: Insecure.MD5.hash(data: bytes).hex, size: Int64(bytes.count), stat: nil)
                    head = keep > 0 ? bytes : []
                    tail = Array(bytes.suffix(2))
                case .file(let path):
                    do {
                        let digest = try FileDigest.read(path, keep: keep, cache: cache, scratch: &scratch)
                        read.digest = Digest(md5: digest.md5, size: digest.stat.size, stat: digest.stat)
                        head = digest.head
                        tail = digest.tail
                    } catch {
                        read.error = (error as? YardError)?.message ?? "\(error)"
                    }
                }
                if read.digest != nil {
                    if isImage {
                        let ext = DatasetPlan.pathExtension(entry.relpath)
                        read.probe = ImageProbe.probe(head: head, tail: tail, size: read.digest!.size, ext: ext)
                    } else if isLabel {
                        read.labels = YOLOLabels.check(head, file: entry.relpath, classCount: classCount, keypoints: keypoints)
                    }
                }
                slots[i] = read
                let n = done.add(1, ordering: .relaxed).newValue
                if n % step == 0 || n == total { progress?(n, total) }
                i += workers
            }
        }
        let reads = slots.values
        var problems = plan.problems
        var digests: [Digest] = []
        var index: [String: Int] = [:]
        for (i, entry) in entries.enumerated() {
            index[entry.relpath] = i
            if let error = reads[i].error {
                problems.append(DatasetProblem(.error, "unreadable", file: entry.relpath, error))
                digests.append(Digest(md5: "", size: 0, stat: nil))
            } else {
                digests.append(reads[i].digest!)
            }
        }
        if reads.contains(where: { $0.error != nil }) {
            // A file that cannot be read cannot be stored either.
            let first = problems.first { $0.kind == "unreadable" }!
            throw YardError(.unavailable, field: first.file, first.message)
        }

        var dropped = Set<String>()
        var cleaned: [String: [String]] = [:]
        var sizes: [String: Int] = [:]
        var summaries: [String: DatasetVersion.SplitSummary] = [:]
        var firstByHash: [String: String] = [:]
        for split in plan.splits {
            var summary = DatasetVersion.SplitSummary(images: 0, labelled: 0, instances: 0, classCounts: Array(repeating: 0, count: plan.names.count))
            for image in split.images {
                guard let i = index[image.relpath] else { continue }
                summary.images += 1
                switch reads[i].probe ?? .unchecked("") {
                case .ok(let info):
                    sizes[ValidationReport.sizeBucket(info.width, info.height), default: 0] += 1
                case .warning(let info, let why):
                    sizes[ValidationReport.sizeBucket(info.width, info.height), default: 0] += 1
                    problems.append(DatasetProblem(.warning, "truncated_jpeg", file: image.relpath, why))
                    dropped.insert(image.relpath)
                case .corrupt(let why):
                    problems.append(DatasetProblem(.error, "corrupt_image", file: image.relpath, why))
                    dropped.insert(image.relpath)
                    continue
                case .unchecked:
                    sizes["unknown", default: 0] += 1
                }
                if let first = firstByHash[digests[i].md5] {
                    problems.append(DatasetProblem(.warning, "duplicate_image", file: image.relpath, "the same bytes as \(first)"))
                    dropped.insert(image.relpath)
                } else {
                    firstByHash[digests[i].md5] = image.relpath
                }
                if let cls = image.classIndex, cls < summary.classCounts.count {
                    summary.labelled += 1
                    summary.instances += 1
                    summary.classCounts[cls] += 1
                    continue
                }
                guard plan.task == "detect" else { continue }
                guard let label = image.label, let j = index[label] else {
                    problems.append(DatasetProblem(.warning, "missing_label", file: image.relpath, "no label file (\(DatasetPlan.labelPath(for: image.relpath))); trained as a background image"))
                    continue
                }
                guard let checked = reads[j].labels else { continue }
                problems += checked.problems
                if checked.rejected {
                    dropped.insert(image.relpath)
                    continue
                }
                cleaned[label] = checked.cleaned
                if !checked.classes.isEmpty { summary.labelled += 1 }
                summary.instances += checked.classes.count
                for cls in checked.classes { summary.classCounts[cls] += 1 }
            }
            summaries[split.name] = summary
        }
        for orphan in plan.orphanLabels {
            problems.append(DatasetProblem(.warning, "orphan_label", file: orphan, "a label file without an image"))
        }
        problems.sort { ($0.severity == .error ? 0 : 1, $0.file, $0.line ?? 0) < ($1.severity == .error ? 0 : 1, $1.file, $1.line ?? 0) }
        let report = ValidationReport(root: root, task: plan.task, classes: plan.names, files: entries.count,
                                      bytes: digests.reduce(0) { $0 + $1.size }, splits: summaries, imageSizes: sizes,
                                      problems: problems, seconds: Date().timeIntervalSince(started))
        return Result(report: report, digests: digests, dropped: dropped, cleanedLabels: cleaned)
    }
}

/// A fixed array that threads write at distinct indices (a raw buffer:
/// a class's array property would trip Swift's exclusivity checks).
final class Slots<T>: @unchecked Sendable {
    private let base: UnsafeMutablePointer<T>
    let count: Int
    init(count: Int, initial: T) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: initial, count: count)
    }
    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }
    subscript(i: Int) -> T {
        get { base[i] }
        set { base[i] = newValue }
    }
    var values: [T] { Array(UnsafeBufferPointer(start: base, count: count)) }
}
