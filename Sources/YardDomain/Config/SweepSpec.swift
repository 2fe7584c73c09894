import Foundation

/// The `sweeper:` block of a config, validated: the study a sweep runs.
/// Optuna does the work (samplers, pruners, storage); this is the part
/// Trainyard checks before anything is queued, so every bad spec is one
/// error that names its field.
///
/// ```yaml
/// sweeper:
///   study_name: yolo_optimization   # default: the experiment
///   n_trials: 20
///   tune: true                      # seed 001: run this config as a sweep
///   direction: maximize             # maximize | minimize
///   sampler: TPESampler             # TPESampler | RandomSampler | CmaEsSampler | GridSampler | QMCSampler
///   seed: 42
///   pruner: MedianPruner            # MedianPruner | SuccessiveHalvingPruner | HyperbandPruner | none
///   fitness: metrics/mAP50-95(B)    # any metric the engine reports, or `fitness`
///   grace_period: 5                 # epochs before a trial may be pruned (SHA/Hyperband: the first rung)
///   reduction_factor: 3             # SHA/Hyperband: a rung keeps the top 1/N of the trials that reached it
///   bootstrap_count: 0              # SHA: trials to reach a rung before any goes past it
///   max_concurrent: 2
///   retrain_best: false
///   search_space:
///     model: [choice, yolov8n.yaml, yolov8s.yaml]
///     train: {lr0: [loguniform, 1.0e-5, 1.0e-1], momentum: [uniform, 0.6, 0.98],
///             imgsz: [choice, 320, 640], warmup_epochs: [range, 0, 3, 0.5], batch: [int, 8, 32]}
/// ```
public struct SweepSpec: Sendable, Equatable {
    public enum Direction: String, Sendable, CaseIterable { case maximize, minimize }

    public enum Sampler: String, Sendable, CaseIterable {
        case tpe = "TPESampler", random = "RandomSampler", cmaES = "CmaEsSampler", grid = "GridSampler", qmc = "QMCSampler"
    }

    public enum Pruner: String, Sendable, CaseIterable {
        case median = "MedianPruner", successiveHalving = "SuccessiveHalvingPruner", hyperband = "HyperbandPruner", none
    }

    /// How one parameter is sampled (Optuna's suggest_categorical,
    /// suggest_float, suggest_float(log=True), suggest_float(step=),
    /// suggest_int).
    public enum Distribution: Sendable, Equatable {
        case choice([JSONValue])
        case uniform(Double, Double)
        case logUniform(Double, Double)
        case range(Double, Double, step: Double)
        case int(Int, Int)

        /// How many values a grid takes (nil: not finite), counted without
        /// listing them (`[int, 0, 1e12]` must not be materialised to be refused).
        public var gridSize: Int? {
            switch self {
            case .choice(let values): return values.count
            case .int(let low, let high):
                let (span, overflow) = high.subtractingReportingOverflow(low)
                return overflow ? Int.max : span + 1
            case .range(let low, let high, let step):
                // Counted in Double first: Int(Double) traps on an infinite or out-of-range
                // count (`[range, 0, 1e300, 1e-300]`, or `high - low` overflowing to inf).
                guard let steps = Self.steps(low, high, step) else { return Int.max }
                return steps + 1
            case .uniform, .logUniform: return nil
            }
        }

        /// Whole steps from `low` to `high` (nil: not a count an Int holds).
        static func steps(_ low: Double, _ high: Double, _ step: Double) -> Int? {
            let steps = ((high - low) / step + 1e-9).rounded(.down)
            guard steps.isFinite, steps >= 0, steps < 1e15 else { return nil }
            return Int(steps)
        }

        /// Every value a grid takes (nil: not finite, or more than the million
        /// points `parse` allows a grid, which are never listed).
        public var gridValues: [JSONValue]? {
            guard let size = gridSize, size <= 1_000_000 else { return nil }
            switch self {
            case .choice(let values): return values
            case .int(let low, let high): return (low...high).map { .int($0) }
            case .range(let low, let high, let step):
                return (0..<size).map { .double(low + Double($0) * step) }
            case .uniform, .logUniform: return nil
            }
        }

        /// As written in a config: `[loguniform, 1e-05, 0.1]`.
        public var syntax: String {
            func number(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value) }
            switch self {
            case .choice(let values):
                return "[choice, " + values.map { $0.stringValue ?? $0.doubleValue.map(number) ?? $0.boolValue.map(String.init) ?? "?" }.joined(separator: ", ") + "]"
            case .uniform(let low, let high): return "[uniform, \(number(low)), \(number(high))]"
            case .logUniform(let low, let high): return "[loguniform, \(number(low)), \(number(high))]"
            case .range(let low, let high, let step): return "[range, \(number(low)), \(number(high)), \(number(step))]"
            case .int(let low, let high): return "[int, \(low), \(high)]"
            }
        }
    }

    /// One searched key: `model` or `train.KEY`.
    public struct Parameter: Sendable, Equatable {
        public var name: String
        public var distribution: Distribution
        public init(name: String, distribution: Distribution) {
            self.name = name
            self.distribution = distribution
        }
    }

    public static let keys = ["study_name", "n_trials", "tune", "algorithm", "direction", "sampler", "seed", "pruner", "fitness",
                              "grace_period", "reduction_factor", "bootstrap_count", "max_concurrent", "retrain_best", "search_space", "storage"]

    public var studyName: String?
    public var trials: Int
    /// Whether the config runs as a sweep (`tune: true`, or a search space
    /// without `tune: false`); otherwise the block is kept but the config
    /// runs as one job (seed 001's `tune: false`).
    public var isSweep: Bool
    public var direction: Direction
    public var sampler: Sampler
    public var seed: Int?
    public var pruner: Pruner
    public var fitness: String
    public var gracePeriod: Int
    /// Optuna's `reduction_factor` of SuccessiveHalvingPruner and
    /// HyperbandPruner (nil: Optuna's default, 3).
    public var reductionFactor: Int? = nil
    /// Optuna's `bootstrap_count` of SuccessiveHalvingPruner (nil: its
    /// default, 0; Hyperband takes it only with a fixed max_resource).
    public var bootstrapCount: Int? = nil
    public var maxConcurrent: Int
    public var retrainBest: Bool
    /// Optuna storage: an RDB server URL (`postgresql://`, `mysql://`) or
    /// `redis://` (its journal storage); nil: a SQLite file of the server's.
    /// A URL with a password is a secret: sealed with the job secrets, masked in the API.
    public var storage: String?
    /// In the order the config lists them (model first).
    public var parameters: [Parameter]

    /// Validates a `sweeper:` block. Errors name the field, e.g.
    /// `sweeper.search_space.train.lr0: ...`.
    public static func parse(_ block: JSONValue) throws(YardError) -> SweepSpec {
        guard let object = block.objectValue else {
            throw YardError.invalid("sweeper", "must be a mapping (study_name, n_trials, search_space, ...), got \(block.kindName)")
        }
        for key in object.keys.sorted() where !keys.contains(key) {
            throw YardError.invalid("sweeper.\(key)", "unknown key; allowed keys are \(keys.joined(separator: ", "))")
        }
        func string(_ key: String) throws(YardError) -> String? {
            guard let value = object[key] else { return nil }
            guard let text = value.stringValue, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw YardError.invalid("sweeper.\(key)", "must be a non-empty string, got \(JobConfigParser.show(value))")
            }
            return text
        }
        func integer(_ key: String, minimum: Int) throws(YardError) -> Int? {
            guard let value = object[key] else { return nil }
            guard let number = value.intValue, number >= minimum else {
                throw YardError.invalid("sweeper.\(key)", "must be an integer of at least \(minimum), got \(JobConfigParser.show(value))")
            }
            return number
        }
        func flag(_ key: String) throws(YardError) -> Bool? {
            guard let value = object[key] else { return nil }
            guard let bool = value.boolValue else { throw YardError.invalid("sweeper.\(key)", "must be true or false, got \(JobConfigParser.show(value))") }
            return bool
        }
        func oneOf<T: RawRepresentable & CaseIterable>(_ key: String, _: T.Type) throws(YardError) -> T? where T.RawValue == String {
            guard let text = try string(key) else { return nil }
            guard let value = T(rawValue: text) else {
                throw YardError.invalid("sweeper.\(key)", "\"\(text)\" is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }

        if let algorithm = try string("algorithm"), algorithm.lowercased() != "optuna" {
            throw YardError.invalid("sweeper.algorithm", "\"\(algorithm)\" is not supported; Trainyard sweeps with optuna")
        }
        let parameters = try object["search_space"].map { space throws(YardError) in try parseSpace(space) } ?? []
        let tune = try flag("tune")
        var spec = SweepSpec(
            studyName: try string("study_name"), trials: try integer("n_trials", minimum: 1) ?? 10,
            isSweep: tune ?? !parameters.isEmpty, direction: try oneOf("direction", Direction.self) ?? .maximize,
            sampler: try oneOf("sampler", Sampler.self) ?? .tpe, seed: try integer("seed", minimum: 0),
            pruner: try oneOf("pruner", Pruner.self) ?? .median, fitness: try string("fitness") ?? "fitness",
            gracePeriod: try integer("grace_period", minimum: 0) ?? 1, maxConcurrent: try integer("max_concurrent", minimum: 1) ?? 1,
            retrainBest: try flag("retrain_best") ?? false, storage: try string("storage"), parameters: parameters)
        if let name = spec.studyName, !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) || name.count > 128 {
            throw YardError.invalid("sweeper.study_name", "\"\(name.prefix(40))\" must be 1-128 letters, digits, '_', '-' or '.'")
        }
        if let storage = spec.storage {
            // No sqlite:///PATH: a file path from a config would let a user write anywhere the
            // server can; the server's own SQLite storage is the default.
            let schemes = ["postgresql://", "postgresql+psycopg2://", "mysql://", "mysql+pymysql://", "redis://", "rediss://"]
            guard schemes.contains(where: { storage.hasPrefix($0) }) else {
                throw YardError.invalid("sweeper.storage", "must be an Optuna storage server URL (\(schemes.joined(separator: ", "))); leave it out for the server's own SQLite file")
            }
        }
        if spec.isSweep, spec.parameters.isEmpty {
            // Seed 001's `tune: true` alone: what `model.tune` would search.
            spec.parameters = defaultSpace
        }
        if spec.sampler == .grid {
            var points = 1
            for parameter in spec.parameters {
                guard let size = parameter.distribution.gridSize else {
                    throw YardError.invalid("sweeper.search_space.\(parameter.name)",
                                            "GridSampler needs finite values: use choice, int or range, not uniform or loguniform")
                }
                let (product, overflow) = points.multipliedReportingOverflow(by: size)
                guard !overflow, product <= 1_000_000 else {
                    throw YardError.invalid("sweeper.search_space.\(parameter.name)", "the grid has more than a million points; narrow it or use another sampler")
                }
                points = product
            }
        }
        spec.reductionFactor = try integer("reduction_factor", minimum: 2)
        spec.bootstrapCount = try integer("bootstrap_count", minimum: 0)
        if spec.reductionFactor != nil, spec.pruner != .successiveHalving, spec.pruner != .hyperband {
            throw YardError.invalid("sweeper.reduction_factor", "only SuccessiveHalvingPruner and HyperbandPruner take it, and the pruner is \(spec.pruner.rawValue)")
        }
        if spec.bootstrapCount != nil, spec.pruner != .successiveHalving {
            throw YardError.invalid("sweeper.bootstrap_count", "only SuccessiveHalvingPruner takes it, and the pruner is \(spec.pruner.rawValue)")
        }
        if let factor = spec.reductionFactor, factor > 100 {
            throw YardError.invalid("sweeper.reduction_factor", "at most 100, got \(factor)")
        }
        if let count = spec.bootstrapCount, count >= spec.trials {
            throw YardError.invalid("sweeper.bootstrap_count", "must be below n_trials (\(spec.trials)): with \(count) every trial would be pruned at the first rung")
        }
        if spec.trials > 10_000 { throw YardError.invalid("sweeper.n_trials", "at most 10000 trials, got \(spec.trials)") }
        if spec.maxConcurrent > 256 { throw YardError.invalid("sweeper.max_concurrent", "at most 256 trials at once, got \(spec.maxConcurrent)") }
        return spec
    }

    /// The space Ultralytics' tuner searches by default (its ranges), for a
    /// `tune: true` without `search_space`: learning rate (log scale),
    /// optimizer, loss gains and augmentation.
    public static let defaultSpace: [Parameter] = ([
        ("lr0", .logUniform(1e-5, 1e-2)), ("lrf", .uniform(0.01, 1.0)), ("momentum", .uniform(0.7, 0.98)),
        ("weight_decay", .uniform(0.0, 0.001)), ("warmup_epochs", .uniform(0.0, 5.0)), ("warmup_momentum", .uniform(0.0, 0.95)),
        ("box", .uniform(1.0, 20.0)), ("cls", .uniform(0.1, 4.0)), ("dfl", .uniform(0.4, 12.0)),
        ("hsv_h", .uniform(0.0, 0.1)), ("hsv_s", .uniform(0.0, 0.9)), ("hsv_v", .uniform(0.0, 0.9)),
        ("degrees", .uniform(0.0, 45.0)), ("translate", .uniform(0.0, 0.9)), ("scale", .uniform(0.0, 0.95)),
        ("shear", .uniform(0.0, 10.0)), ("perspective", .uniform(0.0, 0.001)), ("flipud", .uniform(0.0, 1.0)),
        ("fliplr", .uniform(0.0, 1.0)), ("bgr", .uniform(0.0, 1.0)), ("mosaic", .uniform(0.0, 1.0)),
        ("mixup", .uniform(0.0, 1.0)), ("copy_paste", .uniform(0.0, 1.0)),
    ] as [(String, Distribution)]).map { Parameter(name: "train." + $0.0, distribution: $0.1) }

    /// `search_space: {model: [...], train: {key: [...]}}`.
    static func parseSpace(_ value: JSONValue) throws(YardError) -> [Parameter] {
        guard let space = value.objectValue else {
            throw YardError.invalid("sweeper.search_space", "must be a mapping with train: {key: [kind, ...]} and/or model: [choice, ...], got \(value.kindName)")
        }
        for key in space.keys.sorted() where key != "train" && key != "model" {
            throw YardError.invalid("sweeper.search_space.\(key)", "only train: keys and model can be searched")
        }
        var parameters: [Parameter] = []
        if let model = space["model"] {
            let distribution = try parseDistribution(model, field: "sweeper.search_space.model")
            guard case .choice(let values) = distribution, values.allSatisfy({ $0.stringValue != nil }) else {
                throw YardError.invalid("sweeper.search_space.model", "must be [choice, model, model, ...] with model names")
            }
            parameters.append(Parameter(name: "model", distribution: distribution))
        }
        if let train = space["train"] {
            guard let keys = train.objectValue else {
                throw YardError.invalid("sweeper.search_space.train", "must be a mapping of train keys to [kind, ...], got \(train.kindName)")
            }
            for key in keys.keys.sorted() {
                if key == "data" || key == "project" || key == "name" || key == "resume" {
                    throw YardError.invalid("sweeper.search_space.train.\(key)", "is set by Trainyard for each trial and cannot be searched")
                }
                parameters.append(Parameter(name: "train.\(key)", distribution: try parseDistribution(keys[key]!, field: "sweeper.search_space.train.\(key)")))
            }
        }
        return parameters
    }

    static let kinds = "[choice, a, b, ...], [uniform, lo, hi], [loguniform, lo, hi], [range, lo, hi, step] or [int, lo, hi]"

    static func parseDistribution(_ value: JSONValue, field: String) throws(YardError) -> Distribution {
        guard let items = value.arrayValue, let kind = items.first?.stringValue else {
            throw YardError.invalid(field, "must be \(kinds), got \(JobConfigParser.show(value))")
        }
        let arguments = Array(items.dropFirst())
        func numbers(_ count: Int) throws(YardError) -> [Double] {
            guard arguments.count == count else {
                throw YardError.invalid(field, "[\(kind), ...] takes \(count) numbers, got \(arguments.count)")
            }
            var result: [Double] = []
            for argument in arguments {
                guard let number = argument.doubleValue, number.isFinite else {
                    throw YardError.invalid(field, "[\(kind), ...] takes numbers, got \(JobConfigParser.show(argument))")
                }
                result.append(number)
            }
            guard result[0] < result[1] else { throw YardError.invalid(field, "the low end (\(JobConfigParser.show(arguments[0]))) must be below the high end (\(JobConfigParser.show(arguments[1])))") }
            return result
        }
        switch kind {
        case "choice":
            guard !arguments.isEmpty else { throw YardError.invalid(field, "[choice, ...] needs at least one value") }
            for argument in arguments {
                switch argument {
                case .double(let d) where !d.isFinite: throw YardError.invalid(field, "choices must be finite numbers, got \(d)")
                case .string, .int, .double, .bool: continue
                default: throw YardError.invalid(field, "choices must be strings, numbers or booleans, got \(argument.kindName)")
                }
            }
            // Compared as Optuna (Python) compares them: 1, 1.0 and true are one value, and a
            // stored config reads 1.0 back as 1, so `[choice, 1, 1.0]` would pass here and
            // fail every later read of the sweep.
            var seen: [String: JSONValue] = [:]
            for argument in arguments {
                if let first = seen.updateValue(argument, forKey: choiceIdentity(argument)) {
                    let same = JobConfigParser.show(first) == JobConfigParser.show(argument) ? "" : " (\(JobConfigParser.show(first)) and \(JobConfigParser.show(argument)) are one value to Optuna)"
                    throw YardError.invalid(field, "a choice is listed twice\(same)")
                }
            }
            return .choice(arguments)
        case "uniform":
            let bounds = try numbers(2)
            return .uniform(bounds[0], bounds[1])
        case "loguniform":
            let bounds = try numbers(2)
            guard bounds[0] > 0 else { throw YardError.invalid(field, "[loguniform, lo, hi] needs 0 < lo, got \(JobConfigParser.show(arguments[0]))") }
            return .logUniform(bounds[0], bounds[1])
        case "range":
            guard arguments.count == 3 else { throw YardError.invalid(field, "[range, lo, hi, step] takes 3 numbers, got \(arguments.count)") }
            guard let step = arguments[2].doubleValue, step > 0, step.isFinite else {
                throw YardError.invalid(field, "the step must be a number above 0, got \(JobConfigParser.show(arguments[2]))")
            }
            guard let low = arguments[0].doubleValue, let high = arguments[1].doubleValue, low.isFinite, high.isFinite else {
                throw YardError.invalid(field, "[range, lo, hi, step] takes numbers, got \(JobConfigParser.show(arguments[0])) and \(JobConfigParser.show(arguments[1]))")
            }
            guard low < high else { throw YardError.invalid(field, "the low end (\(JobConfigParser.show(arguments[0]))) must be below the high end (\(JobConfigParser.show(arguments[1])))") }
            let bounds = [low, high]
            guard step <= bounds[1] - bounds[0] else { throw YardError.invalid(field, "the step (\(JobConfigParser.show(arguments[2]))) is wider than the range") }
            guard let steps = Distribution.steps(bounds[0], bounds[1], step), steps <= 1_000_000 else { throw YardError.invalid(field, "more than a million steps; use uniform") }
            return .range(bounds[0], bounds[1], step: step)
        case "int":
            guard arguments.count == 2 else { throw YardError.invalid(field, "[int, lo, hi] takes 2 integers, got \(arguments.count)") }
            guard let low = arguments[0].intValue, let high = arguments[1].intValue else {
                throw YardError.invalid(field, "[int, lo, hi] takes integers, got \(JobConfigParser.show(arguments[0])) and \(JobConfigParser.show(arguments[1]))")
            }
            guard low < high else { throw YardError.invalid(field, "the low end (\(low)) must be below the high end (\(high))") }
            return .int(low, high)
        default:
            throw YardError.invalid(field, "\"\(kind)\" is not a kind; use \(kinds)")
        }
    }

    /// A choice as Python compares it: numbers by value (1 == 1.0), booleans as 0 and 1.
    static func choiceIdentity(_ value: JSONValue) -> String {
        switch value {
        case .int(let i): "n\(i)"
        case .double(let d): Int(exactly: d).map { "n\($0)" } ?? "n\(d)"
        case .bool(let b): b ? "n1" : "n0"
        case .string(let s): "s" + s
        default: "?" + JobConfigParser.show(value)
        }
    }

    /// A trial's config: the sampled values written into the document
    /// (`model`, `train.KEY`), the sweep itself off (a trial is one job).
    public static func trialDocument(_ document: [String: JSONValue], values: [String: JSONValue]) -> [String: JSONValue] {
        var result = document
        var train = result["train"]?.objectValue ?? [:]
        for (name, value) in values {
            if name == "model" {
                result["model"] = value
            } else if name.hasPrefix("train.") {
                train[String(name.dropFirst("train.".count))] = value
            }
        }
        result["train"] = .object(train)
        if var sweeper = result["sweeper"]?.objectValue {
            sweeper["tune"] = .bool(false)
            result["sweeper"] = .object(sweeper)
        }
        return result
    }
}
