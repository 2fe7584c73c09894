/// A job config's `deploy:` section: when the job succeeds it is registered
/// as the next version of `model`, and `alias` moves to it only if it beats
/// the version that holds the alias on `metric` by more than
/// `min_improvement` (and, for an alias being served, passes its health check).
///
///     deploy: {model: detector, alias: production, metric: metrics/mAP50-95(B), min_improvement: 0.0}
public struct DeploySpec: Sendable, Equatable {
    public enum Direction: String, Sendable { case maximize, minimize }

    public var model: String
    public var alias = "production"
    public var metric = "metrics/mAP50-95(B)"
    public var minImprovement = 0.0
    public var direction = Direction.maximize

    static let keys = ["model", "alias", "metric", "min_improvement", "direction"]

    public static func parse(_ value: JSONValue) throws(YardError) -> DeploySpec {
        guard let section = value.objectValue else {
            throw YardError.invalid("deploy", "must be a mapping like {model: NAME, alias: production, metric: metrics/mAP50-95(B), min_improvement: 0.0}")
        }
        for key in section.keys.sorted() where !keys.contains(key) {
            throw YardError.invalid("deploy.\(key)", "unknown key; allowed keys are \(keys.joined(separator: ", "))")
        }
        guard let model = section["model"]?.stringValue else {
            throw YardError.invalid("deploy.model", "missing; name the registered model the job becomes a version of")
        }
        try ModelVersion.validateName(model, field: "deploy.model")
        var spec = DeploySpec(model: model)
        if let alias = section["alias"] {
            guard let text = alias.stringValue else { throw YardError.invalid("deploy.alias", "must be a string, got \(alias.kindName)") }
            try ModelVersion.validateName(text, field: "deploy.alias")
            spec.alias = text
        }
        if let metric = section["metric"] {
            guard let text = metric.stringValue, !text.isEmpty, text.count <= 250 else {
                throw YardError.invalid("deploy.metric", "must be a metric name such as metrics/mAP50-95(B)")
            }
            spec.metric = text
        }
        if let improvement = section["min_improvement"] {
            guard let number = improvement.doubleValue, number.isFinite, number >= 0 else {
                throw YardError.invalid("deploy.min_improvement", "must be a number of at least 0, got \(JobConfigParser.show(improvement))")
            }
            spec.minImprovement = number
        }
        if let direction = section["direction"] {
            guard let text = direction.stringValue, let parsed = Direction(rawValue: text) else {
                throw YardError.invalid("deploy.direction", "must be maximize or minimize, got \(JobConfigParser.show(direction))")
            }
            spec.direction = parsed
        }
        return spec
    }

    init(model: String) { self.model = model }

    /// Whether `candidate` beats `current` on the metric by more than the margin.
    public func beats(_ candidate: Double, _ current: Double) -> Bool {
        switch direction {
        case .maximize: candidate - current > minImprovement
        case .minimize: current - candidate > minImprovement
        }
    }
}
