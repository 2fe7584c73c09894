import Foundation
import Synchronization
import Testing
import YardDomain
import YardQueue
import YardRedis
import YardStore
import YardTestSupport

/// Priorities, fair share, aging and routing through each queue driver,
/// all of which order by `ClaimOrder` (issue 32); the Redis driver against
/// a real redis-server of each test's own. The order itself is unit-tested
/// in ClaimOrderTests and RoutingTests. Time is a hand-moved wall clock,
/// never a sleep.
@Suite("Queue scheduling")
struct QueueSchedulingTests {
    enum Driver: String, CaseIterable, Sendable { case memory, sqlite, redis }

    final class Wall: Sendable {
        private let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        var now: Date { time.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    /// A queue, where its workers announce themselves, and whatever must
    /// live as long as it (the redis-server).
    struct Made {
        var queue: any JobQueue
        var registry: any WorkerRegistry
        var server: RedisServer?
        /// Another process on the same queue (a worker's machine): for Redis
        /// a second client, with no policy of its own (it claims by the one
        /// the server published); otherwise the same queue.
        var elsewhere: any JobQueue
    }

    static func make(_ driver: Driver, wall: Wall, policy: SchedulingPolicy = .default) async throws -> Made {
        switch driver {
        case .memory:
            let registry = MemoryWorkerRegistry()
            let queue = MemoryJobQueue(now: { wall.now }, policy: policy, workers: registry)
            return Made(queue: queue, registry: registry, elsewhere: queue)
        case .sqlite:
            let registry = MemoryWorkerRegistry()
            let queue = SQLiteJobQueue(database: try YardDatabase(), now: { wall.now }, policy: policy, workers: registry)
            return Made(queue: queue, registry: registry, elsewhere: queue)
        case .redis:
            let server = try await RedisServer()
            let queue = RedisJobQueue(redis: RedisClient(try server.configuration()), now: { wall.now }, policy: policy)
            let elsewhere = RedisJobQueue(redis: RedisClient(try server.configuration()), now: { wall.now })
            return Made(queue: queue, registry: RedisWorkerRegistry(redis: RedisClient(try server.configuration())), server: server,
                        elsewhere: elsewhere)
        }
    }

    /// With the only worker busy, ten priority 5 jobs wait; a priority 9
    /// job submitted after them runs next.
    @Test(arguments: Driver.allCases)
    func aPriorityNineJobOvertakesTenWaiting(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        let worker = made.elsewhere  // on Redis: another machine, with the published policy
        try await queue.enqueue(QueueTicket(jobID: "busy", enqueuedAt: wall.now))
        let busy = try #require(try await worker.claim(worker: "w"))
        for i in 0..<10 {
            wall.advance(1)
            try await queue.enqueue(QueueTicket(jobID: "p5-\(i)", priority: 5, enqueuedAt: wall.now))
        }
        try await queue.enqueue(QueueTicket(jobID: "p9", priority: 9, enqueuedAt: wall.now))
        wall.advance(60)
        #expect(try await worker.finish(busy, worker: "w"))
        let next = try #require(try await worker.claim(worker: "w"))
        #expect(next.jobID == "p9")
        #expect(try await worker.finish(next, worker: "w"))
        #expect(try await worker.claim(worker: "w")?.jobID == "p5-0")
    }

    /// Two users submit ten jobs each (all of ann's first); one worker
    /// running a minute per job takes them in turn.
    @Test(arguments: Driver.allCases)
    func twoUsersSubmittingTenJobsEachAlternate(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        let worker = made.elsewhere  // on Redis: another machine, with the published policy
        for user in ["ann", "bob"] {
            for i in 0..<10 { try await queue.enqueue(QueueTicket(jobID: "\(user)-\(i)", owner: user, enqueuedAt: wall.now)) }
        }
        var order: [String] = []
        while let claim = try await worker.claim(worker: "w") {
            order.append(String(claim.jobID.prefix(3)))
            wall.advance(60)
            #expect(try await worker.finish(claim, worker: "w"))
        }
        #expect(order == Array(repeating: ["ann", "bob"], count: 10).flatMap { $0 })
    }

    /// A job still running counts its GPU time so far: bob's second job
    /// waits behind ann's first while bob's first runs on another worker.
    @Test(arguments: Driver.allCases)
    func runningJobsCountTowardsTheirShare(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        let worker = made.elsewhere  // on Redis: another machine, with the published policy
        try await queue.enqueue(QueueTicket(jobID: "bob-1", owner: "bob", enqueuedAt: wall.now))
        _ = try #require(try await worker.claim(worker: "w1"))
        try await queue.enqueue(QueueTicket(jobID: "bob-2", owner: "bob", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "ann-1", owner: "ann", enqueuedAt: wall.now))
        wall.advance(600)
        #expect(try await worker.claim(worker: "w2")?.jobID == "ann-1")
    }

    /// A priority 1 job under a stream of priority 7 jobs runs once it has
    /// waited six aging intervals (a minute each here).
    @Test(arguments: Driver.allCases)
    func anAgedLowPriorityJobEventuallyRuns(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall, policy: SchedulingPolicy(agingSeconds: 60))
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        let worker = made.elsewhere  // on Redis: another machine, with the published policy
        try await queue.enqueue(QueueTicket(jobID: "low", priority: 1, enqueuedAt: wall.now))
        var ran: [String] = []
        for i in 0..<10 {
            try await queue.enqueue(QueueTicket(jobID: "high-\(i)", priority: 7, enqueuedAt: wall.now))
            let claim = try #require(try await worker.claim(worker: "w"))
            ran.append(claim.jobID)
            wall.advance(60)
            #expect(try await worker.finish(claim, worker: "w"))
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
        let made = try await Self.make(driver, wall: wall, policy: SchedulingPolicy(maxRunningPerUser: 1))
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        let worker = made.elsewhere  // on Redis: another machine, with the published policy
        for id in ["ann-1", "ann-2", "bob-1"] {
            try await queue.enqueue(QueueTicket(jobID: id, owner: String(id.prefix(3)), enqueuedAt: wall.now))
        }
        try await queue.enqueue(QueueTicket(jobID: "anon-1", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "anon-2", enqueuedAt: wall.now))
        let first = try #require(try await worker.claim(worker: "w1"))
        #expect(first.jobID == "ann-1")
        #expect(try await queue.waitingReason(of: "ann-2") == "waiting: ann has 1 running job (at most 1 per user)")
        #expect(try await queue.waitingReason(of: "bob-1") == nil)
        #expect(try await queue.waitingReason(of: "ann-1") == nil, "running, not waiting")
        #expect(try await worker.claim(worker: "w2")?.jobID == "bob-1")
        #expect(try await worker.claim(worker: "w3")?.jobID == "anon-1")
        #expect(try await worker.claim(worker: "w4")?.jobID == "anon-2")
        #expect(try await worker.claim(worker: "w5") == nil, "ann-2 is held back")
        wall.advance(60)
        #expect(try await worker.finish(first, worker: "w1"))
        #expect(try await queue.waitingReason(of: "ann-2") == nil)
        #expect(try await worker.claim(worker: "w1")?.jobID == "ann-2")
    }

    /// A released job goes back to its place: ahead of the same priority's
    /// later jobs, behind a higher one.
    @Test(arguments: Driver.allCases)
    func aReleasedJobKeepsItsPlace(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        let queue = made.queue
        try await queue.enqueue(QueueTicket(jobID: "a", enqueuedAt: wall.now))
        try await queue.enqueue(QueueTicket(jobID: "b", enqueuedAt: wall.now))
        let a = try #require(try await queue.claim(worker: "w"))
        #expect(try await queue.release(a, worker: "w"))
        try await queue.enqueue(QueueTicket(jobID: "urgent", priority: 8, enqueuedAt: wall.now))
        #expect(try await queue.claim(worker: "w")?.jobID == "urgent")
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
        #expect(try await queue.claim(worker: "w")?.jobID == "b")
    }

    /// Two workers with different tags (one of them with 80 GB free on its
    /// GPU, one with no GPU stats) on one queue: each job lands on the one
    /// that has what it asks for; a plain job goes to either.
    @Test(arguments: Driver.allCases)
    func jobsLandOnTheWorkerWithTheirTagsAndMemory(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        let big = WorkerCapacity(tags: ["a100", "80gb"], freeGPUMemoryGB: 80)
        let cpu = WorkerCapacity(tags: ["cpu"])
        let jobs: [(String, JobResources)] = [
            ("needs-a100", JobResources(tags: ["a100"])), ("needs-40gb", JobResources(gpuMemoryGB: 40)),
            ("needs-cpu", JobResources(tags: ["cpu"])), ("needs-both", JobResources(tags: ["a100", "80gb"], gpuMemoryGB: 79)),
            ("needs-cpu-2", JobResources(tags: ["CPU"])),
        ]
        for (id, resources) in jobs {
            try await made.queue.enqueue(QueueTicket(jobID: id, enqueuedAt: wall.now, resources: resources))
            wall.advance(1)
        }
        var onBig: [String] = []
        var onCPU: [String] = []
        while let claim = try await made.elsewhere.claim(worker: "cpu", capacity: cpu) { onCPU.append(claim.jobID) }
        while let claim = try await made.elsewhere.claim(worker: "big", capacity: big) { onBig.append(claim.jobID) }
        #expect(onCPU == ["needs-cpu", "needs-cpu-2"])
        #expect(onBig == ["needs-a100", "needs-40gb", "needs-both"])
        #expect(try await made.queue.claimant(of: "needs-both") == "big")
        try await made.queue.enqueue(QueueTicket(jobID: "plain", enqueuedAt: wall.now))
        #expect(try await made.elsewhere.claim(worker: "cpu", capacity: cpu)?.jobID == "plain")
    }

    /// A job that no live worker can take waits saying why (tags first,
    /// then memory), and the reason goes once a fitting worker announces
    /// itself; a busy worker counts with its GPU's whole memory, a lost one
    /// not at all.
    @Test(arguments: Driver.allCases)
    func aJobNoWorkerCanTakeSaysWhy(driver: Driver) async throws {
        let wall = Wall()
        let made = try await Self.make(driver, wall: wall)
        defer { withExtendedLifetime(made.server) {} }
        func announce(_ id: String, tags: [String], totalMiB: Int, usedMiB: Int, status: WorkerInfo.Status = .idle, expires: TimeInterval = 60) async throws {
            var info = WorkerInfo(id: id, host: "h", pid: 1, device: "cuda:0", startedAt: Date())
            info.tags = tags
            info.status = status
            info.expiresAt = Date().addingTimeInterval(expires)
            info.gpus = [GPUStats(index: 0, name: "gpu", memoryTotalMiB: totalMiB, memoryUsedMiB: usedMiB)]
            try await made.registry.announce(info)
        }
        try await made.queue.enqueue(QueueTicket(jobID: "a100-job", enqueuedAt: wall.now, resources: JobResources(tags: ["a100"])))
        try await made.queue.enqueue(QueueTicket(jobID: "big-job", enqueuedAt: wall.now, resources: JobResources(gpuMemoryGB: 40)))
        try await made.queue.enqueue(QueueTicket(jobID: "plain", enqueuedAt: wall.now))
        #expect(try await made.queue.waitingReason(of: "a100-job") == "waiting: no worker has tags a100")
        #expect(try await made.queue.waitingReason(of: "big-job") == "waiting: no worker has 40 GB of free GPU memory")
        #expect(try await made.queue.waitingReason(of: "plain") == nil)

        try await announce("small", tags: ["t4"], totalMiB: 16_000, usedMiB: 0)
        try await announce("gone", tags: ["a100"], totalMiB: 81_920, usedMiB: 0, expires: -1)
        #expect(try await made.queue.waitingReason(of: "a100-job") == "waiting: no worker has tags a100", "a lost worker does not count")
        #expect(try await made.queue.waitingReason(of: "big-job") == "waiting: no worker has 40 GB of free GPU memory")

        try await announce("busy", tags: ["a100"], totalMiB: 81_920, usedMiB: 70_000, status: .busy)
        #expect(try await made.queue.waitingReason(of: "a100-job") == nil)
        #expect(try await made.queue.waitingReason(of: "big-job") == nil, "busy: its job's memory frees when that ends")
        #expect(try await made.queue.claim(worker: "small", capacity: WorkerCapacity(tags: ["t4"], freeGPUMemoryGB: 16))?.jobID == "plain")
        #expect(try await made.queue.waitingReason(of: "plain") == nil, "claimed: not waiting")
    }

    /// The routing columns of the embedded queue survive a restart.
    @Test func theEmbeddedQueueKeepsResourcesAcrossARestart() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yard-route-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            let queue = SQLiteJobQueue(database: try YardDatabase(path: folder + "/yard.sqlite"))
            try await queue.enqueue(QueueTicket(jobID: "routed", resources: JobResources(tags: ["a100"], gpuMemoryGB: 40)))
        }
        let queue = SQLiteJobQueue(database: try YardDatabase(path: folder + "/yard.sqlite"))
        #expect(try await queue.claim(worker: "w") == nil)
        #expect(try await queue.claim(worker: "w", capacity: WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 39)) == nil)
        #expect(try await queue.claim(worker: "w", capacity: WorkerCapacity(tags: ["a100"], freeGPUMemoryGB: 41))?.jobID == "routed")
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
