import Foundation
import YardDomain

/// `GET /api/jobs/{id}`: the job with its epochs and artifacts.
struct JobDetail: Codable {
    var job: Job
    var epochs: [EpochRecord]
    var artifacts: [ArtifactRecord]
    /// Why the queue holds a queued job back, when it does.
    var waiting: String?

    var state: JobState { job.state }

    init(from decoder: any Decoder) throws {
        job = try Job(from: decoder)
        let c = try decoder.container(keyedBy: Keys.self)
        epochs = try c.decodeIfPresent([EpochRecord].self, forKey: .epochs) ?? []
        artifacts = try c.decodeIfPresent([ArtifactRecord].self, forKey: .artifacts) ?? []
        waiting = try c.decodeIfPresent(String.self, forKey: .waiting)
    }

    func encode(to encoder: any Encoder) throws {
        try job.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(artifacts, forKey: .artifacts)
        try c.encodeIfPresent(waiting, forKey: .waiting)
    }

    enum Keys: String, CodingKey { case epochs = "epoch_metrics", artifacts, waiting }
}

enum Summary {
    static func print(_ detail: JobDetail) {
        let job = detail.job
        Output.line("job \(job.id): \(job.state.rawValue)\(job.message.map { " (\($0))" } ?? "")")
        if let waiting = detail.waiting { Output.line("  \(Output.printable(waiting))") }
        Output.line("  model \(job.model) [\(job.type.rawValue)], experiment \(job.experiment), priority \(job.priority ?? JobPriority.default), epochs \(job.epoch ?? 0)/\(job.epochs ?? 0), attempts \(job.attempts)\(job.device.map { ", device \($0)" } ?? "")")
        if let start = job.startedAt {
            let end = job.finishedAt ?? Date()
            Output.line("  time \(Output.duration(end.timeIntervalSince(start)))")
        }
        let metrics = job.finalMetrics ?? detail.epochs.last?.metrics ?? [:]
        let headline = ProgressView.headline(metrics)
        if !headline.isEmpty { Output.line("  metrics \(ProgressView.summary(headline, limit: 8))") }
        if let learned = learned(detail) { Output.line("  learned \(learned)") }
        if let owner = job.owner { Output.line("  submitted by \(Output.printable(owner))") }
        if let fitness = job.fitness { Output.line("  fitness \(Output.number(fitness))") }
        if let best = job.bestWeights { Output.line("  best weights \(best)") }
        if let last = job.lastWeights { Output.line("  last weights \(last)") }
        if let dir = job.saveDir { Output.line("  run folder \(dir) (results.csv, plots)") }
        if job.state == .succeeded, let best = job.bestWeights { Output.line("  predict with: yard predict \(best) IMAGE_OR_FOLDER") }
        if let tracking = job.tracking {
            let run = job.mlflowRunID.map { " run \($0)" } ?? ""
            let why = job.trackingError.map { " (\($0.prefix(160)))" } ?? ""
            Output.line("  mlflow \(tracking)\(run)\(tracking == "pending" ? why : "")")
        }
        if let commit = job.gitCommit { Output.line("  git commit \(commit)") }
        if let dataset = job.dataset { Output.line("  dataset \(dataset)") }
        else if let hash = job.datasetHash { Output.line("  dataset \(hash) (DVC hash of its folder)") }
    }

    /// The headline metric from the first epoch to the end: "mAP50 0.000 → 0.977 over 30 epochs".
    static func learned(_ detail: JobDetail) -> String? {
        let epochs = detail.epochs.sorted { $0.epoch < $1.epoch }
        guard let first = epochs.first, epochs.count > 1 else { return nil }
        for key in ["metrics/mAP50(B)", "metrics/mAP50(M)", "metrics/mAP50(P)", "metrics/accuracy_top1"] {
            guard let start = first.metrics[key], let end = detail.job.finalMetrics?[key] ?? epochs.last?.metrics[key] else { continue }
            let name = key.dropFirst("metrics/".count).replacingOccurrences(of: "(B)", with: "")
            return "\(name) \(String(format: "%.3f", start)) → \(String(format: "%.3f", end)) over \(epochs.count) epochs"
        }
        return nil
    }
}
