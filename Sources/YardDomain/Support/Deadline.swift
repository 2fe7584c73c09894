/// What `withDeadline` throws when its limit passes first.
public struct DeadlineExceeded: Error, Sendable {
    public init() {}
}

/// `body`, or `DeadlineExceeded` once `limit` has passed (the body is
/// cancelled): a peer that accepts and never answers costs `limit`, not a hang.
public func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw DeadlineExceeded()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw DeadlineExceeded() }
        return first
    }
}
