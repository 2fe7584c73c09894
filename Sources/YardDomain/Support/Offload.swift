import Foundation

/// Runs blocking work (listing, hashing, copying files; a child process)
/// on a thread of its own, so it never holds one of the few threads Swift
/// concurrency shares. The one such helper every target uses.
public func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = "yard-offload"
        thread.start()
    }
}

/// `offload` for work that throws; its error is rethrown, typed as thrown.
public func offloadThrowing<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    try await offload { Result { () throws(E) in try body() } }.get()
}
