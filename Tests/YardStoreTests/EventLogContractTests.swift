import Foundation
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// The one event log, the same on every driver: a global sequence with no
/// gaps, strictly increasing in commit order, written with the change it
/// records; every entity's events; filters; retention that never breaks the
/// sequence and leaves a floor for readers behind it.
@Suite("Event log contract")
struct EventLogContractTests {
    typealias Driver = JobStoreContractTests.Driver

    /// A store whose clock the test sets.
    final class Clock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 1_000_000))
        func now() -> Date { time.withLock { $0 } }
        func advance(days: Double) { time.withLock { $0 += days * 86_400 } }
    }

    static func make(_ driver: Driver, clock: Clock = Clock()) throws -> any JobStore {
        switch driver {
        // A feed that holds every event of a test for a subscriber that reads at the end.
        case .memory: MemoryJobStore(feed: JobFeed(bufferLimit: 10_000), now: clock.now)
        case .sqlite: SQLiteJobStore(database: try YardDatabase(), feed: JobFeed(bufferLimit: 10_000), now: clock.now)
        }
    }

    static func all(_ store: any JobStore, after: Int64 = 0, _ filter: EventFilter = .all) async throws -> [JobEvent] {
        try await store.events(after: after, limit: 1_000_000, filter: filter)
    }

    /// Eight writers at once (job events, job state changes with their
    /// event, sweep events): the log is 1...N with no gap, and a subscriber
    /// to the whole log saw every event once, in the log's order.
    @Test(arguments: Driver.allCases)
    func eightConcurrentWritersMakeOneGapFreeOrderedLog(driver: Driver) async throws {
        let store = try Self.make(driver)
        for writer in 0..<8 { try await store.insert(JobStoreContractTests.job("w\(writer)"), secrets: [:]) }
        let subscription = store.feed.subscribeAll()
        let perWriter = 150
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for n in 0..<perWriter {
                        switch n % 3 {
                        case 0: try await store.appendEvent(jobID: "w\(writer)", type: "epoch", payload: ["epoch": .int(n)])
                        case 1: try await store.update("w\(writer)", recording: "state") { job in
                                job.epoch = n
                                return ["state": "running", "n": .int(n)]
                            }
                        default: try await store.appendEvent(.worker, id: "worker-\(writer)", type: "heartbeat", payload: ["n": .int(n)])
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let log = try await Self.all(store)
        #expect(log.count == 8 * perWriter)
        #expect(log.map(\.id) == Array(1...Int64(8 * perWriter)), "a gap or a reorder in the log")
        // Each writer's own events are in the order it wrote them.
        for writer in 0..<8 {
            let mine = log.filter { $0.jobID == "w\(writer)" || $0.jobID == "worker-\(writer)" }.compactMap { $0.payload["epoch"]?.intValue ?? $0.payload["n"]?.intValue }
            #expect(mine == Array(0..<perWriter))
        }
        var seen: [Int64] = []
        for await item in subscription {
            switch item {
            case .event(let event): seen.append(event.id)
            case .lagged: Issue.record("the subscriber lagged")
            case .logs, .heartbeat: continue
            }
            if seen.count >= log.count { break }
        }
        subscription.cancel()
        #expect(seen == log.map(\.id), "the feed delivered the log in another order")
    }

    /// Sweeps, model versions, aliases and dataset versions record their
    /// events with the change; a job's own events never include another
    /// entity's of the same id.
    @Test(arguments: Driver.allCases)
    func everyEntityWritesItsEventWithItsChange(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(JobStoreContractTests.job("x"), secrets: [:])
        try await store.insertSweep(Sweep(id: "x", study: "s", experiment: "e", config: [:], createdAt: Date()), secrets: [:])
        try await store.updateSweep("x") { $0.message = "no state change, no event" }
        try await store.updateSweep("x") { $0.state = .finished; $0.message = "done" }
        let (version, _) = try await store.createModelVersion(ModelVersion(name: "m", version: "", jobID: "x", runID: "", source: "s", createdAt: Date()))
        _ = try await store.createModelVersion(ModelVersion(name: "m", version: "", jobID: "x", runID: "", source: "s", createdAt: Date()))
        try await store.setModelAlias(name: "m", alias: "production", version: version.version, reason: "register", time: Date())
        let dataset = DatasetVersion(name: "d", number: 0, id: "abc.dir", createdAt: Date(), source: "/d", format: "yolo", task: "detect",
                                     files: 3, bytes: 10, classes: ["a"], splits: [:], errors: 0, warnings: 1, notes: [])
        _ = try await store.recordDatasetVersion(dataset)
        _ = try await store.recordDatasetVersion(dataset)
        let log = try await Self.all(store)
        #expect(log.map { "\($0.entity.rawValue):\($0.jobID):\($0.type)" } == [
            "sweep:x:state", "sweep:x:state", "model:m:version", "model:m:alias", "dataset:d:version",
        ])
        #expect(log[0].payload["state"] == "running" && log[1].payload["state"] == "finished" && log[1].payload["previous"] == "running")
        #expect(log[1].payload["message"] == "done")
        #expect(log[3].payload["alias"] == "production" && log[3].payload["version"] == "1" && log[3].payload["previous"] == .null)
        #expect(log[4].payload["number"] == 1)
        #expect(try await store.events(of: "x", after: 0, limit: 100).isEmpty, "a sweep's events are not the job's")
        // Filters.
        #expect(try await Self.all(store, EventFilter(entity: .model)).map(\.type) == ["version", "alias"])
        #expect(try await Self.all(store, EventFilter(id: "x")).count == 2)
        #expect(try await Self.all(store, EventFilter(types: ["alias", "version"])).count == 3)
        #expect(try await Self.all(store, EventFilter(state: "finished")).map(\.id) == [log[1].id])
        #expect(try await Self.all(store, after: log[2].id).map(\.id) == log.dropFirst(3).map(\.id))
    }

    /// `experiment` picks the events of one experiment's jobs and sweeps,
    /// each event carrying the experiment it was written under, from the
    /// store and from the feed alike; other entities' events have none.
    @Test(arguments: Driver.allCases)
    func theExperimentFilterPicksTheEventsOfOneExperimentsJobsAndSweeps(driver: Driver) async throws {
        let store = try Self.make(driver)
        let parser = JobConfigParser { _ in true }
        for (id, experiment) in [("a1", "alpha"), ("b1", "beta")] {
            let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\nexperiment: \(experiment)\ntrain: {data: /d.yaml, epochs: 3}")
            try await store.insert(Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date()), secrets: [:])
        }
        let subscription = store.feed.subscribeAll()
        try await store.insertSweep(Sweep(id: "s1", study: "st", experiment: "alpha", config: [:], createdAt: Date()), secrets: [:])
        try await store.appendEvent(jobID: "a1", type: "state", payload: ["state": "running"])
        _ = try await store.update("b1", recording: "state") { _ in ["state": "running"] }
        try await store.appendEvent(.model, id: "a1", type: "version", payload: [:])
        try await store.appendEvent(jobID: "a1", type: "epoch", payload: ["epoch": 1])
        try await store.updateSweep("s1") { $0.state = .finished }
        let log = try await Self.all(store)
        #expect(log.map { $0.experiment ?? "-" } == ["alpha", "alpha", "beta", "-", "alpha", "alpha"])
        let alpha = try await Self.all(store, EventFilter(experiment: "alpha"))
        #expect(alpha.map { "\($0.entity.rawValue):\($0.jobID):\($0.type)" } == ["sweep:s1:state", "job:a1:state", "job:a1:epoch", "sweep:s1:state"])
        #expect(try await Self.all(store, EventFilter(experiment: "beta")).map(\.jobID) == ["b1"])
        #expect(try await Self.all(store, after: alpha[1].id, EventFilter(experiment: "alpha")).count == 2)
        #expect(try await Self.all(store, EventFilter(experiment: "gamma")).isEmpty)
        var live: [JobEvent] = []
        for await item in subscription {
            if case .event(let event) = item { live.append(event) }
            if live.count == log.count { break }
        }
        subscription.cancel()
        #expect(live.filter(EventFilter(experiment: "alpha").matches).map(\.id) == alpha.map(\.id), "the feed's events carry their experiment too")
    }

    /// Retention removes jobs' old epoch, progress, log and artifact events
    /// only; the floor is the highest number it removed; new events go on
    /// above every number ever given, even when the newest were removed.
    @Test(arguments: Driver.allCases)
    func retentionKeepsStateEventsAndNeverReusesANumber(driver: Driver) async throws {
        let clock = Clock()
        let store = try Self.make(driver, clock: clock)
        try await store.insert(JobStoreContractTests.job("j"), secrets: [:])
        #expect(try await store.eventFloor() == 0)
        #expect(try await store.eventHead() == 0)
        let first = try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "running"])
        for epoch in 1...3 { try await store.appendEvent(jobID: "j", type: "epoch", payload: ["epoch": .int(epoch)]) }
        try await store.appendEvent(.model, id: "m", type: "epoch", payload: [:])  // not a job's: kept
        clock.advance(days: 10)
        let recent = try await store.appendEvent(jobID: "j", type: "epoch", payload: ["epoch": 4])
        let newest = try await store.appendEvent(jobID: "j", type: "progress", payload: ["batch": 1])
        #expect(try await store.pruneEvents(before: clock.now().addingTimeInterval(-5 * 86_400)) == 3)
        #expect(try await store.eventFloor() == first.id + 3)
        #expect(try await Self.all(store).map(\.id) == [first.id, first.id + 4, recent.id, newest.id])
        // Everything pruned, the newest included: the floor moves up, the sequence does not go back.
        clock.advance(days: 30)
        #expect(try await store.pruneEvents(before: clock.now()) == 2)
        #expect(try await store.eventFloor() == newest.id)
        #expect(try await store.pruneEvents(before: clock.now()) == 0)
        #expect(try await store.eventFloor() == newest.id, "a prune that removes nothing keeps the floor")
        #expect(try await store.eventHead() == newest.id, "the head stays where the pruned log ended")
        let next = try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "succeeded"])
        #expect(next.id == newest.id + 1)
        #expect(try await Self.all(store).map(\.id) == [first.id, first.id + 4, next.id])
    }

    /// A service following the log (`EventLog.follow`) gets each event its
    /// filter takes once, in commit order, from after the head it started
    /// at, also when it falls behind the feed and reads what it missed from
    /// the store: its first event is held until the writers are done, so the
    /// feed (one item) surely lags, and what it missed is more than a page.
    @Test(arguments: Driver.allCases)
    func aFollowerGetsEachWantedEventOnceInOrderWhenItLags(driver: Driver) async throws {
        let store: any JobStore = switch driver {
        case .memory: MemoryJobStore(feed: JobFeed(bufferLimit: 1))
        case .sqlite: SQLiteJobStore(database: try YardDatabase(), feed: JobFeed(bufferLimit: 1))
        }
        for writer in 0..<4 { try await store.insert(JobStoreContractTests.job("w\(writer)"), secrets: [:]) }
        try await store.appendEvent(jobID: "w0", type: "epoch", payload: ["epoch": 0])  // before the follower: not its
        let head = try await store.eventHead()
        let filter = EventFilter(entity: .job, types: ["epoch"])
        final class Seen: Sendable {
            let ids = Mutex<[Int64]>([])
            let writersDone = Atomic<Bool>(false)
        }
        let seen = Seen()
        let follower = Task {
            try await store.follow(filter, after: head, missed: { Issue.record("a catch-up read failed: \($0)") }) { event in
                let first = seen.ids.withLock { ids in
                    ids.append(event.id)
                    return ids.count == 1
                }
                guard first else { return }
                while !seen.writersDone.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(5)) }
            }
        }
        defer { follower.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for n in 1...300 {
                        try await store.appendEvent(jobID: "w\(writer)", type: n % 2 == 0 ? "epoch" : "progress", payload: ["n": .int(n)])
                        try await store.appendEvent(.worker, id: "worker-\(writer)", type: "epoch", payload: ["n": .int(n)])
                    }
                }
            }
            try await group.waitForAll()
        }
        seen.writersDone.store(true, ordering: .releasing)
        let wanted = try await Self.all(store, after: head, filter).map(\.id)
        #expect(wanted.count == 4 * 150, "more than one page (500) to catch up")
        let deadline = ContinuousClock.now + .seconds(20)
        while seen.ids.withLock({ $0.count }) < wanted.count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))  // nothing more comes
        #expect(seen.ids.withLock { $0 } == wanted)
    }
}
