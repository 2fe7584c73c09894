import Foundation
import Yams

/// Turns config text (YAML or JSON, which is YAML too) into a validated
/// `JobConfig`, or throws one `YardError` that names the field and the fix.
public struct JobConfigParser: Sendable {
    /// Whether a local path exists. Injected so the domain does no I/O.
    public var fileExists: @Sendable (String) -> Bool
    /// Relative paths in the config are resolved against this folder (the
    /// config file's folder for the CLI). Without one (the API: the server
    /// cannot know the submitter's folder) local paths must be absolute.
    public var baseDirectory: String?
    /// Whether `notify.url` may be a literal loopback, link-local or private
    /// address (the server sets it from `--allow-private-webhooks`; names are
    /// checked when resolved, at each delivery).
    public var allowPrivateWebhooks = true

    public init(baseDirectory: String? = nil, fileExists: @escaping @Sendable (String) -> Bool) {
        self.baseDirectory = baseDirectory
        self.fileExists = fileExists
    }

    public func parse(_ text: String, source: String = "config") throws(YardError) -> JobConfig {
        let document = try Self.decodeDocument(text, source: source)
        return try validate(document)
    }

    /// YAML/JSON text to a top-level mapping.
    public static func decodeDocument(_ text: String, source: String = "config") throws(YardError) -> [String: JSONValue] {
        try YAMLLimits.check(text, source: source)
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw YardError(.invalidInput, field: source, "\(source): not valid YAML (\(Self.describe(error)))")
        } catch {
            throw YardError(.invalidInput, field: source, "\(source): not valid YAML")
        }
        guard let node else {
            throw YardError(.invalidInput, field: source, "\(source): the config is empty; it needs at least `model:` and `train: {data: ...}`")
        }
        guard case .object(let document) = try JSONValue(yaml: node, path: "") else {
            throw YardError(.invalidInput, field: source, "\(source): the config must be a mapping of keys (model, train, ...)")
        }
        return document
    }

    public func validate(_ input: [String: JSONValue]) throws(YardError) -> JobConfig {
        var document = input
        for key in document.keys.sorted() where !JobConfig.topLevelKeys.contains(key) {
            throw YardError.invalid(key, "unknown top-level key; allowed keys are \(JobConfig.topLevelKeys.joined(separator: ", "))")
        }

        // model
        guard let model = document["model"] else {
            throw YardError.invalid("model", "missing; name a model such as yolov8n.yaml, a .pt file, or a path")
        }
        guard let modelName = model.stringValue, !modelName.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw YardError.invalid("model", "must be a non-empty string, got \(model.kindName)")
        }
        if ModelReference.isReference(modelName) {
            _ = try ModelReference.parse(modelName)
        } else {
            // A bare name (yolov8n.yaml) is Ultralytics' to resolve; a path is ours.
            if let resolved = try resolveIfLocal(modelName, field: "model") {
                document["model"] = .string(resolved)
            } else if modelName.contains("/") {
                throw YardError.invalid("model", "\(modelName) does not exist; give the path of a .pt or model .yaml file, or a model name such as yolov8n.yaml")
            }
        }

        // type
        if let type = document["type"] {
            guard let raw = type.stringValue, JobConfig.ModelType(rawValue: raw) != nil else {
                throw YardError.invalid("type", "must be one of \(JobConfig.ModelType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        // task_id and experiment
        if let id = document["task_id"] {
            guard let raw = id.stringValue ?? id.intValue.map(String.init) else {
                throw YardError.invalid("task_id", "must be a string, got \(id.kindName)")
            }
            try JobID.validate(raw)
            document["task_id"] = .string(raw)
        }
        if let experiment = document["experiment"] {
            guard let raw = experiment.stringValue, !raw.isEmpty, raw.count <= 256 else {
                throw YardError.invalid("experiment", "must be a non-empty string of at most 256 characters")
            }
        }

        if let deploy = document["deploy"] { _ = try DeploySpec.parse(deploy) }
        if let notify = document["notify"] { _ = try NotifySpec.parse(notify, allowPrivate: allowPrivateWebhooks) }
        if let evaluate = document["evaluate_test"], evaluate.boolValue == nil {
            throw YardError.invalid("evaluate_test", "must be true or false (whether to evaluate the best weights on the dataset's test split), got \(Self.show(evaluate))")
        }
        if let attempts = document["max_attempts"] {
            guard let n = attempts.intValue, (1...100).contains(n) else {
                throw YardError.invalid("max_attempts", "must be an integer from 1 to 100 (how many crashed attempts before the job fails), got \(Self.show(attempts))")
            }
            document["max_attempts"] = .int(n)
        }

        if let retry = document["oom_retry"], retry.boolValue == nil {
            throw YardError.invalid("oom_retry", "must be true or false (whether a CUDA out-of-memory failure is retried once with half the batch), got \(Self.show(retry))")
        }
        if let priority = document["priority"] {
            guard let n = priority.intValue, JobPriority.range.contains(n) else {
                throw YardError.invalid("priority", "must be an integer from 0 (lowest) to 9 (highest), default 5, got \(Self.show(priority))")
            }
            document["priority"] = .int(n)
        }
        if let resources = document["resources"] {
            if resources == .null { document["resources"] = nil } else { _ = try JobResources.parse(resources) }
        }

        // sections that must be mappings
        for key in ["train", "val", "mlflow", "minio", "redis", "sweeper", "extras", "metadata"] {
            if let value = document[key], value.objectValue == nil, value != .null {
                throw YardError.invalid(key, "must be a mapping, got \(value.kindName)")
            }
            if document[key] == .null { document[key] = nil }
        }

        // train
        guard var train = document["train"]?.objectValue else {
            throw YardError.invalid("train", "missing; add `train: {data: path/to/data.yaml, epochs: 10}`")
        }
        for (section, args) in [("train", train), ("val", document["val"]?.objectValue ?? [:])] {
            for key in args.keys.sorted() {
                if let why = JobConfig.reservedTrainKeys[key] {
                    throw YardError.invalid("\(section).\(key)", why.replacingOccurrences(of: "train.", with: "\(section)."))
                }
            }
        }
        guard let data = train["data"] else {
            throw YardError.invalid("train.data", "missing; point it at a dataset YAML (detection) or folder (classification)")
        }
        guard let dataPath = data.stringValue, !dataPath.isEmpty else {
            throw YardError.invalid("train.data", "must be a path string, got \(data.kindName)")
        }
        if DatasetReference.isReference(dataPath) {
            _ = try DatasetReference.parse(dataPath)
        } else if !dataPath.hasPrefix("s3://") {
            guard let resolved = try resolveIfLocal(dataPath, field: "train.data") else {
                throw YardError.invalid("train.data", "\(dataPath) does not exist; give the path of a dataset YAML or folder (`yard datasets demo DIR` makes one)")
            }
            train["data"] = .string(resolved)
        }
        if let epochs = train["epochs"] {
            guard let n = epochs.intValue, n > 0 else {
                throw YardError.invalid("train.epochs", "must be a positive integer, got \(Self.show(epochs))")
            }
            train["epochs"] = .int(n)
        }
        if let imgsz = train["imgsz"] {
            let ok = imgsz.intValue.map { $0 > 0 }
                ?? imgsz.arrayValue.map { (1...2).contains($0.count) && $0.allSatisfy { ($0.intValue ?? 0) > 0 } } ?? false
            guard ok else { throw YardError.invalid("train.imgsz", "must be a positive integer (or [h, w]), got \(Self.show(imgsz))") }
        }
        if let batch = train["batch"] {
            guard let b = batch.doubleValue, b == -1 || b > 0 else {
                throw YardError.invalid("train.batch", "must be a positive integer, a fraction of GPU memory in (0, 1), or -1 for auto, got \(Self.show(batch))")
            }
        }
        if let seed = train["seed"] {
            guard let n = seed.intValue, (0...JobConfig.maxSeed).contains(n) else {
                throw YardError.invalid("train.seed", "must be an integer from 0 to \(JobConfig.maxSeed), got \(Self.show(seed)) (leave it out and Trainyard chooses and records one)")
            }
            train["seed"] = .int(n)
        }
        if let deterministic = train["deterministic"], deterministic.boolValue == nil {
            throw YardError.invalid("train.deterministic", "must be true or false, got \(Self.show(deterministic))")
        }
        document["train"] = .object(train)

        if let mlflow = document["mlflow"]?.objectValue {
            for key in ["MLFLOW_TRACKING_URI", "register_model", "register_alias"] {
                if let value = mlflow[key], value.stringValue == nil {
                    throw YardError.invalid("mlflow.\(key)", "must be a string, got \(value.kindName)")
                }
            }
            if let uri = mlflow["MLFLOW_TRACKING_URI"]?.stringValue, !(uri.hasPrefix("http://") || uri.hasPrefix("https://")) {
                throw YardError.invalid("mlflow.MLFLOW_TRACKING_URI", "must be an http(s) URL of an MLflow tracking server, got \"\(Redaction.redactURLCredentials(uri).prefix(80))\"")
            }
            for key in ["register_model", "register_alias"] {
                if let name = mlflow[key]?.stringValue { try ModelVersion.validateName(name, field: "mlflow.\(key)") }
            }
        }
        if let sweeper = document["sweeper"] {
            let spec = try SweepSpec.parse(sweeper)
            // Ultralytics picks its own learning rate and momentum with optimizer auto
            // (its default) and ignores lr0/momentum: a sweep over them would search nothing.
            let optimizer = (document["train"]?["optimizer"]?.stringValue ?? "auto").lowercased()
            if spec.isSweep, optimizer == "auto",
               let searched = spec.parameters.first(where: { $0.name == "train.lr0" || $0.name == "train.momentum" }) {
                throw YardError.invalid("train.optimizer", "the sweep searches \(searched.name.dropFirst(6)), which Ultralytics ignores with optimizer auto (its default); set train.optimizer to SGD, AdamW, Adam, ...")
            }
        }
        let size = (try? JSONEncoder().encode(JSONValue.object(document)).count) ?? 0
        guard size <= JobConfig.maxStoredSize else {
            throw YardError(.invalidInput, field: "config",
                            "config: \(size / 1024) KiB once parsed; the limit is \(JobConfig.maxStoredSize / 1024) KiB (keep large data in files the config points to)")
        }
        return JobConfig(validatedDocument: document)
    }

    /// An existing local path made absolute (`..` folded away), or nil when
    /// nothing is there. Without a base folder a relative path that names a
    /// folder (`data/x.yaml`, `../x`) or the home folder (`~/x`) is an error:
    /// the server would otherwise resolve it against its own working folder.
    private func resolveIfLocal(_ path: String, field: String) throws(YardError) -> String? {
        if path.hasPrefix("/") {
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            return fileExists(absolute) ? absolute : nil
        }
        guard let base = baseDirectory else {
            if path.contains("/") || path.hasPrefix("~") {
                throw YardError.invalid(field, "\(path) is a relative path; over the API local paths must be absolute (`yard submit` resolves them against the config's folder)")
            }
            return nil
        }
        let expanded = path.hasPrefix("~/") ? NSString(string: path).expandingTildeInPath : path
        let joined = expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded).standardizedFileURL.path
            : URL(fileURLWithPath: base).appendingPathComponent(expanded).standardizedFileURL.path
        return fileExists(joined) ? joined : nil
    }

    /// A value as an error message quotes it.
    static func show(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): "\"\(s.prefix(60))\""
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .bool(let b): String(b)
        default: value.kindName
        }
    }

    private static func describe(_ error: YamlError) -> String {
        let text = "\(error)".split(separator: "\n").first.map(String.init) ?? "syntax error"
        return text.count > 160 ? String(text.prefix(160)) + "…" : text
    }
}

extension JSONValue {
    /// A YAML 1.1 base-60 integer (`[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`) or
    /// float (the same with `.[0-9_]*`), as PyYAML reads it; nil for any
    /// other text; an error naming the field for an integer beyond Int.
    static func sexagesimal(_ text: String, path: String) throws(YardError) -> JSONValue? {
        guard text.contains(":") else { return nil }
        var body = Substring(text)
        var negative = false
        if let sign = body.first, sign == "-" || sign == "+" { negative = sign == "-"; body = body.dropFirst() }
        var fraction: Substring?
        if let dot = body.firstIndex(of: ".") {
            fraction = body[body.index(after: dot)...]
            body = body[..<dot]
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map { $0.filter { $0 != "_" } }
        guard parts.count >= 2, let head = parts.first, !head.isEmpty, head.allSatisfy(\.isASCII), head.allSatisfy(\.isNumber),
              parts.dropFirst().allSatisfy({ (1...2).contains($0.count) && $0.allSatisfy { $0.isASCII && $0.isNumber } && Int($0)! < 60 })
        else { return nil }
        if let fraction {
            guard fraction.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "_" }) else { return nil }
            var value = 0.0
            for part in parts { value = value * 60 + (Double(part) ?? 0) }
            value += Double("0." + fraction.filter { $0 != "_" }) ?? 0
            return .double(negative ? -value : value)
        }
        guard head.first != "0" else { return nil }  // 1.1 integers start 1-9; 0... is octal or text
        var value = 0
        for part in parts {
            let (shifted, over1) = value.multipliedReportingOverflow(by: 60)
            guard let digits = Int(part), !over1 else { throw YardError.invalid(path.isEmpty ? "config" : path, "\"\(text.prefix(40))\" is a base-60 number too large to be an integer") }
            let (sum, over2) = shifted.addingReportingOverflow(digits)
            guard !over2 else { throw YardError.invalid(path.isEmpty ? "config" : path, "\"\(text.prefix(40))\" is a base-60 number too large to be an integer") }
            value = sum
        }
        return .int(negative ? -value : value)
    }

    /// Converts a YAML node, keeping scalar types as YAML resolves them.
    init(yaml node: Node, path: String) throws(YardError) {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain {
                if node.null != nil { self = .null; return }
                if let b = node.bool { self = .bool(b); return }
                // YAML 1.1's base-60 numbers (`1:30` is 90) are read here, as
                // PyYAML reads them and with overflow checked: Yams' own reading
                // traps on a long one, and takes `0:30` and `1:60` as numbers.
                if scalar.string.contains(":") { self = try Self.sexagesimal(scalar.string, path: path) ?? .string(scalar.string); return }
                if let i = node.int { self = .int(i); return }
                if let d = node.float { self = .double(d); return }
            }
            self = .string(scalar.string)
        case .sequence(let seq):
            var items: [JSONValue] = []
            for (i, child) in seq.enumerated() { items.append(try JSONValue(yaml: child, path: "\(path)[\(i)]")) }
            self = .array(items)
        case .mapping(let map):
            var object: [String: JSONValue] = [:]
            for (key, value) in map {
                guard let name = key.string else {
                    throw YardError(.invalidInput, field: path, "\(path.isEmpty ? "config" : path): keys must be strings")
                }
                let childPath = path.isEmpty ? name : "\(path).\(name)"
                if object[name] != nil { throw YardError.invalid(childPath, "appears twice; keep one") }
                object[name] = try JSONValue(yaml: value, path: childPath)
            }
            self = .object(object)
        default:
            throw YardError(.invalidInput, field: path, "\(path.isEmpty ? "config" : path): YAML aliases are not supported; write the value out")
        }
    }
}
