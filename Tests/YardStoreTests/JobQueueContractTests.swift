import Foundation
import Testing
import YardQueue
import YardRedis
import YardStore
import YardTestSupport

/// What every queue driver promises. The Redis driver runs against a real
/// redis-server of each test's own.
@Suite("JobQueue contract")
struct JobQueueContractTests {
    enum Driver: String, CaseIterable, Sendable { case memory, sqlite, redis }
    /// The drivers whose claims live until released (no lease).
    static let embedded: [Driver] = [.memory, .sqlite]

    /// A queue, and whatever must live as long as it (the redis-server).
    static func make(_ driver: Driver, clock: any Clock<Duration> = ContinuousClock()) async throws -> (any JobQueue, AnyObject?) {
        switch driver {
        case .memory: return (MemoryJobQueue(clock: clock), nil)
        case .sqlite: return (SQLiteJobQueue(database: try YardDatabase(), clock: clock), nil)
        case .redis:
            let server = try await RedisServer()
            return (RedisJobQueue(redis: RedisClient(try server.configuration()), clock: clock), server)
        }
    }

    @Test(arguments: Driver.allCases)
    func firstInFirstOutAndOneClaimEach(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        try await queue.enqueue("a")  // idempotent
        #expect(try await queue.claim(worker: "w1")?.jobID == "a")
        #expect(try await queue.claim(worker: "w2")?.jobID == "b")
        #expect(try await queue.claim(worker: "w3")?.jobID == nil)
        try await queue.release("a")
        #expect(try await queue.claim(worker: "w3")?.jobID == "a")
        try await queue.complete("a")
        try await queue.complete("b")
        #expect(try await queue.releaseAllClaims() == [])
        #expect(try await queue.claim(worker: "w1")?.jobID == nil)
    }

    @Test(arguments: Driver.allCases)
    func cancelOnlyRemovesWaitingJobs(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
        #expect(try await queue.cancel("a") == false)
        #expect(try await queue.cancel("b") == true)
        #expect(try await queue.claim(worker: "w")?.jobID == nil)
    }

    @Test(arguments: embedded)
    func releaseAllClaimsPutsClaimedJobsBack(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        try await queue.enqueue("a")
        try await queue.enqueue("b")
        _ = try await queue.claim(worker: "dead")?.jobID
        #expect(try await queue.releaseAllClaims() == ["a"])
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
    }

    /// Attempts are numbered per job; only the holder of the current
    /// attempt can renew or finish it.
    @Test(arguments: Driver.allCases)
    func onlyTheCurrentAttemptRenewsOrFinishes(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        try await queue.enqueue("a")
        let first = try #require(try await queue.claim(worker: "w1"))
        #expect(first == QueueClaim(jobID: "a", attempt: 1))
        #expect(try await queue.renew(first, worker: "w1"))
        #expect(try await queue.renew(first, worker: "w2") == false)
        try await queue.release("a")
        #expect(try await queue.renew(first, worker: "w1") == false, "released: the claim is gone")
        let second = try #require(try await queue.claim(worker: "w2"))
        #expect(second == QueueClaim(jobID: "a", attempt: 2))
        #expect(try await queue.claimant(of: "a") == "w2")
        #expect(try await queue.finish(first, worker: "w1") == false, "a stale attempt changes nothing")
        #expect(try await queue.claimant(of: "a") == "w2")
        #expect(try await queue.finish(second, worker: "w2"))
        #expect(try await queue.claimant(of: "a") == nil)
        #expect(try await queue.claim(worker: "w3") == nil)
        #expect(try await queue.renew(second, worker: "w2") == false)
    }

    @Test(arguments: Driver.allCases)
    func concurrentWorkersNeverClaimTheSameJob(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        let ids = (0..<200).map { "job-\($0)" }
        for id in ids { try await queue.enqueue(id) }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<8 {
                group.addTask {
                    var mine: [String] = []
                    while let id = try await queue.claim(worker: "w\(w)")?.jobID { mine.append(id) }
                    return mine
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(claimed.count == ids.count)
        #expect(Set(claimed) == Set(ids))
    }

    /// Putting a claim back is fenced like finishing it: only the worker
    /// holding that attempt can, in one step.
    @Test(arguments: Driver.allCases)
    func onlyTheHolderOfAnAttemptPutsItBack(driver: Driver) async throws {
        let (queue, server) = try await Self.make(driver)
        defer { withExtendedLifetime(server) {} }
        try await queue.enqueue("a")
        let first = try #require(try await queue.claim(worker: "w1"))
        #expect(try await queue.release(first, worker: "w2") == false, "another worker")
        #expect(try await queue.release(QueueClaim(jobID: "a", attempt: first.attempt + 1), worker: "w1") == false, "another attempt")
        #expect(try await queue.claimant(of: "a") == "w1")
        #expect(try await queue.release(first, worker: "w1"))
        let second = try #require(try await queue.claim(worker: "w2"))
        #expect(second.attempt == first.attempt + 1)
        #expect(try await queue.release(first, worker: "w1") == false, "the old attempt cannot put back the new one")
        #expect(try await queue.claimant(of: "a") == "w2")
    }

    @Test func twoProcessesSharingTheFileNeverClaimTheSameJob() async throws {
        // Two separate connections to one file stand for two `yard` processes.
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let a = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        let b = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        for i in 0..<100 { try await a.enqueue("j\(i)") }
        async let fromA: [String] = { var out: [String] = []; while let id = try await a.claim(worker: "a")?.jobID { out.append(id) }; return out }()
        async let fromB: [String] = { var out: [String] = []; while let id = try await b.claim(worker: "b")?.jobID { out.append(id) }; return out }()
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
            #expect(try await queue.claim(worker: "old-process")?.jobID == "claimed")
        }
        let queue = SQLiteJobQueue(database: try YardDatabase(path: dir.file("q.sqlite")))
        #expect(try await queue.claim(worker: "new")?.jobID == "kept")
        #expect(try await queue.claim(worker: "new")?.jobID == nil, "a claim outlives the process until recovery")
        #expect(try await queue.releaseAllClaims() == ["claimed", "kept"])
        #expect(try await queue.claim(worker: "new")?.jobID == "claimed")
    }

    /// No sleeping: the wait's timeout is on a manual clock that never moves,
    /// so only the enqueue can end it.
    @Test(arguments: Driver.allCases)
    func waitForWorkWakesOnEnqueue(driver: Driver) async throws {
        let clock = ManualClock()
        let (queue, server) = try await Self.make(driver, clock: clock)
        defer { withExtendedLifetime(server) {} }
        async let waited: Void = queue.waitForWork(timeout: .seconds(10))
        await clock.untilSleeping(1)
        try await queue.enqueue("x")
        await waited
        #expect(clock.sleeperCount == 0, "the timeout was cancelled")
    }

    @Test(arguments: Driver.allCases)
    func waitForWorkEndsAtItsTimeout(driver: Driver) async throws {
        let clock = ManualClock()
        let (queue, server) = try await Self.make(driver, clock: clock)
        defer { withExtendedLifetime(server) {} }
        async let waited: Void = queue.waitForWork(timeout: .seconds(10))
        await clock.untilSleeping(1)
        clock.advance(by: .seconds(9))
        #expect(clock.sleeperCount == 1)
        clock.advance(by: .seconds(1))
        await waited
        #expect(try await queue.claim(worker: "w")?.jobID == nil)
    }

}
