import Foundation
import Logging
import Testing
import YardDomain
import YardJobs
import YardQueue
import YardRedis
import YardStore
import YardTestSupport

/// The worker seam over a real redis-server: a worker's ledger sends its
/// reports on the stream, the server's consumer applies them to the store
/// in order and once each; an attempt that lost its claim is fenced off.
@Suite("Worker seam over Redis")
struct RedisSeamTests {
    struct Setup {
        let server: RedisServer
        let control: JobControl
        let board: RedisJobBoard
        let consumer: ReportConsumer
        let box: SecretBox
        let job: Job

        init(store: any JobStore = MemoryJobStore()) async throws {
            server = try await RedisServer()
            box = try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "test"))
            control = JobControl(store: store, queue: MemoryJobQueue())
            let redis = RedisClient(try server.configuration())
            board = RedisJobBoard(redis: redis, box: box)
            consumer = ReportConsumer(redis: redis, sink: control, logger: Logger(label: "test"))
            let config = try JobConfigParser { _ in true }.parse("""
                task_id: seam1
                model: yolo11n.pt
                train: {data: /d.yaml, epochs: 3}
                minio: {MINIO_ENDPOINT: "http://127.0.0.1:9", MINIO_ID: id, MINIO_SECRET_KEY: s3cr3t-value}
                """)
            job = try await control.submit(config)
            try await board.publish(job, secrets: try await control.store.secrets(of: job.id))
        }

        /// A worker's ledger: its own connection, as on another machine.
        func ledger() throws -> RedisLedger { RedisLedger(redis: RedisClient(try server.configuration()), box: box) }
    }

    @Test func aWorkersReportsReachTheStoreInOrderOnce() async throws {
        let t = try await Setup()
        let ledger = try t.ledger()
        try await ledger.begin(QueueClaim(jobID: "seam1", attempt: 1))
        let running = try await ledger.move("seam1", to: .running, message: "started",
                                            change: JobChange(attemptStarted: .init(worker: "gpu-box", time: Date())))
        #expect(running.attempts == 1)
        for epoch in 1...3 {
            try await ledger.update("seam1", JobChange(epoch: epoch, epochs: 3))
            try await ledger.recordEpoch(EpochRecord(jobID: "seam1", epoch: epoch, metrics: ["metrics/mAP50(B)": Double(epoch) / 10], seconds: 1))
            try await ledger.appendLog(jobID: "seam1", lines: ["epoch \(epoch) line a", "epoch \(epoch) line b"])
            try await ledger.appendEvent(jobID: "seam1", type: "epoch", payload: ["epoch": .int(epoch)])
        }
        try await ledger.move("seam1", to: .succeeded, message: "finished", change: JobChange(bestWeights: "/runs/seam1/weights/best.pt"))
        try await ledger.flush("seam1")
        // Nothing reached the server yet: it was "down".
        #expect(try await t.control.store.job("seam1")?.state == .queued)

        #expect(try await t.consumer.drain() == 14, "1 start, 3 x 4 epoch reports, 1 end")
        let job = try #require(try await t.control.store.job("seam1"))
        #expect(job.state == .succeeded)
        #expect(job.attempts == 1 && job.worker == "gpu-box" && job.epoch == 3)
        #expect(job.bestWeights == "/runs/seam1/weights/best.pt")
        #expect(try await t.control.store.epochs(of: "seam1").map(\.epoch) == [1, 2, 3])
        let lines = try await t.control.store.logs(of: "seam1", after: 0, limit: 100).map(\.line)
        #expect(lines == (1...3).flatMap { ["epoch \($0) line a", "epoch \($0) line b"] })
        let states = try await t.control.store.events(of: "seam1", after: 0, limit: 100).filter { $0.type == "state" }.compactMap { $0.payload["state"]?.stringValue }
        #expect(states == ["queued", "running", "succeeded"])
        #expect(try await t.consumer.drain() == 0, "acknowledged: nothing is applied twice")
    }

    /// A report delivered again (the server died between the store's commit
    /// and the acknowledgement) is skipped.
    @Test func aReportAppliedTwiceCountsOnce() async throws {
        let t = try await Setup()
        let envelopes = [
            ReportEnvelope(jobID: "seam1", attempt: 1, seq: 1, report: .move(state: .running, message: "started",
                                                                              change: JobChange(attemptStarted: .init(worker: "w", time: Date())), time: Date())),
            ReportEnvelope(jobID: "seam1", attempt: 1, seq: 2, report: .logs(["once"])),
            ReportEnvelope(jobID: "seam1", attempt: 1, seq: 3, report: .event(type: "progress", payload: ["batch": 1])),
        ]
        for envelope in envelopes + envelopes { try await t.control.apply([envelope]) }
        #expect(try await t.control.store.logs(of: "seam1", after: 0, limit: 10).map(\.line) == ["once"])
        #expect(try await t.control.store.events(of: "seam1", after: 0, limit: 10).filter { $0.type == "progress" }.count == 1)
        #expect(try await t.control.store.job("seam1")?.attempts == 1)
    }

    /// The same reports applied by two consumers at once (a server
    /// restarting while the old one still drains) are stored once each:
    /// the check, the record and the mark share one transaction.
    @Test func theSameReportsAppliedConcurrentlyAreStoredOnce() async throws {
        let t = try await Setup(store: SQLiteJobStore(database: try YardDatabase()))
        try await t.control.apply([ReportEnvelope(jobID: "seam1", attempt: 1, seq: 1, report: .move(
            state: .running, message: "started", change: JobChange(attemptStarted: .init(worker: "w", time: Date())), time: Date()))])
        let envelopes = (2...41).map { ReportEnvelope(jobID: "seam1", attempt: 1, seq: $0, report: .logs(["line \($0)"])) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask { for envelope in envelopes { try await t.control.apply([envelope]) } }
            }
            try await group.waitForAll()
        }
        #expect(try await t.control.store.logs(of: "seam1", after: 0, limit: 100).map(\.line) == (2...41).map { "line \($0)" })
    }

    /// What a remote worker's tracking spool learns, often after the
    /// attempt ended (MLflow synced), reaches the server: `yard show` says
    /// synced and the registry can mirror a version to the run. A note of
    /// an attempt that lost the job is dropped.
    @Test func aRemoteJobsTrackingStateReachesTheServer() async throws {
        let t = try await Setup()
        let ledger = try t.ledger()
        try await ledger.begin(QueueClaim(jobID: "seam1", attempt: 1))
        try await ledger.move("seam1", to: .running, message: "started", change: JobChange(attemptStarted: .init(worker: "w", time: Date())))
        ledger.note("seam1", .tracking(status: "pending", runID: "run-1", error: "MLflow unreachable"))
        _ = try await ledger.move("seam1", to: .succeeded, message: "finished", change: JobChange(fitness: 0.5))
        await ledger.end("seam1")
        #expect(try await ledger.job("seam1")?.fitness == 0.5, "the last copy stays readable for the registration")
        ledger.note("seam1", .tracking(status: "synced", runID: "run-1", error: nil))
        ledger.note("seam1", .tracking(status: "synced", runID: "run-1", error: nil))
        try await ledger.flush("seam1")
        #expect(try await t.consumer.drain() == 4, "start, pending, end, synced (once)")

        let job = try #require(try await t.control.store.job("seam1"))
        #expect(job.state == .succeeded)
        #expect(job.tracking == "synced" && job.trackingError == nil && job.mlflowRunID == "run-1")

        try await t.control.apply([ReportEnvelope(jobID: "seam1", attempt: 2, seq: 1, report: .logs(["attempt 2 holds the job"]))])
        try await t.control.apply([ReportEnvelope(jobID: "seam1", attempt: 1, seq: 0, report: .tracking(status: "pending", runID: "run-old", error: "stale"))])
        #expect(try await t.control.store.job("seam1")?.mlflowRunID == "run-1", "attempt 1's late note is dropped")
    }

    /// A remote trial pruned by the server: its worker only sees a stop and
    /// reports `stopped`; the server records `pruned` with the reason.
    @Test func aRemoteTrialsStopEndsItPrunedOnTheServer() async throws {
        let t = try await Setup()
        let ledger = try t.ledger()
        try await ledger.begin(QueueClaim(jobID: "seam1", attempt: 1))
        try await ledger.move("seam1", to: .running, message: "started", change: JobChange(attemptStarted: .init(worker: "w", time: Date())))
        try await ledger.flush("seam1")
        try await t.consumer.drain()
        _ = try await t.control.store.update("seam1") { $0.pruning = "pruned at epoch 3" }
        try await ledger.move("seam1", to: .stopping, message: "stop requested")
        try await ledger.move("seam1", to: .stopped, message: "stopped after epoch 3; `yard resume seam1` continues it")
        try await ledger.flush("seam1")
        try await t.consumer.drain()
        let job = try #require(try await t.control.store.job("seam1"))
        #expect(job.state == .pruned && job.message == "pruned at epoch 3")
    }

    /// Attempt 1's worker was cut off; attempt 2 took the job over. What
    /// attempt 1 still sends is dropped: one job, one final result.
    @Test func aWorkerThatLostItsClaimIsFencedOff() async throws {
        let t = try await Setup()
        let old = try t.ledger(), new = try t.ledger()
        try await old.begin(QueueClaim(jobID: "seam1", attempt: 1))
        try await old.move("seam1", to: .running, message: "started", change: JobChange(attemptStarted: .init(worker: "old", time: Date())))
        try await old.appendLog(jobID: "seam1", lines: ["old 1"])
        try await old.flush("seam1")
        try await t.consumer.drain()

        try await new.begin(QueueClaim(jobID: "seam1", attempt: 2))
        try await new.move("seam1", to: .running, message: "taken over", change: JobChange(attemptStarted: .init(worker: "new", time: Date())))
        // Each ledger sends in its own order: the takeover is on the stream before what the old one still sends.
        try await new.flush("seam1")
        try await old.appendLog(jobID: "seam1", lines: ["old 2 (stale)"])
        try await new.appendLog(jobID: "seam1", lines: ["new 1"])
        try await old.move("seam1", to: .failed, message: "the old worker's late verdict")
        try await new.move("seam1", to: .succeeded, message: "finished")
        try await old.flush("seam1")
        try await new.flush("seam1")
        try await t.consumer.drain()

        let job = try #require(try await t.control.store.job("seam1"))
        #expect(job.state == .succeeded)
        #expect(job.worker == "new")
        #expect(job.attempts == 2)
        #expect(try await t.control.store.logs(of: "seam1", after: 0, limit: 10).map(\.line) == ["old 1", "new 1"])
    }

    @Test func secretsTravelSealedAndAStopFlagReachesTheWorker() async throws {
        let t = try await Setup()
        let raw = try await RedisClient(try t.server.configuration()).send(["HGETALL", "yard:job:seam1"])
        let dump = raw.array?.compactMap(\.string).joined(separator: " ") ?? ""
        #expect(dump.contains("seam1"))
        #expect(!dump.contains("s3cr3t-value"), "no plaintext secret in Redis")
        let ledger = try t.ledger()
        let secrets = try await ledger.secrets(of: "seam1")
        #expect(secrets.values.contains(.string("s3cr3t-value")), "the worker opens them: \(secrets.keys)")
        try await ledger.begin(QueueClaim(jobID: "seam1", attempt: 1))
        try await ledger.move("seam1", to: .running, message: "started")
        #expect(try await ledger.job("seam1")?.state == .running)
        try await t.board.flagStop("seam1")
        #expect(try await ledger.job("seam1")?.state == .stopping)
        try await ledger.move("seam1", to: .stopped, message: "stopped after epoch 0")
        try await ledger.flush("seam1")
        try await t.consumer.drain()
        #expect(try await t.control.store.job("seam1")?.state == .stopped)
    }
}

/// A worker renews its claim while the job runs; when another worker has
/// taken the job over (this one was cut off past the lease), it kills its
/// engine and records nothing more.
@Suite("Worker heartbeat")
struct WorkerHeartbeatTests {
    @Test func aWorkerWhoseClaimWasTakenOverStopsItsEngineAndRecordsNothing() async throws {
        let server = try await RedisServer()
        let queue = RedisJobQueue(redis: RedisClient(try server.configuration()), lease: .seconds(60))
        let t = try TestYard(queue: queue)
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: hb1", epochs: 400)))
        let worker = t.worker(.training(epochs: 400, stepDelay: .milliseconds(20))) { $0.heartbeat = .milliseconds(100) }
        let task = worker.start()
        defer { task.cancel() }
        try await eventually("the job trains") { (try await t.yard.control.store.job("hb1"))?.epoch ?? 0 >= 2 }

        // Another machine takes it over: the entry looks idle past the lease, as
        // if this worker had been cut off, and the other worker claims it.
        let redis = RedisClient(try server.configuration())
        let entry = try #require(try await redis.send(["HGET", "yard:queue:entry", "hb1"]).string)
        let holder = try #require(try await queue.claimant(of: "hb1"))
        let other = RedisJobQueue(redis: RedisClient(try server.configuration()), lease: .seconds(60))
        var takeover: QueueClaim?
        // A renewal landing between the ageing and the claim resets the idle
        // time (the worker is alive after all); age it again and retry.
        try await eventually("another worker takes the job over") {
            try await redis.send(["XCLAIM", "yard:jobs", RedisJobQueue.group, holder, "0", entry, "IDLE", "61000", "JUSTID"])
            takeover = try await other.claim(worker: "other")
            return takeover != nil
        }
        #expect(takeover == QueueClaim(jobID: "hb1", attempt: 2))

        // Without the heartbeat the engine goes on at ~16 epochs a second.
        try await eventually("the old engine stops recording epochs", timeout: .seconds(10)) {
            let epoch = try await t.yard.control.store.job("hb1")?.epoch
            try await Task.sleep(for: .milliseconds(300))
            return try await t.yard.control.store.job("hb1")?.epoch == epoch
        }
        let before = try #require(try await t.yard.control.store.job("hb1"))
        try await Task.sleep(for: .milliseconds(600))
        let after = try #require(try await t.yard.control.store.job("hb1"))
        #expect(after.epoch == before.epoch, "the old engine was stopped: no more epochs recorded")
        #expect((after.epoch ?? 0) < 400)
        #expect(after.state == .running, "the old attempt recorded no end; the new holder will")
        #expect(try await queue.claimant(of: "hb1") == "other")
    }
}

extension WorkerHeartbeatTests {
    /// A worker whose job was taken over and that ends before its next
    /// heartbeat (none here) must not take the new attempt's entry out of
    /// the queue: its completion is fenced by its claim.
    @Test func aStaleWorkerThatFinishesCannotCompleteTheNewAttempt() async throws {
        let server = try await RedisServer()
        let queue = RedisJobQueue(redis: RedisClient(try server.configuration()), lease: .seconds(60))
        let t = try TestYard(queue: queue)
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: hb2", epochs: 30)))
        let worker = t.worker(.training(epochs: 30, stepDelay: .milliseconds(20))) { $0.heartbeat = .seconds(1000) }
        let task = worker.start()
        defer { task.cancel() }
        try await eventually("the job trains") { (try await t.yard.control.store.job("hb2"))?.epoch ?? 0 >= 1 }
        let redis = RedisClient(try server.configuration())
        let entry = try #require(try await redis.send(["HGET", "yard:queue:entry", "hb2"]).string)
        let holder = try #require(try await queue.claimant(of: "hb2"))
        try await redis.send(["XCLAIM", "yard:jobs", RedisJobQueue.group, holder, "0", entry, "IDLE", "61000", "JUSTID"])
        let other = RedisJobQueue(redis: RedisClient(try server.configuration()), lease: .seconds(60))
        let takeover = try #require(try await other.claim(worker: "other"))
        #expect(takeover.attempt == 2)
        try await eventually("the stale worker's training ends", timeout: .seconds(20)) {
            (try await t.yard.control.store.job("hb2"))?.epoch == 30
        }
        try await eventually("the stale worker lets go of the job", timeout: .seconds(20)) { worker.worker.currentJobs.isEmpty }
        // Before it settles, the worker asks whether it still holds the job:
        // it does not, so it records no end (the new holder will).
        #expect(try await t.yard.control.store.job("hb2")?.state == .running)
        #expect(try await queue.claimant(of: "hb2") == "other", "the new attempt still holds its entry")
        #expect(try await other.finish(takeover, worker: "other"))
    }
}
