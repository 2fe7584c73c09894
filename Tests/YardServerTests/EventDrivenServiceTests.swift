import Foundation
import Synchronization
import Testing
import YardDomain
import YardJobs
import YardQueue
import YardServing
import YardStore
import YardSweeps
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
        try await store.appendEvent(jobID: "reg-1", type: "state", payload: ["state": "succeeded"])
        try await eventually("the registration") { try await store.modelVersions(name: "followed").count == 1 }
        // Other events wake nothing.
        let before = reads.withLock { $0 }
        for n in 0..<20 { try await store.appendEvent(jobID: "reg-1", type: "epoch", payload: ["epoch": .int(n)]) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(reads.withLock { $0 } == before)
    }
    /// The sweep service lists the sweeps once at start and then only when
    /// the log says a sweep or a job changed; it looked every second.
    @Test func theSweepServiceReadsTheStoreWhenTheLogSaysSoNotOnATimer() async throws {
        let reads = Mutex(0)
        let store = FaultyJobStore { call in
            if call.name == "sweeps" { reads.withLock { $0 += 1 } }
            return nil
        }
        let t = try TestYard(store: store)
        defer { t.dir.remove() }
        let running = Task { try await t.yard.sweeps.run() }
        defer { running.cancel() }
        try await eventually("the first pass") { reads.withLock { $0 } == 1 }
        try await Task.sleep(for: .seconds(3))
        #expect(reads.withLock { $0 } == 1, "the store was read \(reads.withLock { $0 }) times while nothing happened")
        // A log line or a job's progress is not a change the sweeps wait on.
        _ = try await store.appendLog(jobID: "j", lines: ["a line"])
        try await store.appendEvent(jobID: "j", type: "progress", payload: ["batch": 1])
        try await Task.sleep(for: .milliseconds(500))
        #expect(reads.withLock { $0 } == 1)
        // A job's state change (a trial may have ended) is.
        try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "succeeded"])
        try await eventually("a pass") { reads.withLock { $0 } == 2 }
    }

    /// A running job's stop check reads the job once, then waits for the
    /// log to say it is stopping (it read the store every 500 ms).
    @Test func aStopReachesARunningJobThroughTheLogNotATimer() async throws {
        let reads = Mutex(0)
        let store = FaultyJobStore { call in
            if call.name == "job" { reads.withLock { $0 += 1 } }
            return nil
        }
        let control = JobControl(store: store, queue: MemoryJobQueue())
        let job = try await control.submit(try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntrain: {data: /d.yaml, epochs: 3}\n"))
        try await control.move(job.id, to: .running, message: "started")
        let ledger = StoreLedger(control: control)
        let watcher = Task { await ledger.stopRequested(job.id, tick: .milliseconds(500), clock: ContinuousClock()) }
        try await eventually("the first look") { reads.withLock { $0 } == 1 }
        try await Task.sleep(for: .seconds(2))
        #expect(reads.withLock { $0 } == 1, "the job was read \(reads.withLock { $0 }) times while nobody asked for a stop")
        try await control.move(job.id, to: .stopping, message: "stop requested")
        let seen = await watcher.value
        #expect(seen?.state == .stopping)
        #expect(reads.withLock { $0 } == 2)
    }

    /// Cancelled (the attempt ended), the stop check returns at once.
    @Test func aCancelledStopCheckReturnsNil() async throws {
        let store = MemoryJobStore()
        let control = JobControl(store: store, queue: MemoryJobQueue())
        let job = try await control.submit(try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntrain: {data: /d.yaml, epochs: 3}\n"))
        let watcher = Task { await StoreLedger(control: control).stopRequested(job.id, tick: .milliseconds(500), clock: ContinuousClock()) }
        try await Task.sleep(for: .milliseconds(200))
        watcher.cancel()
        #expect(await watcher.value == nil)
    }
}
