import Logging

/// Runs `step` until the task is cancelled. After a failure it waits 200 ms,
/// doubling to 3.2 s while failures go on, and warns once per run of
/// failures (not per attempt). The services that poll Redis use it.
func repeatWithBackoff(_ what: String, logger: Logger, _ step: () async throws -> Void) async {
    var failures = 0
    while !Task.isCancelled {
        do {
            try await step()
            failures = 0
        } catch {
            failures += 1
            if failures == 1 { logger.warning("\(what): \(error); retrying with backoff") }
            try? await Task.sleep(for: .milliseconds(100 * (1 << min(failures, 5))))
        }
    }
}
