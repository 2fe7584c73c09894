import Foundation
import Testing
import YardQueue
import YardStore
import YardTestSupport

@Suite("JobQueue contract")
struct JobQueueContractTests {
    enum Driver: String, CaseIterable, Sendable { case memory, sqlite }

    static func make(_ driver: Driver) throws -> any JobQueue {
        switch driver {
        case .memory: MemoryJobQueue()
        case .sqlite: SQLiteJobQueue(database: try YardDatabase())
        }
    }

    @Test(arguments: Driver.allCases)
    func firstInFirstOutAndOneClaimEach(driver: Driver) async throws {
        let queue = try Self.make(driver)
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        try await queue.enqueue("a")  // idempotent
        #expect(try await queue.claim(worker: "w1") == "a")
        #expect(try await queue.claim(worker: "w2") == "b")
        #expect(try await queue.claim(worker: "w3") == nil)
        try await queue.release("a")
        #expect(try await queue.claim(worker: "w3") == "a")
        try await queue.complete("a")
        try await queue.complete("b")
        #expect(try await queue.releaseAllClaims() == [])
        #expect(try await queue.claim(worker: "w1") == nil)
    }

    @Test(arguments: Driver.allCases)
    func cancelOnlyRemovesWaitingJobs(driver: Driver) async throws {
        let queue = try Self.make(driver)
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        #expect(try await queue.claim(worker: "w") == "a")
        #expect(try await queue.cancel("a") == false)
        #expect(try await queue.cancel("b") == true)
        #expect(try await queue.claim(worker: "w") == nil)
    }

    @Test(arguments: Driver.allCases)
    func releaseAllClaimsPutsClaimedJobsBack(driver: Driver) async throws {
        let queue = try Self.make(driver)
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        _ = try await queue.claim(worker: "dead")
        #expect(try await queue.releaseAllClaims() == ["a"])
        #expect(try await queue.claim(worker: "w") == "a")
    }

    @Test(arguments: Driver.allCases)
    func concurrentWorkersNeverClaimTheSameJob(driver: Driver) async throws {
        let queue = try Self.make(driver)
        let ids = (0..<200).map { "job-\($0)" }
        for id in ids { try await queue.enqueue(id) }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<8 {
                group.addTask {
                    var mine: [String] = []
                    while let id = try await queue.claim(worker: "w\(w)") { mine.append(id) }
                    return mine
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(claimed.count == ids.count)
        #expect(Set(claimed) == Set(ids))
    }

    @Test func twoProcessesSharingTheFileNeverClaimTheSameJob() async throws {
        // Two separate connections to one file stand for two `yard` processes.
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let a = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        let b = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        for i in 0..<100 { try await a.enqueue("j\(i)") }
        async let fromA: [String] = { var out: [String] = []; while let id = try await a.claim(worker: "a") { out.append(id) }; return out }()
        async let fromB: [String] = { var out: [String] = []; while let id = try await b.claim(worker: "b") { out.append(id) }; return out }()
        let (x, y) = try await (fromA, fromB)
        #expect(Set(x).isDisjoint(with: Set(y)))
        #expect(x.count + y.count == 100)
    }

    @Test func aQueuedJobSurvivesClosingAndReopening() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        do {
            let queue = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
            try await queue.enqueue("claimed")
            try await queue.enqueue("kept")
            #expect(try await queue.claim(worker: "old-process") == "claimed")
        }
        let queue = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        #expect(try await queue.claim(worker: "new") == "kept")
        #expect(try await queue.claim(worker: "new") == nil, "a claim outlives the process until recovery")
        #expect(try await queue.releaseAllClaims() == ["claimed", "kept"])
        #expect(try await queue.claim(worker: "new") == "claimed")
    }

    static func make(_ driver: Driver, clock: ManualClock) throws -> any JobQueue {
        switch driver {
        case .memory: MemoryJobQueue(clock: clock)
        case .sqlite: SQLiteJobQueue(database: try YardDatabase(), clock: clock)
        }
    }

    /// No sleeping: the wait's timeout is on a manual clock that never moves,
    /// so only the enqueue can end it.
    @Test(arguments: Driver.allCases)
    func waitForWorkWakesOnEnqueue(driver: Driver) async throws {
        let clock = ManualClock()
        let queue = try Self.make(driver, clock: clock)
        async let waited: Void = queue.waitForWork(timeout: .seconds(10))
        await clock.untilSleeping(1)
        try await queue.enqueue("x")
        await waited
        #expect(clock.sleeperCount == 0, "the timeout was cancelled")
    }

    @Test(arguments: Driver.allCases)
    func waitForWorkEndsAtItsTimeout(driver: Driver) async throws {
        let clock = ManualClock()
        let queue = try Self.make(driver, clock: clock)
        async let waited: Void = queue.waitForWork(timeout: .seconds(10))
        await clock.untilSleeping(1)
        clock.advance(by: .seconds(9))
        #expect(clock.sleeperCount == 1)
        clock.advance(by: .seconds(1))
        await waited
        #expect(try await queue.claim(worker: "w") == nil)
    }

}
