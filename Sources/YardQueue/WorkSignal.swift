/// Wakes workers waiting for work when a job is enqueued in this process.
/// Waiters also wake on their timeout, so work enqueued by another process
/// is still found.
actor WorkSignal {
    private var generation = 0

    func notify() { generation += 1 }

    func wait(timeout: Duration) async {
        let start = generation
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while generation == start, clock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
