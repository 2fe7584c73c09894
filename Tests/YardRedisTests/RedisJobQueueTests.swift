import Foundation
import Synchronization
import Testing
import YardDomain
@testable import YardQueue
import YardRedis
import YardStore
import YardTestSupport

/// What the Redis queue adds to the contract (JobQueueContractTests runs
/// that against it too): leases, reclaim, several processes on one server,
/// waits woken from elsewhere, and Redis restarting underneath.
@Suite("Redis job queue")
struct RedisJobQueueTests {
    func queue(_ server: RedisServer, lease: Duration = .seconds(60)) throws -> RedisJobQueue {
        RedisJobQueue(redis: RedisClient(try server.configuration()), lease: lease)
    }

    /// Makes Redis believe the job's entry was last claimed or renewed
    /// `seconds` ago (XCLAIM ... IDLE), so lease expiry needs no sleeping
    /// and does not depend on how busy the machine is.
    func age(_ jobID: String, by seconds: Int, holder: String, on server: RedisServer) async throws {
        let redis = RedisClient(try server.configuration())
        let entry = try #require(try await redis.send(["HGET", "yard:queue:entry", jobID]).string)
        try await redis.send(["XCLAIM", "yard:jobs", RedisJobQueue.group, holder, "0", entry, "IDLE", String(seconds * 1000), "JUSTID"])
    }

    func idleMilliseconds(_ jobID: String, on server: RedisServer) async throws -> Int64 {
        let redis = RedisClient(try server.configuration())
        let entry = try #require(try await redis.send(["HGET", "yard:queue:entry", jobID]).string)
        let pending = try await redis.send(["XPENDING", "yard:jobs", RedisJobQueue.group, entry, entry, "1"])
        return try #require(pending.array?.first?.array?[2].int)
    }

    @Test func aClaimNotRenewedWithinTheLeaseIsTakenOverAsANewAttempt() async throws {
        let server = try await RedisServer()
        let machineA = try queue(server, lease: .seconds(60))
        let machineB = try queue(server, lease: .seconds(60))
        try await machineA.enqueue("job")
        let first = try #require(try await machineA.claim(worker: "a"))
        try await age("job", by: 59, holder: "a", on: server)
        #expect(try await machineB.claim(worker: "b") == nil, "within the lease the claim holds")
        try await age("job", by: 61, holder: "a", on: server)
        let second = try #require(try await machineB.claim(worker: "b"))
        #expect(second == QueueClaim(jobID: "job", attempt: 2))
        #expect(try await machineA.renew(first, worker: "a") == false, "the old worker learns it lost the job")
        #expect(try await machineA.finish(first, worker: "a") == false)
        #expect(try await machineB.claimant(of: "job") == "b")
        #expect(try await machineB.finish(second, worker: "b"))
        #expect(try await machineA.claim(worker: "a") == nil)
    }

    /// The lease itself, in real time: short, and only the ordering of
    /// "before" and "after" is checked.
    @Test func aShortLeaseExpiresInRealTime() async throws {
        let server = try await RedisServer()
        let queue = try queue(server, lease: .milliseconds(200))
        try await queue.enqueue("job")
        _ = try #require(try await queue.claim(worker: "a"))
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await queue.claim(worker: "b") == QueueClaim(jobID: "job", attempt: 2))
    }

    @Test func renewingResetsTheLease() async throws {
        let server = try await RedisServer()
        let holder = try queue(server, lease: .seconds(60))
        let other = try queue(server, lease: .seconds(60))
        try await holder.enqueue("long")
        let claim = try #require(try await holder.claim(worker: "a"))
        for _ in 0..<3 {
            try await age("long", by: 59, holder: "a", on: server)
            #expect(try await holder.renew(claim, worker: "a"))
            #expect(try await idleMilliseconds("long", on: server) < 59_000)
            try await age("long", by: 59, holder: "a", on: server)
            #expect(try await other.claim(worker: "b") == nil)
        }
    }

    @Test func aReleasedJobComesBeforeNewerWork() async throws {
        let server = try await RedisServer()
        let queue = try queue(server)
        for id in ["a", "b", "c"] { try await queue.enqueue(id) }
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
        #expect(try await queue.claim(worker: "w")?.jobID == "b")
        try await queue.release("b")
        try await queue.release("a")
        #expect(try await queue.claimant(of: "a") == nil)
        #expect(try await queue.claim(worker: "w")?.jobID == "a")
        #expect(try await queue.claim(worker: "w")?.jobID == "b")
        #expect(try await queue.claim(worker: "w")?.jobID == "c")
    }

    /// Two processes (two queue objects, two connections) and eight workers
    /// share 300 jobs, whose ids include characters Lua and RESP care about.
    @Test func workersOnTwoMachinesNeverClaimTheSameJob() async throws {
        let server = try await RedisServer()
        let machines = [try queue(server), try queue(server)]
        let ids = (0..<300).map { "job-\($0) ü \\r\\n '\"]]--" }
        for (i, id) in ids.enumerated() { try await machines[i % 2].enqueue(id) }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<8 {
                group.addTask {
                    var mine: [String] = []
                    let queue = machines[w % 2]
                    while let claim = try await queue.claim(worker: "w\(w)") {
                        mine.append(claim.jobID)
                        #expect(try await queue.finish(claim, worker: "w\(w)"))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(claimed.count == ids.count)
        #expect(Set(claimed) == Set(ids))
        let length = try await RedisClient(try server.configuration()).send(["XLEN", "yard:jobs"]).int
        #expect(length == 0, "finished entries are removed from the stream")
    }

    /// A worker waiting on one machine wakes when another machine enqueues,
    /// also when the job arrived between its empty claim and its wait.
    @Test func aWaitWakesOnWorkEnqueuedElsewhere() async throws {
        let server = try await RedisServer()
        let worker = try queue(server)
        let submitter = try queue(server)
        #expect(try await worker.claim(worker: "w") == nil)
        try await submitter.enqueue("early")  // before the wait starts
        var started = ContinuousClock.now
        await worker.waitForWork(timeout: .seconds(20))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(try await worker.claim(worker: "w")?.jobID == "early")
        #expect(try await worker.claim(worker: "w") == nil)
        started = ContinuousClock.now
        async let waited: Void = worker.waitForWork(timeout: .seconds(20))
        try await Task.sleep(for: .milliseconds(100))
        try await submitter.enqueue("late")
        await waited
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(try await worker.claim(worker: "w")?.jobID == "late")
    }

    /// Redis restarts (append-only file on): waiting and claimed jobs are
    /// still there, with their claimants and attempts.
    @Test func theQueueSurvivesARedisRestart() async throws {
        let server = try await RedisServer()
        let queue = try queue(server)
        try await queue.enqueue("running")
        try await queue.enqueue("waiting")
        let claim = try #require(try await queue.claim(worker: "w"))
        try await server.stop()
        await #expect(throws: RedisError.self) { try await queue.enqueue("lost?") }
        let started = ContinuousClock.now
        await queue.waitForWork(timeout: .milliseconds(300))
        #expect(ContinuousClock.now - started >= .milliseconds(250), "a wait with Redis down keeps its timeout, it does not spin")
        try await server.start()
        try await eventually("the queue is back") { (try? await queue.claimant(of: "running")) == "w" }
        #expect(try await queue.renew(claim, worker: "w"))
        #expect(try await queue.claim(worker: "w2") == QueueClaim(jobID: "waiting", attempt: 1))
    }

    /// Idle times run on while Redis is down: after an outage longer than
    /// the lease, the first worker back must not take over a job whose
    /// worker was only waiting for Redis too. For one lease after it got
    /// through again, a claim takes over released entries only.
    @Test func afterAnOutageARunningJobsWorkerGetsALeaseToRenew() async throws {
        let server = try await RedisServer()
        let owner = try queue(server), other = try queue(server)
        try await owner.enqueue("running")
        try await owner.enqueue("handed-back")
        let running = try #require(try await owner.claim(worker: "a"))
        _ = try #require(try await owner.claim(worker: "a"))
        try await server.stop()
        await #expect(throws: RedisError.self) { try await other.claim(worker: "b") }
        try await server.start()
        try await age("running", by: 61, holder: "a", on: server)  // the outage outlasted the lease
        try await owner.release("handed-back")
        try await eventually("the other worker is back") { (try? await other.claimant(of: "running")) == "a" }
        #expect(try await other.claim(worker: "b") == QueueClaim(jobID: "handed-back", attempt: 2), "a released job is taken at once")
        #expect(try await other.claim(worker: "b") == nil, "the running job is not taken over")
        #expect(try await owner.renew(running, worker: "a"), "its worker renews it")
    }

    /// A Redis that hangs fails the call at the command timeout.
    @Test func aHungRedisFailsClaimsInsteadOfHangingThem() async throws {
        let server = try await RedisServer()
        var configuration = try server.configuration()
        configuration.commandTimeout = .milliseconds(300)
        let queue = RedisJobQueue(redis: RedisClient(configuration))
        try await queue.enqueue("a")
        server.freeze()
        defer { server.thaw() }
        let started = ContinuousClock.now
        await #expect(throws: RedisError.self) { try await queue.claim(worker: "w") }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    /// `--max-running` holds across machines: eight workers on two
    /// machines race for ann's twenty jobs (the queue's policy published by
    /// the server, theirs none) and only two get one; the rest wait saying
    /// why, and the next goes once one ends.
    @Test func theRunningLimitHoldsAgainstWorkersRacing() async throws {
        let server = try await RedisServer()
        let configuration = try server.configuration()
        let submitter = RedisJobQueue(redis: RedisClient(configuration), policy: SchedulingPolicy(maxRunningPerUser: 2))
        for i in 0..<20 { try await submitter.enqueue(QueueTicket(jobID: "ann-\(i)", owner: "ann")) }
        let machines = [RedisJobQueue(redis: RedisClient(configuration)), RedisJobQueue(redis: RedisClient(configuration))]
        let claims = try await withThrowingTaskGroup(of: QueueClaim?.self) { group in
            for w in 0..<8 { group.addTask { try await machines[w % 2].claim(worker: "w\(w)") } }
            return try await group.reduce(into: [QueueClaim]()) { if let claim = $1 { $0.append(claim) } }
        }
        #expect(claims.map(\.jobID).sorted() == ["ann-0", "ann-1"])
        #expect(try await submitter.waitingReason(of: "ann-2") == "waiting: ann has 2 running jobs (at most 2 per user)")
        let holder = try #require(try await submitter.claimant(of: claims[0].jobID))
        #expect(try await machines[0].finish(claims[0], worker: holder))
        #expect(try await machines[1].claim(worker: "w9")?.jobID == "ann-2")
        #expect(try await machines[1].claim(worker: "w10") == nil)
    }

    /// A claim whose worker died holds no place under `--max-running`: once
    /// its lease ran out the job is taken over (a new attempt) rather than
    /// held back by its own stale claim, and the user's next job still waits.
    @Test func aDeadWorkersClaimDoesNotBlockItsOwnTakeover() async throws {
        let server = try await RedisServer()
        let configuration = try server.configuration()
        let queue = RedisJobQueue(redis: RedisClient(configuration), policy: SchedulingPolicy(maxRunningPerUser: 1))
        try await queue.enqueue(QueueTicket(jobID: "ann-1", owner: "ann"))
        try await queue.enqueue(QueueTicket(jobID: "ann-2", owner: "ann"))
        #expect(try await queue.claim(worker: "a")?.jobID == "ann-1")
        #expect(try await queue.claim(worker: "b") == nil)
        try await age("ann-1", by: 61, holder: "a", on: server)
        #expect(try await queue.waitingReason(of: "ann-2") == nil, "nothing of ann's runs now")
        #expect(try await queue.claim(worker: "b") == QueueClaim(jobID: "ann-1", attempt: 2))
        #expect(try await queue.claim(worker: "c") == nil)
        #expect(try await queue.waitingReason(of: "ann-2") == "waiting: ann has 1 running job (at most 1 per user)")
    }

    /// Tagged workers on two machines drain 120 jobs concurrently; every
    /// job went to a worker that has its tag, each exactly once.
    @Test func taggedWorkersRacingTakeOnlyTheirJobs() async throws {
        let server = try await RedisServer()
        let configuration = try server.configuration()
        let machines = [RedisJobQueue(redis: RedisClient(configuration)), RedisJobQueue(redis: RedisClient(configuration))]
        let kinds = ["a100", "t4", "cpu"]
        for i in 0..<120 {
            try await machines[i % 2].enqueue(QueueTicket(jobID: "\(kinds[i % 3])-\(i)", resources: JobResources(tags: [kinds[i % 3]])))
        }
        let taken = try await withThrowingTaskGroup(of: [(String, String)].self) { group in
            for w in 0..<6 {
                group.addTask {
                    let tag = kinds[w % 3]
                    let queue = machines[w % 2]
                    var mine: [(String, String)] = []
                    while let claim = try await queue.claim(worker: "w\(w)", capacity: WorkerCapacity(tags: [tag])) {
                        mine.append((claim.jobID, tag))
                        #expect(try await queue.finish(claim, worker: "w\(w)"))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [(String, String)]()) { $0 += $1 }
        }
        #expect(taken.count == 120)
        #expect(Set(taken.map(\.0)).count == 120)
        for (job, tag) in taken { #expect(job.hasPrefix(tag + "-"), "\(job) went to a \(tag) worker") }
    }

    /// GPU time that ended more than 24 h ago is dropped at the next claim;
    /// the queue's keys are gone once its jobs are.
    @Test func oldUsageIsForgottenAndFinishedJobsLeaveNothing() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        final class Wall: Sendable {
            let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        }
        let clock = Wall()
        let queue = RedisJobQueue(redis: redis, now: { clock.time.withLock { $0 } }, policy: .default)
        try await queue.enqueue(QueueTicket(jobID: "old", owner: "ann"))
        let old = try #require(try await queue.claim(worker: "w"))
        #expect(try await redis.send(["HLEN", "yard:queue:claimed"]).int == 1)
        #expect(try await queue.finish(old, worker: "w"))
        #expect(try await redis.send(["HLEN", "yard:queue:claimed"]).int == 0)
        #expect(try await redis.send(["HLEN", "yard:queue:span"]).int == 1)
        #expect(try await redis.send(["HLEN", "yard:queue:usage"]).int == 4, "seconds and claims of u:ann and e:default")
        clock.time.withLock { $0 += 25 * 3600 }
        try await queue.enqueue(QueueTicket(jobID: "new", owner: "ann"))
        let new = try #require(try await queue.claim(worker: "w"))
        #expect(try await redis.send(["HLEN", "yard:queue:span"]).int == 1, "only the new claim's span is left")
        #expect(try await redis.send(["HLEN", "yard:queue:usage"]).int == 0, "the old claim's time left the window")
        #expect(try await redis.send(["ZCARD", "yard:queue:ended"]).int == 0)
        #expect(try await queue.finish(new, worker: "w"))
        #expect(try await redis.send(["HLEN", "yard:queue:ticket"]).int == 0)
        #expect(try await redis.send(["HLEN", "yard:queue:entry"]).int == 0)
        #expect(try await redis.send(["HLEN", "yard:queue:claimed"]).int == 0)
    }

    /// Workers that read the same view race for one group's oldest job: the
    /// one that loses it gets the group's next in the same call (no second
    /// read), never a job another worker holds; a lost takeover (no group)
    /// and an emptied group answer `taken`.
    @Test func aClaimThatLosesItsJobTakesTheNextOfItsGroup() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let queue = RedisJobQueue(redis: redis)
        for id in ["j1", "j2", "j3"] { try await queue.enqueue(id) }
        let view = try await queue.snapshot(takeover: queue.leaseMilliseconds)
        #expect(view.waiting.map(\.ticket.jobID) == ["j1"], "one head per group")
        let group = try #require(view.groups["j1"])
        let entry = try #require(view.entries["j1"])
        #expect(try await queue.claim(worker: "a") == QueueClaim(jobID: "j1", attempt: 1))
        // Claims ranked from the view read before a's claim.
        func stale(_ worker: String, group: String) async throws -> [RESPValue] {
            try await redis.run(Scripts.claim, keys: RedisKeys().queue, arguments: [
                RedisJobQueue.group, worker, "j1", entry, queue.leaseMilliseconds, RedisJobQueue.released,
                String(Date().timeIntervalSince1970), "", group,
            ]).array ?? []
        }
        let b = try await stale("b", group: group)
        #expect(b.first?.string == "job" && b.last?.string == "j2")
        #expect(try await queue.claimant(of: "j2") == "b")
        #expect(try await queue.claimant(of: "j1") == "a", "the job a holds stays a's")
        #expect(try await stale("c", group: "").first?.string == "taken")
        #expect(try await stale("c", group: group).last?.string == "j3")
        #expect(try await stale("d", group: group).first?.string == "taken")
        #expect(try await redis.send(["HLEN", "yard:queue:claimed"]).int == 3)
        #expect(try await queue.claim(worker: "d") == nil)
    }

    /// A queue an older version left (stream entries without tickets, one
    /// released to the placeholder): the released job is claimable at once;
    /// a waiting one joins the order when the new server queues its queued
    /// jobs again (`recover`), keeping its entry, and not twice.
    /// With nothing to rank (one group, no tags or GPU memory asked, no
    /// per-user limit, no claim to take over) a claim is one script; every
    /// case where the order or the worker matters is left to the ranking.
    /// Tickets are written without JSONEncoder; the text must still be
    /// JSONEncoder's, byte for byte (a group's id is the SHA-1 of it, and
    /// jobs queued by an older version keep their group).
    @Test(arguments: [
        QueueTicket(jobID: "j", enqueuedAt: Date(timeIntervalSince1970: 1_765_000_000.123456)),
        QueueTicket(jobID: "j", priority: 9, owner: "ann/\"x\"\\y", experiment: "e\u{0}\u{1}\u{8}\t\n\u{B}\u{C}\r\u{1F} \u{7F}\u{2028}é😀",
                    enqueuedAt: Date(timeIntervalSince1970: 0), resources: JobResources(tags: ["a100", "80gb", "</script>"], gpuMemoryGB: 40)),
        QueueTicket(jobID: "j", owner: "", experiment: "", enqueuedAt: Date(timeIntervalSince1970: 1e-7), resources: JobResources(gpuMemoryGB: 0.5)),
        QueueTicket(jobID: "j", enqueuedAt: Date(timeIntervalSince1970: 1e21), resources: JobResources(tags: [], gpuMemoryGB: 12.25)),
    ])
    func ticketsAreWrittenAsJSONEncoderWritesThem(ticket: QueueTicket) throws {
        let stored = StoredTicket(ticket)
        #expect(stored.json == String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self))
        #expect(stored.group.json == String(decoding: try JSONCoding.encoder.encode(stored.group), as: UTF8.self))
    }

    @Test func aClaimWithNothingToRankTakesTheLoneGroupsOldestAndLeavesTheRestToTheRanking() async throws {
        let server = try await RedisServer()
        let configuration = try server.configuration()
        let submitter = RedisJobQueue(redis: RedisClient(configuration), policy: .default)
        let worker = RedisJobQueue(redis: RedisClient(configuration))
        let redis = RedisClient(configuration)
        #expect(try await worker.claimSole(worker: "w0") == .nothing, "a fresh Redis (no stream yet): nothing waits, no snapshot to read")
        #expect(try await redis.send(["EXISTS", "yard:jobs"]).int == 0, "and polling made no stream")
        try await submitter.enqueue(QueueTicket(jobID: "t1", owner: "ann", resources: JobResources(tags: ["a100"])))
        #expect(try await worker.claimSole(worker: "w0") == .rank, "only the ranking knows the worker's tags")
        #expect(try await worker.claim(worker: "w0") == nil, "w0 has no tags")
        #expect(try await submitter.cancel("t1"))
        #expect(try await worker.claimSole(worker: "w0") == .nothing, "the cancelled job's group is empty")
        #expect(try await redis.send(["HLEN", "yard:queue:groups"]).int == 0, "and is forgotten")

        try await submitter.enqueue(QueueTicket(jobID: "a1", owner: "ann"))
        try await submitter.enqueue(QueueTicket(jobID: "a2", owner: "ann"))
        #expect(try await worker.claimSole(worker: "w1") == .claimed(QueueClaim(jobID: "a1", attempt: 1)))
        try await age("a1", by: 61, holder: "w1", on: server)
        #expect(try await worker.claimSole(worker: "w2") == .rank, "a claim past its lease ranks with the group")
        #expect(try await worker.claim(worker: "w2") == QueueClaim(jobID: "a1", attempt: 2))

        try await RedisJobQueue(redis: RedisClient(configuration), policy: SchedulingPolicy(maxRunningPerUser: 5)).publishPolicy()
        #expect(try await worker.claimSole(worker: "w3") == .rank, "a published per-user limit is checked by the ranking")
        try await submitter.publishPolicy()
        #expect(try await worker.claimSole(worker: "w3") == .claimed(QueueClaim(jobID: "a2", attempt: 1)))

        try await submitter.enqueue(QueueTicket(jobID: "b1", owner: "bob"))
        try await submitter.enqueue(QueueTicket(jobID: "a3", owner: "ann"))
        #expect(try await worker.claimSole(worker: "w4") == .rank, "two groups: fair share decides")
        #expect(try await worker.claim(worker: "w4")?.jobID == "b1", "ann runs two jobs, bob none")
        #expect(try await worker.claim(worker: "w5")?.jobID == "a3")
        #expect(try await worker.claim(worker: "w6") == nil, "nothing waits; the ranking drops the two emptied groups")
        #expect(try await worker.claimSole(worker: "w6") == .nothing)

        // Nothing in any group, but a claim past its lease: that one waits.
        try await age("b1", by: 61, holder: "w4", on: server)
        #expect(try await worker.claimSole(worker: "w7") == .rank)
        #expect(try await worker.claim(worker: "w7") == QueueClaim(jobID: "b1", attempt: 2))
    }

    @Test func jobsQueuedByAnOlderVersionJoinTheOrder() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        try await redis.send(["XGROUP", "CREATE", "yard:jobs", RedisJobQueue.group, "0", "MKSTREAM"])
        var entries: [String: String] = [:]
        for job in ["old-released", "old-waiting"] {
            let entry = try #require(try await redis.send(["XADD", "yard:jobs", "*", "job", job]).string)
            try await redis.send(["HSET", "yard:queue:entry", job, entry])
            entries[job] = entry
        }
        _ = try await redis.send(["XREADGROUP", "GROUP", RedisJobQueue.group, "~released", "COUNT", "1", "STREAMS", "yard:jobs", ">"])
        let queue = RedisJobQueue(redis: redis, policy: .default)
        #expect(try await queue.claim(worker: "w") == QueueClaim(jobID: "old-released", attempt: 1))
        #expect(try await queue.claim(worker: "w") == nil, "not in any group yet")
        try await queue.enqueue(QueueTicket(jobID: "old-waiting", priority: 7))
        try await queue.enqueue(QueueTicket(jobID: "old-waiting", priority: 7))
        #expect(try await redis.send(["HGET", "yard:queue:entry", "old-waiting"]).string == entries["old-waiting"])
        let claim = try #require(try await queue.claim(worker: "w"))
        #expect(claim == QueueClaim(jobID: "old-waiting", attempt: 1))
        #expect(try await queue.claim(worker: "w") == nil)
        #expect(try await queue.release(claim, worker: "w"))
        #expect(try await queue.claim(worker: "v")?.jobID == "old-waiting")
    }
}
