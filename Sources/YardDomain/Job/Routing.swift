import Foundation

/// What a job needs of the worker that runs it, `resources:` in its config
/// (issue 32): every tag in `tags` (`yard worker --tags a100,80gb`), and at
/// least `gpu_memory_gb` of free GPU memory on the worker's GPU.
///
///     resources: {tags: [a100], gpu_memory_gb: 40}
public struct JobResources: Sendable, Hashable {
    /// Lowercased, sorted, without repeats (tags compare case-insensitively).
    public var tags: [String]
    /// In GB of 10^9 bytes (nvidia-smi's MiB converted), as the field's name
    /// says; nil: any worker, with or without GPU stats.
    public var gpuMemoryGB: Double?

    public init(tags: [String] = [], gpuMemoryGB: Double? = nil) {
        self.tags = Array(Set(tags.map { $0.lowercased() })).sorted()
        self.gpuMemoryGB = gpuMemoryGB
    }

    public static let none = JobResources()
    public var isEmpty: Bool { tags.isEmpty && gpuMemoryGB == nil }

    static let keys = ["tags", "gpu_memory_gb"]
    /// The most GPU memory a job may ask for (no GPU has more yet; a larger
    /// number is a typo, MB for GB).
    public static let maxGPUMemoryGB = 4096.0
    public static let maxTags = 32

    /// Validates a config's `resources:` section, in one line naming the field.
    public static func parse(_ value: JSONValue) throws(YardError) -> JobResources {
        guard let section = value.objectValue else {
            throw YardError.invalid("resources", "must be a mapping like {tags: [a100], gpu_memory_gb: 40}, got \(value.kindName)")
        }
        for key in section.keys.sorted() where !keys.contains(key) {
            throw YardError.invalid("resources.\(key)", "unknown key; allowed keys are \(keys.joined(separator: ", "))")
        }
        var tags: [String] = []
        if let value = section["tags"], value != .null {
            // One tag may be written bare (`tags: a100`).
            let items = value.arrayValue ?? [value]
            guard items.count <= maxTags else {
                throw YardError.invalid("resources.tags", "at most \(maxTags) tags, got \(items.count)")
            }
            for item in items {
                guard let tag = item.stringValue else {
                    throw YardError.invalid("resources.tags", "must be a list of tags such as [a100, 80gb], got \(item.kindName) in it")
                }
                try WorkerTags.validate(tag, field: "resources.tags")
                tags.append(tag)
            }
        }
        var memory: Double?
        if let value = section["gpu_memory_gb"], value != .null {
            guard let gb = value.doubleValue, gb.isFinite, gb > 0, gb <= maxGPUMemoryGB else {
                throw YardError.invalid("resources.gpu_memory_gb",
                                        "must be a number of GB of free GPU memory above 0 and at most \(Int(maxGPUMemoryGB)), such as 40, got \(JobConfigParser.show(value))")
            }
            memory = gb
        }
        return JobResources(tags: tags, gpuMemoryGB: memory)
    }

    /// The resources of a stored config (validated when it was submitted);
    /// a section that no longer parses asks for nothing.
    public init(config: JSONValue) {
        guard let section = config["resources"], let parsed = try? Self.parse(section) else {
            self = .none
            return
        }
        self = parsed
    }
}

/// Worker tags, `yard worker --tags a100,80gb`: what a job's
/// `resources.tags` must all be among.
public enum WorkerTags {
    /// One tag: letters, digits, `.`, `_`, `-`, at most 64, starting with a
    /// letter or digit (so a list reads unambiguously in messages and flags).
    public static func validate(_ tag: String, field: String) throws(YardError) {
        let ok = (1...64).contains(tag.count) && tag.first.map { $0.isASCII && ($0.isLetter || $0.isNumber) } == true
            && tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
        guard ok else {
            throw YardError.invalid(field, "\"\(tag.prefix(70))\" is not a tag; use letters, digits, '.', '_' or '-' (at most 64, such as a100 or 80gb)")
        }
    }

    /// A comma-separated list (`--tags a100,80gb`), lowercased, sorted,
    /// without repeats; empty items are skipped.
    public static func parse(_ list: String, field: String = "--tags") throws(YardError) -> [String] {
        var tags: Set<String> = []
        for item in list.split(separator: ",") {
            let tag = item.trimmingCharacters(in: .whitespaces)
            if tag.isEmpty { continue }
            try validate(tag, field: field)
            tags.insert(tag.lowercased())
        }
        return tags.sorted()
    }
}

/// What a worker offers when it claims: its tags, and the free memory of
/// the GPU it would run the job on.
public struct WorkerCapacity: Sendable, Hashable {
    public var tags: Set<String>
    /// nil: no GPU stats (no nvidia-smi, or it failed): such a worker takes
    /// only jobs that do not ask for GPU memory.
    public var freeGPUMemoryGB: Double?

    public init(tags: [String] = [], freeGPUMemoryGB: Double? = nil) {
        self.tags = Set(tags.map { $0.lowercased() })
        self.freeGPUMemoryGB = freeGPUMemoryGB
    }

    /// A worker with no tags and no GPU stats: jobs that ask for nothing.
    public static let plain = WorkerCapacity()

    /// From its GPUs as nvidia-smi last read them: the most free memory on
    /// one of them (a job runs on one GPU). With `whole`, a GPU's total
    /// memory counts instead: a busy worker frees its own job's memory when
    /// that ends, so it can take the job later.
    public init(tags: [String], gpus: [GPUStats], whole: Bool = false) {
        let free = gpus.compactMap { gpu -> Int? in
            guard let total = gpu.memoryTotalMiB else { return nil }
            if whole { return total }
            return gpu.memoryUsedMiB.map { max(0, total - $0) }
        }.max()
        self.init(tags: tags, freeGPUMemoryGB: free.map(Self.gigabytes(mebibytes:)))
    }

    /// nvidia-smi's MiB in GB of 10^9 bytes.
    public static func gigabytes(mebibytes: Int) -> Double { Double(mebibytes) * 1_048_576 / 1_000_000_000 }
}

/// Which worker may take which job: the one eligibility rule every queue
/// driver claims by, and the reason shown for a job none can take.
public enum Routing {
    /// Whether `worker` may run a job needing `resources`: it has every tag,
    /// and, when GPU memory is asked for, GPU stats with that much free.
    public static func fits(_ resources: JobResources, on worker: WorkerCapacity) -> Bool {
        guard resources.tags.allSatisfy(worker.tags.contains) else { return false }
        guard let need = resources.gpuMemoryGB else { return true }
        guard let free = worker.freeGPUMemoryGB else { return false }
        return free >= need
    }

    /// Why no live worker can take the job (one line, starting "waiting: "),
    /// tags first, then memory among the workers with the tags; nil when one
    /// can, or the job asks for nothing.
    public static func unroutable(_ resources: JobResources, workers: [WorkerCapacity]) -> String? {
        guard !resources.isEmpty else { return nil }
        let tagged = workers.filter { worker in resources.tags.allSatisfy(worker.tags.contains) }
        if tagged.isEmpty, !resources.tags.isEmpty {
            return "waiting: no worker has tags \(resources.tags.joined(separator: ", "))"
        }
        if let need = resources.gpuMemoryGB, !tagged.contains(where: { fits(resources, on: $0) }) {
            return "waiting: no worker\(resources.tags.isEmpty ? "" : " with tags \(resources.tags.joined(separator: ", "))") has \(show(need)) GB of free GPU memory"
        }
        return nil
    }

    /// 40 as "40", 12.5 as "12.5".
    static func show(_ gb: Double) -> String {
        gb == gb.rounded() && abs(gb) < 1e15 ? String(Int(gb)) : String(gb)
    }
}
