import Foundation
import Synchronization
import YardQueue
import YardRedis

/// bench/redis_queue.sh: the Redis queue path, no engine. Workers claim and
/// finish jobs as fast as they come; measured are jobs/s with everything
/// queued up front (throughput) and enqueue-to-claim latency with jobs
/// arriving at a steady rate to idle, waiting workers (dispatch). The
/// baseline, in the same run on the same server: bare XADD / XREADGROUP /
/// XACK round trips, one job at a time per loop.
enum QueueBench {
    static func run(url: String, jobs: Int, external: Double?) async throws {
        let configuration = try RedisConfiguration(url: url)
        let admin = RedisClient(configuration)
        say("redis queue benchmark: \(jobs) jobs per run, \(configuration)")
        say(String(repeating: "-", count: 78))
        var raw: [Int: Double] = [:]
        for loops in [1, 4] {
            try await admin.send(["FLUSHDB"])
            raw[loops] = try await rawRoundTrips(RedisClient(configuration), loops: loops, jobs: jobs)
            say(String(format: "baseline XADD+XREADGROUP+XACK, %d loop(s): %8.0f jobs/s", loops, raw[loops]!))
        }
        for workers in [1, 4] {
            try await admin.send(["FLUSHDB"])
            let queue = RedisJobQueue(redis: RedisClient(configuration), keys: RedisKeys(prefix: "bench"))
            let rate = try await throughput(queue, workers: workers, jobs: jobs)
            try await admin.send(["FLUSHDB"])
            let idle = RedisJobQueue(redis: RedisClient(configuration), keys: RedisKeys(prefix: "bench"))
            let (p50, p99) = try await dispatch(idle, workers: workers, jobs: min(jobs, 2000))
            say(String(format: "RedisJobQueue, %d worker(s): %8.0f jobs/s (%.2f x baseline)   dispatch p50 %.2f ms  p99 %.2f ms",
                         workers, rate, rate / raw[workers]!, p50, p99))
            if workers == 4, let external {
                say(String(format: "RedisJobQueue, 4 workers vs redis-benchmark's %.0f jobs/s: %.2f x", external, rate / external))
            }
        }
        say("targets: >= 5000 jobs/s with 4 workers, p50 dispatch <= 2 ms, >= 0.5 x baseline")
        say(String(repeating: "-", count: 78))
        say("whole path (server store, workers' ledgers, reports applied; no-op engine in process): \(min(jobs, 2000)) jobs per run")
        for workers in [1, 4] {
            try await EventPathBench.run(url: url, jobs: min(jobs, 2000), workers: workers, baseline: raw[workers]!)
        }
    }

    /// One job per trip: XADD, XREADGROUP (one entry), XACK; `loops` of them at once.
    static func rawRoundTrips(_ redis: RedisClient, loops: Int, jobs: Int) async throws -> Double {
        try await redis.send(["XGROUP", "CREATE", "raw", "g", "0", "MKSTREAM"])
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for loop in 0..<loops {
                group.addTask {
                    for _ in 0..<(jobs / loops) {
                        try await redis.send(["XADD", "raw", "*", "job", "x"])
                        let read = try await redis.send(["XREADGROUP", "GROUP", "g", "c\(loop)", "COUNT", "1", "STREAMS", "raw", ">"])
                        guard let id = read.array?.first?.array?[1].array?.first?.array?.first?.string else { continue }
                        try await redis.send(["XACK", "raw", "g", id])
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(jobs / loops * loops) / seconds(ContinuousClock.now - started)
    }

    /// All jobs queued while `workers` claim and finish them.
    static func throughput(_ queue: RedisJobQueue, workers: Int, jobs: Int) async throws -> Double {
        final class Counter: Sendable { let value = Atomic<Int>(0) }
        let done = Counter()
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withThrowingTaskGroup(of: Void.self) { producers in
                    for p in 0..<4 {
                        producers.addTask { for i in stride(from: p, to: jobs, by: 4) { try await queue.enqueue("t\(i)") } }
                    }
                    try await producers.waitForAll()
                }
            }
            for w in 0..<workers {
                group.addTask {
                    while done.value.load(ordering: .relaxed) < jobs {
                        if let claim = try await queue.claim(worker: "w\(w)") {
                            _ = try await queue.finish(claim, worker: "w\(w)")
                            done.value.add(1, ordering: .relaxed)
                        } else {
                            await queue.waitForWork(timeout: .milliseconds(50))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(jobs) / seconds(ContinuousClock.now - started)
    }

    /// Jobs enqueued one every 2 ms to workers that wait for work; the time
    /// from enqueue to claim. Returns p50 and p99 in ms.
    static func dispatch(_ queue: RedisJobQueue, workers: Int, jobs: Int) async throws -> (Double, Double) {
        final class Record: Sendable {
            let enqueued = Mutex<[String: ContinuousClock.Instant]>([:])
            let latencies = Mutex<[Duration]>([])
        }
        let record = Record()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    while record.latencies.withLock({ $0.count }) < jobs {
                        if let claim = try await queue.claim(worker: "w\(w)") {
                            let now = ContinuousClock.now
                            if let at = record.enqueued.withLock({ $0[claim.jobID] }) { record.latencies.withLock { $0.append(now - at) } }
                            _ = try await queue.finish(claim, worker: "w\(w)")
                        } else {
                            await queue.waitForWork(timeout: .milliseconds(200))
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(200))  // workers are waiting
            for i in 0..<jobs {
                let id = "d\(i)"
                record.enqueued.withLock { $0[id] = .now }
                try await queue.enqueue(id)
                try await Task.sleep(for: .milliseconds(2))
            }
            try await group.waitForAll()
        }
        let sorted = record.latencies.withLock { $0 }.sorted()
        func ms(_ q: Double) -> Double { seconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) * 1000 }
        return (ms(0.5), ms(0.99))
    }

    /// Unbuffered, so a long run shows its progress.
    static func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    static func seconds(_ d: Duration) -> Double { d.timeInterval }
}
