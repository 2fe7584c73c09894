import Foundation
import Synchronization
import Testing
import YardDomain
import YardQueue
import YardStore

/// Priorities, fair share and aging through each queue driver that orders
/// by `ClaimOrder` (issue 32); the order itself is unit-tested in
/// ClaimOrderTests. Time is a hand-moved wall clock, never a sleep.
@Suite("Queue scheduling")
struct QueueSchedulingTests {
    enum Driver: String, CaseIterable, Sendable { case memory, sqlite }

    final class Wall: Sendable {
        private let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        var now: Date { time.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    static func make(_ driver: Driver, wall: Wall, policy: SchedulingPolicy = .default) throws -> any JobQueue {
        switch driver {
        case .memory: MemoryJobQueue(now: { wall.now }, policy: policy)
        case .sqlite: SQLiteJobQueue(database: try YardDatabase(), now: { wall.now }, policy: policy)
        }
    }

    /// With the only worker busy, ten priority 5 jobs wait; a priority 9
    /// job submitted after them runs next.
    @Test(arguments: Driver.allCases)
    func aPriorityNineJobOvertakesTenWaiting(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall)
        try await queue.enqueue(QueueTicket(jobID: "busy", enqueuedAt: wall.now))
        let busy = try #require(try await queue.claim(worker: "w"))
        for i in 0..<10 {
            wall.advance(1)
            try await queue.enqueue(QueueTicket(jobID: "p5-\(i)", priority: 5, enqueuedAt: wall.now))
        }
        try await queue.enqueue(QueueTicket(jobID: "p9", priority: 9, enqueuedAt: wall.now))
        wall.advance(60)
        #expect(try await queue.finish(busy, worker: "w"))
        let next = try #require(try await queue.claim(worker: "w"))
        #expect(next.jobID == "p9")
        #expect(try await queue.finish(next, worker: "w"))
        #expect(try await queue.claim(worker: "w")?.jobID == "p5-0")
    }

    /// Two users submit ten jobs each (all of ann's first); one worker
    /// running a minute per job takes them in turn.
    @Test(arguments: Driver.allCases)
    func twoUsersSubmittingTenJobsEachAlternate(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall)
        for user in ["ann", "bob"] {
            for i in 0..<10 { try await queue.enqueue(QueueTicket(jobID: "\(user)-\(i)", owner: user, enqueuedAt: wall.now)) }
        }
        var order: [String] = []
        while let claim = try await queue.claim(worker: "w") {
            order.append(String(claim.jobID.prefix(3)))
            wall.advance(60)
            #expect(try await queue.finish(claim, worker: "w"))
        }
        #expect(order == Array(repeating: ["ann", "bob"], count: 10).flatMap { $0 })
    }

    /// A job still running counts its GPU time so far: bob's second job
    /// waits behind ann's first while bob's first runs on another worker.
    @Test(arguments: Driver.allCases)
    func runningJobsCountTowardsTheirShare(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall)
        try await queue.enqueue(QueueTicket(jobID: "bob-1", owner: "bob", enqueuedAt: wall.now))
        _ = try #require(try await queue.claim(worker: "w1"))
        try await queue.enqueue(QueueTicket(jobID: "bob-2", owner: "bob", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "ann-1", owner: "ann", enqueuedAt: wall.now))
        wall.advance(600)
        #expect(try await queue.claim(worker: "w2")?.jobID == "ann-1")
    }

    /// A priority 1 job under a stream of priority 7 jobs runs once it has
    /// waited six aging intervals (a minute each here).
    @Test(arguments: Driver.allCases)
    func anAgedLowPriorityJobEventuallyRuns(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall, policy: SchedulingPolicy(agingSeconds: 60))
        try await queue.enqueue(QueueTicket(jobID: "low", priority: 1, enqueuedAt: wall.now))
        var ran: [String] = []
        for i in 0..<10 {
            try await queue.enqueue(QueueTicket(jobID: "high-\(i)", priority: 7, enqueuedAt: wall.now))
            let claim = try #require(try await queue.claim(worker: "w"))
            ran.append(claim.jobID)
            wall.advance(60)
            #expect(try await queue.finish(claim, worker: "w"))
            if claim.jobID == "low" { break }
        }
        #expect(ran == ["high-0", "high-1", "high-2", "high-3", "high-4", "high-5", "low"])
    }

    /// With at most one running job per user, ann's second job waits (and
    /// says why) while bob's, queued later, runs; it runs once ann's first
    /// ends. Jobs with no owner are not limited.
    @Test(arguments: Driver.allCases)
    func aUserAtTheRunningLimitWaitsVisibly(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall, policy: SchedulingPolicy(maxRunningPerUser: 1))
        for id in ["ann-1", "ann-2", "bob-1"] {
            try await queue.enqueue(QueueTicket(jobID: id, owner: String(id.prefix(3)), enqueuedAt: wall.now))
        }
        try await queue.enqueue(QueueTicket(jobID: "anon-1", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "anon-2", enqueuedAt: wall.now))
        let first = try #require(try await queue.claim(worker: "w1"))
        #expect(first.jobID == "ann-1")
        #expect(try await queue.waitingReason(of: "ann-2") == "waiting: ann has 1 running job (at most 1 per user)")
        #expect(try await queue.waitingReason(of: "bob-1") == nil)
        #expect(try await queue.waitingReason(of: "ann-1") == nil, "running, not waiting")
        #expect(try await queue.claim(worker: "w2")?.jobID == "bob-1")
        #expect(try await queue.claim(worker: "w3")?.jobID == "anon-1")
        #expect(try await queue.claim(worker: "w4")?.jobID == "anon-2")
        #expect(try await queue.claim(worker: "w5") == nil, "ann-2 is held back")
        wall.advance(60)
        #expect(try await queue.finish(first, worker: "w1"))
        #expect(try await queue.waitingReason(of: "ann-2") == nil)
        #expect(try await queue.claim(worker: "w1")?.jobID == "ann-2")
    }

    /// A released job goes back to its place: ahead of the same priority's
    /// later jobs, behind a higher one.
    @Test(arguments: Driver.allCases)
    func aReleasedJobKeepsItsPlace(driver: Driver) async throws {
        let wall = Wall()
        let queue = try Self.make(driver, wall: wall)
        try await queue.enqueue(QueueTicket(jobID: "a", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "b", enqueuedAt: wall.now))
        let a = try #require(try await queue.claim(worker: "w"))
        #expect(try await queue.release(a, worker: "w"))
        try await queue.enqueue(QueueTicket(jobID: "urgent", priority: 8, enqueuedAt: wall.now))
        #expect(try await queue.claim(worker: "w")?.jobID == "urgent")
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
        #expect(try await queue.claim(worker: "w")?.jobID == "b")
    }

    /// The SQLite queue keeps each job's priority and the GPU time used
    /// across a restart (reopening the file).
    @Test func theEmbeddedQueueKeepsItsOrderAcrossARestart() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yard-sched-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let wall = Wall()
        do {
            let queue = SQLiteJobQueue(database: try YardDatabase(path: folder + "/yard.sqlite"), now: { wall.now })
            try await queue.enqueue(QueueTicket(jobID: "ann-1", owner: "ann", enqueuedAt: wall.now))
            let claim = try #require(try await queue.claim(worker: "w"))
            wall.advance(3600)
            #expect(try await queue.finish(claim, worker: "w"))
            try await queue.enqueue(QueueTicket(jobID: "ann-2", owner: "ann", enqueuedAt: wall.now))
            try await queue.enqueue(QueueTicket(jobID: "bob-1", owner: "bob", enqueuedAt: wall.now))
            try await queue.enqueue(QueueTicket(jobID: "low", priority: 2, owner: "cy", enqueuedAt: wall.now))
        }
        let queue = SQLiteJobQueue(database: try YardDatabase(path: folder + "/yard.sqlite"), now: { wall.now })
        #expect(try await queue.claim(worker: "w")?.jobID == "bob-1")
        #expect(try await queue.claim(worker: "w")?.jobID == "ann-2")
        #expect(try await queue.claim(worker: "w")?.jobID == "low")
    }
}
