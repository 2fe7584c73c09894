/// A parsed job config in the seeds' `config.yaml` format (DESIGN.md).
///
/// The document is kept as the user wrote it (so `train:` reaches Ultralytics
/// verbatim); the typed accessors read the parts Trainyard itself acts on.
public struct JobConfig: Sendable, Hashable {
    public enum ModelType: String, Sendable, Codable, CaseIterable {
        case yolo, rtdetr
    }

    /// Top-level keys a config may have; anything else is an error naming the key.
    public static let topLevelKeys: [String] = [
        "model", "type", "task_id", "experiment", "train", "val", "mlflow", "minio",
        "redis", "sweeper", "extras", "metadata", "max_attempts", "evaluate_test", "deploy", "notify",
        "priority", "oom_retry", "resources",
    ]

    /// Attempts a job may lose to a crash (of the engine's host process or of
    /// `yard up` itself) before it fails instead of being requeued again.
    public static let defaultMaxAttempts = 3

    /// `train:` (and `val:`) keys Trainyard owns: where runs are saved and
    /// how they resume. Any Ultralytics argument that chooses where files go
    /// is here, so no config can write outside the service's data dir.
    public static let reservedTrainKeys: [String: String] = [
        "project": "Trainyard saves every run under its data dir; remove train.project",
        "name": "Trainyard names each run after its task_id; remove train.name",
        "exist_ok": "Trainyard manages run folders; remove train.exist_ok",
        "save_dir": "Trainyard chooses where runs are saved (DATA/runs/TASK_ID); remove train.save_dir",
        "cfg": "a cfg file could choose where runs are saved; put its settings in train: instead",
        "model": "set the model at the top level (model: ...), not in train:",
        "resume": "to continue a stopped job use `yard resume ID`; remove train.resume",
    ]

    /// The largest config Trainyard stores, as JSON: every job listing
    /// carries it, and real configs are a few KiB.
    public static let maxStoredSize = 64 * 1024

    public private(set) var document: [String: JSONValue]

    init(validatedDocument: [String: JSONValue]) {
        self.document = validatedDocument
    }

    public var model: String { document["model"]?.stringValue ?? "" }
    public var type: ModelType { document["type"]?.stringValue.flatMap(ModelType.init(rawValue:)) ?? .yolo }
    public var taskID: String? { document["task_id"]?.stringValue }
    public var train: [String: JSONValue] { document["train"]?.objectValue ?? [:] }
    public var val: [String: JSONValue]? { document["val"]?.objectValue }
    public var data: String { train["data"]?.stringValue ?? "" }
    public var epochs: Int { train["epochs"]?.intValue ?? 100 }
    /// `resources:` (routing to a worker with these tags and free GPU memory).
    public var resources: JobResources { JobResources(config: .object(document)) }

    /// `priority:` 0-9 (9 first), 5 when absent.
    public var priority: Int { document["priority"]?.intValue ?? JobPriority.default }
    public var maxAttempts: Int { document["max_attempts"]?.intValue ?? Self.defaultMaxAttempts }
    public var sweeper: [String: JSONValue]? { document["sweeper"]?.objectValue }
    /// The validated `sweeper:` block (the parser checked it).
    public var sweep: SweepSpec? { document["sweeper"].flatMap { try? SweepSpec.parse($0) } }
    public var metadata: [String: JSONValue]? { document["metadata"]?.objectValue }
    /// The validated `notify:` section (the parser checked it); in a stored
    /// job's config its url and secret are masked: read them from its secrets.
    public var notify: NotifySpec? { document["notify"].flatMap { try? NotifySpec.parse($0) } }

    /// Experiment name: `experiment:`, else `sweeper.study_name`, else "default".
    public var experiment: String {
        document["experiment"]?.stringValue ?? sweeper?["study_name"]?.stringValue ?? "default"
    }

    /// The same config with `task_id` set (used when the server generates one).
    public func withTaskID(_ id: String) -> JobConfig {
        var copy = self
        copy.document["task_id"] = .string(id)
        return copy
    }

    /// The same config with `metadata.KEY` set (what a bridge knows about
    /// the job's origin, e.g. a wyolo message's trial number).
    public func withMetadata(_ key: String, _ value: JSONValue) -> JobConfig {
        var copy = self
        var metadata = copy.document["metadata"]?.objectValue ?? [:]
        metadata[key] = value
        copy.document["metadata"] = .object(metadata)
        return copy
    }

    /// The same config training on `data` (a `dataset:NAME` pinned to one version).
    public func withTrainData(_ data: String) -> JobConfig {
        var copy = self
        var train = copy.document["train"]?.objectValue ?? [:]
        train["data"] = .string(data)
        copy.document["train"] = .object(train)
        return copy
    }

    /// The seed `train.seed` records (nil until the job layer chose one).
    public var seed: Int? { train["seed"]?.intValue }

    /// The largest seed chosen for a job (Ultralytics passes it to numpy, which takes 32 bits).
    public static let maxSeed = Int(UInt32.max)

    /// The same config with a recorded seed (`seed` when it has none) and
    /// Ultralytics' `deterministic: true` unless it says otherwise: a rerun
    /// of the record is then the same computation, exact on a CPU.
    public func withReproducibility(seed: Int) -> JobConfig {
        var copy = self
        var train = copy.document["train"]?.objectValue ?? [:]
        if train["seed"] == nil { train["seed"] = .int(seed) }
        if train["deterministic"] == nil { train["deterministic"] = .bool(true) }
        copy.document["train"] = .object(train)
        return copy
    }

    /// The same config starting from `model` (a registered version pinned to its number).
    public func withModel(_ model: String) -> JobConfig {
        var copy = self
        copy.document["model"] = .string(model)
        return copy
    }

    /// The same config without `task_id` (a rerun gets its own).
    public func withoutTaskID() -> JobConfig {
        var copy = self
        copy.document["task_id"] = nil
        return copy
    }

    /// A stand-in for a job whose submission could not be read (a bad
    /// message from a queue client): it is recorded failed with the reason,
    /// so the submission is not lost.
    public static func unreadable(taskID: String, source: [String: JSONValue]) -> JobConfig {
        JobConfig(validatedDocument: ["model": "-", "task_id": .string(taskID), "metadata": .object(source)])
    }

    /// The whole document as one JSON value.
    public var json: JSONValue { .object(document) }
}
