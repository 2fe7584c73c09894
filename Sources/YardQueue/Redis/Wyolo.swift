import Foundation
import YardDomain
import YardStore

/// What wyolo's clients (seed 001) read in Redis, kept by Trainyard's
/// workers: the hash `progress:{task_id}` (their field names, values as
/// strings, 20 minutes to live), log lines on the stream `stream:{task_id}`
/// (field `value`, an hour to live) and, when a job ends, one entry on its
/// `redis.RESULT_TOPIC` stream (default `results_queue`).
public enum Wyolo {
    public static let defaultTopic = "training_queue"
    public static let defaultResultTopic = "results_queue"
    public static let progressTTL = 1200
    public static let logTTL = 3600
    /// Entries kept on a log or result stream (approximately: MAXLEN ~).
    public static let streamLength = 10_000

    public static func progressKey(_ taskID: String) -> String { "progress:\(taskID)" }
    public static func logKey(_ taskID: String) -> String { "stream:\(taskID)" }

    /// The job's `redis.RESULT_TOPIC`, else `results_queue`.
    public static func resultTopic(of job: Job) -> String {
        job.config["redis"]?["RESULT_TOPIC"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? defaultResultTopic
    }

    /// The progress hash's fields for an engine `progress` (within an epoch)
    /// or `epoch` (one ended) event; nil for other events. EPOCH is
    /// 1-based; EPOCH_PROGRESS and TRIAL_PROGRESS are fractions (0-1);
    /// `result_time` is the estimated total seconds of the trial.
    public static func progress(job: Job, kind: String, payload: JSONValue, gpus: [GPUStats], now: Date) -> [String: String]? {
        guard kind == "progress" || kind == "epoch", let epoch = payload["epoch"]?.intValue else { return nil }
        let epochs = max(1, payload["epochs"]?.intValue ?? job.epochs ?? 1)
        var epochProgress = 1.0
        if kind == "progress", let batch = payload["batch"]?.doubleValue, let batches = payload["batches"]?.doubleValue, batches > 0 {
            epochProgress = min(1, max(0, batch / batches))
        }
        let trialProgress = min(1, max(0, (Double(epoch - 1) + epochProgress) / Double(epochs)))
        var fields: [String: String] = [
            "task_id": job.id,
            "TRIAL_NUMBER": String(job.config["metadata"]?["trial_number"]?.intValue ?? 1),
            "TOTAL_TRIALS": String(job.config["sweeper"]?["n_trials"]?.intValue ?? 1),
            "TOTAL_EPOCHS": String(epochs),
            "EPOCH": String(epoch),
            "EPOCH_PROGRESS": number(epochProgress),
            "TRIAL_PROGRESS": number(trialProgress),
            "datetime": isoformat(now),
        ]
        if let elapsed = payload["elapsed"]?.doubleValue {
            fields["elapsed_time"] = String(format: "%.3f", elapsed)
            if trialProgress > 0 { fields["result_time"] = String(format: "%.3f", elapsed / trialProgress) }
        }
        for (position, gpu) in gpus.enumerated() {
            let prefix = "gpu_\(position)_"
            fields[prefix + "name"] = gpu.name
            if let uuid = gpu.uuid { fields[prefix + "uuid"] = uuid }
            if let total = gpu.memoryTotalMiB {
                fields[prefix + "memoryTotal"] = String(total)
                if let used = gpu.memoryUsedMiB { fields[prefix + "memoryFree"] = String(total - used) }
            }
            if let used = gpu.memoryUsedMiB { fields[prefix + "memoryUsed"] = String(used) }
            if let load = gpu.utilizationPercent { fields[prefix + "load"] = String(load) }
            if let temperature = gpu.temperatureC { fields[prefix + "temperature"] = String(temperature) }
        }
        return fields
    }

    /// The result entry of a job that ended: its state and why, its
    /// weights and final numbers.
    public static func result(job: Job, now: Date) -> [String: String] {
        var fields: [String: String] = ["task_id": job.id, "state": job.state.rawValue, "datetime": isoformat(now),
                                        "attempts": String(job.attempts)]
        if let message = job.message { fields["message"] = String(message.prefix(2000)) }
        if let best = job.bestWeights { fields["best"] = best }
        if let last = job.lastWeights { fields["last"] = last }
        if let fitness = job.fitness { fields["fitness"] = number(fitness) }
        if let metrics = job.finalMetrics, let text = try? JSONCoding.string(metrics) { fields["metrics"] = text }
        if let epoch = job.epoch { fields["epoch"] = String(epoch) }
        if let worker = job.worker { fields["worker"] = worker }
        return fields
    }

    /// Redis commands that keep the wyolo keys for one report of a job.
    static func commands(for report: JobReport, job: Job, gpus: [GPUStats], now: Date) -> [[String]] {
        switch report {
        case .event(let type, let payload):
            guard let fields = progress(job: job, kind: type, payload: payload, gpus: gpus, now: now) else { return [] }
            let key = progressKey(job.id)
            return [["HSET", key] + arguments(fields), ["EXPIRE", key, String(progressTTL)]]
        case .logs(let lines):
            let key = logKey(job.id)
            return lines.map { ["XADD", key, "MAXLEN", "~", String(streamLength), "*", "value", $0] } + [["EXPIRE", key, String(logTTL)]]
        case .move(let state, _, _, _) where state.isTerminal:
            let fields = result(job: job, now: now)
            return [["XADD", resultTopic(of: job), "MAXLEN", "~", String(streamLength), "*"] + arguments(fields)]
        default:
            return []
        }
    }

    /// Fields as Redis arguments: name, value, ... in name order.
    static func arguments(_ fields: [String: String]) -> [String] {
        fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
    }

    static func number(_ value: Double) -> String {
        let text = String(format: "%.4f", value)
        var trimmed = Substring(text)
        while trimmed.hasSuffix("0") { trimmed = trimmed.dropLast() }
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    /// Python's `datetime.now().isoformat()` shape (microseconds, no zone), in UTC.
    static func isoformat(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        let whole = floor(seconds)
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        let micros = Int(((seconds - whole) * 1_000_000).rounded(.down))
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }
}
