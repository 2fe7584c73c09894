import Foundation
import Testing
import YardDomain
import YardJobs
import YardQueue
import YardStore
import YardTestSupport

/// Issue 27: a lost worker is an event of the log (webhooks and pages follow
/// it), written once per change, not once per look.
@Suite("Worker watch")
struct WorkerWatchTests {
    static func info(_ id: String, expires: Date, job: String? = nil) -> WorkerInfo {
        var info = WorkerInfo(id: id, host: "gpu-box", pid: 7, device: "cuda:0", startedAt: expires.addingTimeInterval(-60))
        info.heartbeatAt = expires.addingTimeInterval(-15)
        info.expiresAt = expires
        info.job = job
        info.status = job == nil ? .idle : .busy
        return info
    }

    @Test func joinedLostBackAndLeftAreEachOneEvent() async throws {
        let registry = MemoryWorkerRegistry()
        let store = MemoryJobStore()
        let watch = WorkerWatch(registry: registry, store: store, logger: TestYard.quiet)
        let alive = Date().addingTimeInterval(3600), gone = Date().addingTimeInterval(-1)
        try await registry.announce(Self.info("w0", expires: alive))
        var seen = try await watch.look(after: nil)
        #expect(try await store.events(after: 0, limit: 100, filter: EventFilter(entity: .worker)).isEmpty, "the first look is the baseline")

        try await registry.announce(Self.info("w1", expires: alive, job: "job-1"))
        seen = try await watch.look(after: seen)
        try await registry.announce(Self.info("w1", expires: gone, job: "job-1"))
        seen = try await watch.look(after: seen)
        seen = try await watch.look(after: seen)  // still lost: nothing new
        try await registry.announce(Self.info("w1", expires: alive))
        seen = try await watch.look(after: seen)
        try await registry.remove("w0")
        seen = try await watch.look(after: seen)

        let events = try await store.events(after: 0, limit: 100, filter: EventFilter(entity: .worker))
        #expect(events.map { "\($0.jobID) \($0.payload["state"]?.stringValue ?? "")" } == ["w1 joined", "w1 lost", "w1 back", "w0 left"])
        let lost = try #require(events.first { $0.payload["state"] == "lost" })
        #expect(lost.payload["job_id"] == "job-1" && lost.payload["host"] == "gpu-box")
        #expect(try await store.events(after: 0, limit: 100, filter: EventFilter(entity: .worker, state: "lost")).count == 1)
    }
}
