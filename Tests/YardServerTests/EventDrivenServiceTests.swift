import Foundation
import Synchronization
import Testing
import YardDomain
import YardServing
import YardStore
import YardTestSupport

/// Issue 27: services follow the event log instead of reading the store on a
/// timer. The store's calls are counted (a `FaultyJobStore` that injects no
/// fault): idle, a follower reads nothing; when the log says a job
/// succeeded, it acts at once.
@Suite("Services that follow the event log")
struct EventDrivenServiceTests {
    @Test func autoRegistrationReadsTheStoreWhenAJobSucceedsNotOnATimer() async throws {
        let reads = Mutex(0)
        let store = FaultyJobStore { call in
            if call.name == "jobs" { reads.withLock { $0 += 1 } }
            return nil
        }
        let t = try TestYard(store: store)
        defer { t.dir.remove() }
        let registration = AutoRegistration(registry: t.yard.models, logger: TestYard.quiet)
        let running = Task { try await registration.run() }
        defer { running.cancel() }
        try await eventually("the first scan") { reads.withLock { $0 } == 1 }
        // Idle for 3 s: the old service looked every 2 s.
        try await Task.sleep(for: .seconds(3))
        #expect(reads.withLock { $0 } == 1, "the store was read \(reads.withLock { $0 }) times while nothing happened")

        try await ModelsAPITests.succeededJob(t, "reg-1", weights: "w", extra: "mlflow: {register_model: followed}\n")
        let started = ContinuousClock.now
        try await store.appendEvent(jobID: "reg-1", type: "state", payload: ["state": "succeeded"])
        try await eventually("the registration") { try await store.modelVersions(name: "followed").count == 1 }
        #expect(ContinuousClock.now - started < .seconds(2), "registered \(ContinuousClock.now - started) after the job succeeded")
        // Other events wake nothing.
        let before = reads.withLock { $0 }
        for n in 0..<20 { try await store.appendEvent(jobID: "reg-1", type: "epoch", payload: ["epoch": .int(n)]) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(reads.withLock { $0 } == before)
    }
}
