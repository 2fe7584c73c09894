import Foundation
import Synchronization
import YardDomain

/// What `/metrics` reports about serving, in Prometheus' text format:
/// requests and errors by model, version and status code, the latency and
/// images-per-request histograms; queue depth and load times are read from
/// the model server at scrape time. Labels only ever carry names the
/// registry knows (an unknown model is counted as `_unknown`), so a client
/// cannot grow the series without bound.
public final class ServingMetrics: Sendable {
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64]

    struct Histogram {
        var buckets: [Int]
        var sum = 0.0
        var count = 0

        init(_ bounds: [Double]) { buckets = Array(repeating: 0, count: bounds.count) }

        mutating func observe(_ value: Double, _ bounds: [Double]) {
            for (index, bound) in bounds.enumerated() where value <= bound { buckets[index] += 1 }
            sum += value
            count += 1
        }
    }

    struct Key: Hashable, Comparable {
        var model: String
        var version: String
        var code: Int
        static func < (a: Key, b: Key) -> Bool { (a.model, a.version, a.code) < (b.model, b.version, b.code) }
    }

    private struct State {
        var requests: [Key: Int] = [:]
        var latency: [String: Histogram] = [:]
        var batch: [String: Histogram] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// One answered (or refused) predict request.
    public func record(model: String, version: String, code: Int, seconds: Double, images: Int) {
        state.withLock { state in
            state.requests[Key(model: model, version: version, code: code), default: 0] += 1
            state.latency[model, default: Histogram(Self.latencyBuckets)].observe(seconds, Self.latencyBuckets)
            if code == 200 { state.batch[model, default: Histogram(Self.batchBuckets)].observe(Double(images), Self.batchBuckets) }
        }
    }

    /// The serving metrics as text, with the loaded versions' gauges and
    /// the job counts by state.
    public func render(loaded: [[String: JSONValue]], jobs: [String: Int]) -> String {
        let snapshot = state.withLock { $0 }
        var out = ""
        out += "# HELP yard_predict_requests_total Predict requests by model, version and HTTP status.\n# TYPE yard_predict_requests_total counter\n"
        for (key, count) in snapshot.requests.sorted(by: { $0.key < $1.key }) {
            out += "yard_predict_requests_total{model=\"\(Self.escape(key.model))\",version=\"\(Self.escape(key.version))\",code=\"\(key.code)\"} \(count)\n"
        }
        out += "# HELP yard_predict_errors_total Predict requests answered with a 4xx or 5xx.\n# TYPE yard_predict_errors_total counter\n"
        // The requests' counts summed over versions.
        var errors: [Key: Int] = [:]
        for (key, count) in snapshot.requests where key.code >= 400 { errors[Key(model: key.model, version: "", code: key.code), default: 0] += count }
        for (key, count) in errors.sorted(by: { $0.key < $1.key }) {
            out += "yard_predict_errors_total{model=\"\(Self.escape(key.model))\",code=\"\(key.code)\"} \(count)\n"
        }
        out += Self.histogram("yard_predict_duration_seconds", "Predict request latency, receipt to answer.", snapshot.latency, Self.latencyBuckets)
        out += Self.histogram("yard_predict_batch_images", "Images per answered predict request.", snapshot.batch, Self.batchBuckets)
        out += "# HELP yard_predictor_queue_depth Requests waiting for or running on a version's predictors.\n# TYPE yard_predictor_queue_depth gauge\n"
        for entry in loaded { out += "yard_predictor_queue_depth{sha256=\"\(Self.text(entry["sha256"], ""))\"} \(Self.text(entry["in_flight"], "0"))\n" }
        out += "# HELP yard_model_load_seconds How long a loaded version took to load.\n# TYPE yard_model_load_seconds gauge\n"
        for entry in loaded {
            let ms = Double(Self.text(entry["load_ms"], "")) ?? 0
            out += "yard_model_load_seconds{sha256=\"\(Self.text(entry["sha256"], ""))\"} \(ms / 1000)\n"
        }
        out += "# HELP yard_predictor_memory_bytes Resident memory of a version's predictor processes.\n# TYPE yard_predictor_memory_bytes gauge\n"
        for entry in loaded { out += "yard_predictor_memory_bytes{sha256=\"\(Self.text(entry["sha256"], ""))\"} \(Self.text(entry["memory_bytes"], "0"))\n" }
        out += "# HELP yard_predictor_restarts_total Predictor processes replaced after dying or hanging.\n# TYPE yard_predictor_restarts_total counter\n"
        for entry in loaded { out += "yard_predictor_restarts_total{sha256=\"\(Self.text(entry["sha256"], ""))\"} \(Self.text(entry["restarts"], "0"))\n" }
        out += "# HELP yard_predictor_batch_images Images per predictor call (above 1 for one image per request: dynamic batching).\n# TYPE yard_predictor_batch_images histogram\n"
        for entry in loaded {
            let label = "sha256=\"\(Self.text(entry["sha256"], ""))\""
            let sizes = (entry["batch_sizes"]?.objectValue ?? [:]).compactMap { key, value in Int(key).flatMap { k in value.intValue.map { (k, $0) } } }
            for bound in Self.batchBuckets {
                out += "yard_predictor_batch_images_bucket{\(label),le=\"\(Self.format(bound))\"} \(sizes.filter { Double($0.0) <= bound }.reduce(0) { $0 + $1.1 })\n"
            }
            let count = sizes.reduce(0) { $0 + $1.1 }, sum = sizes.reduce(0) { $0 + $1.0 * $1.1 }
            out += "yard_predictor_batch_images_bucket{\(label),le=\"+Inf\"} \(count)\nyard_predictor_batch_images_sum{\(label)} \(sum)\nyard_predictor_batch_images_count{\(label)} \(count)\n"
        }
        out += "# HELP yard_jobs Jobs by state.\n# TYPE yard_jobs gauge\n"
        for (state, count) in jobs.sorted(by: { $0.key < $1.key }) { out += "yard_jobs{state=\"\(state)\"} \(count)\n" }
        return out
    }

    static func histogram(_ name: String, _ help: String, _ series: [String: Histogram], _ bounds: [Double]) -> String {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (model, histogram) in series.sorted(by: { $0.key < $1.key }) {
            let label = "model=\"\(escape(model))\""
            for (index, bound) in bounds.enumerated() {
                out += "\(name)_bucket{\(label),le=\"\(format(bound))\"} \(histogram.buckets[index])\n"
            }
            out += "\(name)_bucket{\(label),le=\"+Inf\"} \(histogram.count)\n\(name)_sum{\(label)} \(histogram.sum)\n\(name)_count{\(label)} \(histogram.count)\n"
        }
        return out
    }

    static func format(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }

    /// Label values: backslash, quote and newline escaped.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

extension ServingMetrics {
    /// A JSON value's text in a sample: numbers as numbers, strings escaped.
    static func text(_ value: JSONValue?, _ fallback: String) -> String {
        switch value {
        case .int(let i)?: String(i)
        case .double(let d)?: String(d)
        case .string(let s)?: escape(s)
        default: fallback
        }
    }
}
