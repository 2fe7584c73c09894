import Foundation
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// The in-process broadcast of committed events and log lines, and the
/// store calls it depends on (issue 7: the server hang under SSE).
@Suite("Job feed")
struct JobFeedTests {
    typealias Driver = JobStoreContractTests.Driver

    @Test(arguments: Driver.allCases)
    func subscribersGetCommittedEventsAndLinesInOrder(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        try await store.insert(JobStoreContractTests.job("a"), secrets: [:])
        let first = store.feed.subscribe("a"), second = store.feed.subscribe("a"), other = store.feed.subscribe("b")
        var sent: [JobFeed.Item] = []
        for epoch in 1...20 {
            sent.append(.event(try await store.appendEvent(jobID: "a", type: "epoch", payload: ["epoch": .int(epoch)])))
            sent.append(.logs(try await store.appendLog(jobID: "a", lines: ["epoch \(epoch)", "done"])))
        }
        let (_, stateEvent) = try await store.update("a", recording: "state") { job in
            job.state = .running
            return ["state": "running"]
        }
        sent.append(.event(stateEvent))
        first.cancel(); second.cancel(); other.cancel()
        for subscription in [first, second] {
            var got: [JobFeed.Item] = []
            for await item in subscription { got.append(item) }
            #expect(got == sent)
        }
        var foreign = 0
        for await _ in other { foreign += 1 }
        #expect(foreign == 0, "a job's items reach only its subscribers")
        #expect(store.feed.subscriberCount == 0, "cancelled subscriptions are removed")
    }

    @Test(arguments: Driver.allCases)
    func aFailedStateChangeRecordsNeitherTheStateNorItsEvent(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        try await store.insert(JobStoreContractTests.job("a"), secrets: [:])
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await store.update("a", recording: "state") { job in
                job.state = .running
                throw Refused()
            }
        }
        #expect(try await store.job("a")?.state == .queued)
        #expect(try await store.events(of: "a", after: 0, limit: 10).isEmpty)
    }

    @Test func aSlowSubscriberLagsInsteadOfHoldingThePublisher() async throws {
        let feed = JobFeed(bufferLimit: 4)
        let subscription = feed.subscribe("a")
        for id in 1...10 { feed.publish(JobEvent(id: Int64(id), jobID: "a", type: "epoch", payload: .null, time: Date())) }
        subscription.cancel()
        var got: [JobFeed.Item] = []
        for await item in subscription { got.append(item) }
        // The first four were buffered; the rest dropped, which the subscriber learns at once.
        #expect(got.first == .lagged)
        #expect(got.dropFirst().compactMap { item -> Int64? in if case .event(let e) = item { e.id } else { nil } } == [1, 2, 3, 4])
    }

    @Test func idleSubscribersShareOneHeartbeat() async throws {
        let feed = JobFeed(heartbeat: .milliseconds(20))
        let a = feed.subscribe("a"), b = feed.subscribe("b")
        var ia = a.makeAsyncIterator(), ib = b.makeAsyncIterator()
        #expect(await ia.next() == .heartbeat)
        #expect(await ib.next() == .heartbeat)
        a.cancel(); b.cancel()
        #expect(feed.subscriberCount == 0)
    }

    @Test(arguments: Driver.allCases)
    func theStateFilterComesBeforeTheLimit(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        for i in 0..<5 { try await store.insert(JobStoreContractTests.job("j\(i)", at: Double(i)), secrets: [:]) }
        try await store.update("j0") { $0.state = .running }
        #expect(try await store.jobs(limit: 1, state: .running).map(\.id) == ["j0"])
        #expect(try await store.jobs(limit: 2, state: .queued).map(\.id) == ["j4", "j3"])
        #expect(try await store.jobs(limit: 10, state: .failed).isEmpty)
    }

    @Test(arguments: Driver.allCases)
    func theLastLogLinesComeOldestFirst(driver: Driver) async throws {
        let store = try JobStoreContractTests.make(driver)
        try await store.appendLog(jobID: "a", lines: (1...10).map { "line \($0)" })
        try await store.appendLog(jobID: "b", lines: ["other"])
        #expect(try await store.logs(of: "a", last: 3).map(\.line) == ["line 8", "line 9", "line 10"])
    }

    /// Every SQLite call suspends while it waits for a connection: with one
    /// reader held, twenty waiting reads leave the cooperative threads free.
    /// (Reads that resolved to GRDB's blocking overload stopped the server.)
    @Test(.timeLimit(.minutes(1))) func waitingForAConnectionNeverBlocksACooperativeThread() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let database = try YardDatabase(path: dir.file("y.sqlite"), readers: 1)
        let store = SQLiteJobStore(database: database)
        try await store.insert(JobStoreContractTests.job("a"), secrets: [:])
        try await store.appendEvent(jobID: "a", type: "epoch", payload: ["epoch": 1])
        let held = Atomic(false)
        let holder = Task { try await database.read { _ in held.store(true, ordering: .sequentiallyConsistent); usleep(1_500_000) } }
        while !held.load(ordering: .sequentiallyConsistent) { await Task.yield() }
        let readers = (0..<20).map { _ in Task { try await store.events(of: "a", after: 0, limit: 10) } }
        let clock = ContinuousClock()
        let start = clock.now
        // Work that needs a cooperative thread: many small tasks.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { await Task.yield() } }
        }
        let waited = clock.now - start
        #expect(waited < .milliseconds(700), "cooperative threads were blocked for \(waited)")
        _ = try await holder.value
        for reader in readers { #expect(try await reader.value.count == 1) }
    }
}
