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
            try JSONResponse.make(["seq": try await store.eventHead()])
        }
    }
}
