/// A training that ran out of GPU memory (torch's `OutOfMemoryError`,
/// "CUDA out of memory") is tried once more with half the batch, unless
/// the config says `oom_retry: false` (issue 32).
public enum OutOfMemory {
    /// Ultralytics' batch when `train.batch` is not given.
    public static let defaultBatch = 16

    /// Whether the engine's failure (`TYPE: message`) is torch running out of GPU memory.
    public static func matches(_ failure: String) -> Bool {
        failure.hasPrefix("OutOfMemoryError:") || failure.contains("CUDA out of memory") || failure.contains("torch.OutOfMemoryError")
            || failure.contains("torch.cuda.OutOfMemoryError")
    }

    /// The first attempt's batch: the worker's override, else the config's,
    /// else Ultralytics' default; nil when it is automatic (-1, or a
    /// fraction of GPU memory), which has no half to retry with.
    public static func batch(_ configured: JSONValue?, override: JSONValue? = nil) -> Int? {
        guard let value = override ?? configured else { return defaultBatch }
        guard let batch = value.intValue, batch >= 1 else { return nil }
        return batch
    }

    /// The batch to retry with after the batches `tried` ran out of memory; nil: no retry.
    public static func retryBatch(tried: [Int], allowed: Bool) -> Int? {
        guard allowed, tried.count == 1, tried[0] >= 2 else { return nil }
        return tried[0] / 2
    }

    /// Why the job failed, in one line, naming the batch sizes tried.
    public static func finalMessage(tried: [Int], allowed: Bool, error: String) -> String {
        let detail = String(error.prefix(300))
        let advice = "lower train.batch or train.imgsz, or use a GPU with more memory"
        switch tried.count {
        case 0:
            return "out of GPU memory with an automatic batch (train.batch -1 or a fraction), not retried; set train.batch to a number to have it retried with half, or \(advice): \(detail)"
        case 1 where !allowed:
            return "out of GPU memory at batch \(tried[0]), not retried (oom_retry: false); \(advice): \(detail)"
        case 1:
            return "out of GPU memory at batch \(tried[0]), nothing smaller to retry with; \(advice): \(detail)"
        default:
            let sizes = tried.map(String.init)
            return "out of GPU memory at batch \(sizes.dropLast().joined(separator: ", ")) and again at batch \(sizes.last!) after the retry with half; \(advice): \(detail)"
        }
    }
}
