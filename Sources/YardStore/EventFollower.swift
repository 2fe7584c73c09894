import YardDomain

extension EventLog {
    /// Follows the log for a service that acts on what is committed (the
    /// metrics, the traces): hands `act` each event `filter` takes, once, in
    /// commit order, from the one after `start` (nil: the log's head when it
    /// starts) until the task is cancelled. Subscribed before the store is
    /// read, so nothing committed in between is missed; when this follower
    /// falls behind the feed, what it missed is read from the store from its
    /// cursor, in pages. A read that fails is handed to `missed` (the events
    /// it would have read are skipped, the follower goes on).
    public func follow(_ filter: EventFilter, after start: Int64? = nil, missed: (any Error) -> Void,
                       _ act: (JobEvent) async -> Void) async throws {
        let subscription = feed.subscribeAll()
        defer { subscription.cancel() }
        var cursor: Int64
        if let start { cursor = start } else { cursor = try await eventHead() }
        func catchUp() async {
            do {
                while true {
                    let page = try await events(after: cursor, limit: 500, filter: filter)
                    for event in page { await act(event) }
                    cursor = page.last?.id ?? cursor
                    if page.count < 500 { break }
                }
            } catch {
                missed(error)
            }
        }
        await catchUp()
        for await item in subscription {
            switch item {
            case .event(let event) where event.id > cursor:
                cursor = event.id
                if filter.matches(event) { await act(event) }
            case .lagged: await catchUp()
            case .event, .logs, .heartbeat: continue
            }
        }
    }
}
