import Foundation
import Hummingbird
import YardDomain
import YardStore

/// `GET /api/events/head`: the sequence number of the newest event, so a
/// page that has just read the state of things follows the log from there
/// (`/api/events?after=SEQ`) instead of replaying it from the start.
struct EventHeadController<Context: RequestContext> {
    let store: any JobStore

    func addRoutes(to router: some RouterMethods<Context>) {
        router.get("/api/events/head") { [store] _, _ in
            try JSONResponse.make(["seq": try await Self.head(store)])
        }
    }

    /// The newest sequence number (0 for an empty log), found by
    /// exponential then binary search over `events(after:limit: 1)`: about
    /// 2 log2(N) indexed one-row reads, and no new store requirement. The log
    /// only grows, so the number returned was the head during the call.
    static func head(_ store: any JobStore) async throws -> Int64 {
        func next(_ after: Int64) async throws -> Int64? {
            try await store.events(after: after, limit: 1, filter: EventFilter()).first?.id
        }
        guard var low = try await next(0) else { return 0 }  // an event at low
        var step: Int64 = 1
        var high: Int64
        while true {
            let probe = low.addingReportingOverflow(step)
            if probe.overflow { return low }
            guard let found = try await next(probe.partialValue) else { high = probe.partialValue; break }
            low = found
            if step < Int64.max / 2 { step *= 2 }
        }
        while low < high {  // an event at low, none after high
            let mid = low + (high - low) / 2
            if let found = try await next(mid) { low = found } else { high = mid }
        }
        return low
    }
}
