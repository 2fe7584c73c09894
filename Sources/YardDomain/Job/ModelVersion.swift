import Foundation

/// A registered model version. Trainyard's store is the registry of record:
/// versions are numbered here (1, 2, ... per model), their weights are named
/// by content hash, and MLflow's registry, when configured, mirrors them
/// (`mlflowVersion` is the number MLflow gave the same version).
public struct ModelVersion: Sendable, Codable, Hashable {
    public var name: String
    public var version: String
    public var jobID: String
    /// The job's MLflow run, when it has one.
    public var runID: String
    /// Where the weights were when the version was made: an artifact key of
    /// the job (`JOB/weights/best.pt`), `s3://bucket/key`, or the MLflow
    /// run's `.../weights/best.pt`.
    public var source: String
    public var createdAt: Date
    public var aliases: [String]
    /// sha256 of the weights file: the key of the model cache.
    public var sha256: String?
    public var size: Int64?
    /// Every place the weights can be fetched from, in the order tried.
    public var locations: [WeightsLocation]?
    /// detect, segment, classify, pose, obb (from the job's model).
    public var task: String?
    /// The job's final metrics (validation, then test split).
    public var metrics: [String: Double]?
    public var mlflowVersion: String?
    /// Why MLflow's registry does not hold it (yet), if it should.
    public var mirrorError: String?
    /// The last health check before an alias was moved to it.
    public var health: HealthCheck?
    /// The weights in other formats (`onnx`), made by `yard models export`.
    public var exports: [String: ExportedWeights]?
    /// The user who registered it (for auto-registration, the job's owner).
    public var createdBy: String?

    public init(name: String, version: String, jobID: String, runID: String, source: String, createdAt: Date, aliases: [String] = []) {
        self.name = name
        self.version = version
        self.jobID = jobID
        self.runID = runID
        self.source = source
        self.createdAt = createdAt
        self.aliases = aliases
    }

    enum CodingKeys: String, CodingKey {
        case name, version, source, aliases, sha256, size, locations, task, metrics
        case jobID = "job_id", runID = "run_id", createdAt = "created_at"
        case mlflowVersion = "mlflow_version", mirrorError = "mirror_error", health, exports
        case createdBy = "created_by"
    }

    /// Registered model names and aliases: letters, digits, `_ - .`, at most
    /// 256, starting with a letter or digit (a leading `-` reads as a command-line option).
    public static func validateName(_ name: String, field: String) throws(YardError) {
        let ok = !name.isEmpty && name.count <= 256 && name.first.map { $0.isASCII && ($0.isLetter || $0.isNumber) } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        guard ok else { throw YardError.invalid(field, "\"\(name.prefix(40))\" must be 1-256 letters, digits, '_', '-' or '.', starting with a letter or digit") }
    }
}

/// A version's weights exported to another format, kept in the model
/// cache by content hash like the weights themselves.
public struct ExportedWeights: Sendable, Codable, Hashable {
    /// The formats `yard models export` makes, with their file extension.
    public static let formats = ["onnx": "onnx"]

    public var format: String
    public var sha256: String
    public var size: Int64
    /// The image size it was exported at (dynamic axes: any size is accepted).
    public var imgsz: Int?
    public var exportMilliseconds: Double?
    public var createdAt: Date

    public init(format: String, sha256: String, size: Int64, imgsz: Int?, exportMilliseconds: Double?, createdAt: Date) {
        self.format = format
        self.sha256 = sha256
        self.size = size
        self.imgsz = imgsz
        self.exportMilliseconds = exportMilliseconds
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case format, sha256, size, imgsz, exportMilliseconds = "export_ms", createdAt = "created_at"
    }

    /// The file extension of an export's format (or of the weights, `pt`).
    public static func fileExtension(_ format: String) -> String { format == "pt" ? "pt" : formats[format] ?? format }

    public static func validate(format: String) throws(YardError) {
        guard formats[format] != nil else {
            throw YardError.invalid("format", "\"\(format.prefix(40))\" is not a format models are exported to; use \(formats.keys.sorted().joined(separator: ", "))")
        }
    }
}

/// A version loaded beside the one serving and asked to predict on a
/// sample image before an alias moves to it.
public struct HealthCheck: Sendable, Codable, Hashable {
    public var ok: Bool
    /// Why it failed (nil when it passed).
    public var reason: String?
    public var latencyMilliseconds: Double?
    public var loadMilliseconds: Double?
    public var time: Date

    public init(ok: Bool, reason: String?, latencyMilliseconds: Double?, loadMilliseconds: Double?, time: Date) {
        self.ok = ok
        self.reason = reason
        self.latencyMilliseconds = latencyMilliseconds
        self.loadMilliseconds = loadMilliseconds
        self.time = time
    }

    enum CodingKeys: String, CodingKey {
        case ok, reason, time, latencyMilliseconds = "latency_ms", loadMilliseconds = "load_ms"
    }
}

/// One place a version's weights can be read from.
public struct WeightsLocation: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable {
        /// The server's own artifact folder (`DATA/artifacts/KEY`).
        case artifact
        /// An S3/MinIO object; credentials come from the job's `minio:`
        /// section or the server's `MINIO_*` environment.
        case s3
        /// The job's MLflow run, through the tracking server's artifact proxy.
        case mlflow
    }

    public var kind: Kind
    /// The artifact key, the object key, or the path within the run's artifacts.
    public var key: String
    public var bucket: String?
    public var endpoint: String?
    public var runID: String?

    public init(kind: Kind, key: String, bucket: String? = nil, endpoint: String? = nil, runID: String? = nil) {
        self.kind = kind
        self.key = key
        self.bucket = bucket
        self.endpoint = endpoint
        self.runID = runID
    }

    enum CodingKeys: String, CodingKey { case kind, key, bucket, endpoint, runID = "run_id" }
}

/// An alias moved (or set, or removed): the registry keeps every move so a
/// rollback knows where to go back to and a user sees who served when.
public struct AliasChange: Sendable, Codable, Hashable {
    public var name: String
    public var alias: String
    /// The version it points at now (nil: removed).
    public var version: String?
    public var previous: String?
    public var time: Date
    /// register, alias, rollback, deploy, health check failed, ...
    public var reason: String
    /// The user who moved it (nil: the server itself, or before users).
    public var by: String?

    public init(name: String, alias: String, version: String?, previous: String?, time: Date, reason: String) {
        self.name = name
        self.alias = alias
        self.version = version
        self.previous = previous
        self.time = time
        self.reason = reason
    }
}
