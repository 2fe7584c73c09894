import Synchronization

/// Wakes one waiting loop: `signal()` from anywhere, `wait(timeout:)` in
/// the loop. A signal given while nobody waits is kept (one), so the next
/// wait returns at once; signals given together wake the loop once. For
/// services that act when the event log says something changed, with a
/// timeout only for their own retries, never to look for changes.
public final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns on a signal (one given before counts), after `timeout`, or when the task is cancelled.
    public func wait(timeout: Duration? = nil) async {
        let timer = timeout.map { timeout in Task { [weak self] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { self?.signal() }
        } }
        defer { timer?.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }
}
