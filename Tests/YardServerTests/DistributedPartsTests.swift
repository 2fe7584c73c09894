import Foundation
import Logging
import Synchronization
import Testing
import YardArtifacts
import YardDomain
import YardJobs
import YardEngine
import YardQueue
import YardRedis
import YardStore
import YardTestSupport
import YardTracker
import YardWorker

/// The parts `yard server --redis` and `yard worker` add, each against a
/// real redis-server: the board, the worker registry with GPU stats, the
/// wyolo keys and the wyolo bridge.
@Suite("Distributed parts")
struct DistributedPartsTests {
    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    static func box() throws -> SecretBox { try SecretBox(keys: SecretBox.parseKeys(SecretBox.newKey(), source: "test")) }

    @Test func submitPublishesTheJobWithItsSecretsSealedAndStopFlagsIt() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
        let t = try TestYard(queue: queue)
        defer { t.dir.remove() }
        let box = try Self.box()
        let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: box))
        let job = try await control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: b1\nminio: {MINIO_SECRET_KEY: hunter2-secret}\n")))

        let stored = try await redis.send(["HGETALL", "yard:job:b1"]).array?.compactMap(\.string) ?? []
        #expect(stored.contains("record") && stored.contains("secrets"))
        #expect(!stored.joined().contains("hunter2-secret"), "no secret in plain text in Redis")
        let ledger = RedisLedger(redis: redis, box: box)
        #expect(try await ledger.secrets(of: "b1").values.contains(.string("hunter2-secret")), "the worker opens them with the shared key")
        #expect(try await ledger.job("b1")?.id == job.id)

        // Claimed but not yet reported running: the stop is flagged for its worker.
        let claim = try #require(try await queue.claim(worker: "w"))
        try await ledger.begin(claim)
        _ = try await ledger.move("b1", to: .running)
        #expect(try await control.stop("b1").state == .stopping)
        #expect(try await redis.send(["HGET", "yard:job:b1", "stop"]).string == "1")
        #expect(try await ledger.job("b1")?.state == .stopping, "the worker sees the stop")
    }

    /// Redis goes away mid-training for longer than any retry: recording
    /// neither waits nor fails (before the outbox, a report was retried for
    /// about 30 s and then failed the attempt); a flush says the reports
    /// are not there yet; once Redis is back they arrive, in order, once.
    @Test func reportsWaitOutARedisOutageInOrder() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration(), backoff: [.milliseconds(50)])
        let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
        let t = try TestYard(queue: queue)
        defer { t.dir.remove() }
        let box = try Self.box()
        let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: box))
        _ = try await control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: o1")))
        let ledger = RedisLedger(redis: redis, box: box, flushTimeout: .milliseconds(200))
        try await ledger.begin(try #require(try await queue.claim(worker: "w")))
        _ = try await ledger.move("o1", to: .running)
        // The flush timeout is short for the outage below; a loaded machine
        // may need more than one for the first send (a new connection).
        try await eventually("the start reaches Redis", timeout: .seconds(20)) { (try? await ledger.flush("o1")) != nil }

        try await server.stop()
        let recording = Task {
            for epoch in 1...3 {
                try await ledger.update("o1", JobChange(epoch: epoch, epochs: 3))
                try await ledger.recordEpoch(EpochRecord(jobID: "o1", epoch: epoch, metrics: ["m": Double(epoch)], seconds: 1))
                try await ledger.appendLog(jobID: "o1", lines: ["during the outage \(epoch)"])
            }
        }
        // Not a timing bound: the old ledger was still retrying its first report here.
        try await eventually("the reports are recorded while Redis is down", timeout: .seconds(10)) { ledger.waitingReports == 9 }
        try await recording.value
        await #expect(throws: YardError.self, "a flush cannot succeed while Redis is down") { try await ledger.flush("o1") }

        try await server.start()
        try await eventually("the reports reach Redis", timeout: .seconds(20)) { (try? await ledger.flush("o1")) != nil }
        let seqs = try await redis.send(["XRANGE", "yard:reports", "-", "+"]).array?.compactMap { entry -> Int? in
            let fields = entry.array?[1].array?.compactMap(\.string) ?? []
            return fields.firstIndex(of: "seq").flatMap { Int(fields[$0 + 1]) }
        }
        #expect(seqs == Array(1...10), "the start and nine outage reports, in order, once each")
    }

    /// Issue 26 (7): Redis stopped across a remote job's end. Keeping a
    /// file read the job's stop flag from Redis first, threw, and the
    /// artifact records (and the log's) were never queued: the job ended
    /// with none. Now everything the end reports waits in the outbox, and
    /// the job lists the same artifacts as one that ended with Redis up.
    @Test func aRemoteJobThatEndsWhileRedisIsDownKeepsItsArtifacts() async throws {
        let r = try await Remote(runner: GatedEngine())
        defer { r.remove() }
        let parser = JobConfigParser { _ in true }

        _ = try await r.control.submit(try parser.parse(r.t.config("task_id: n1", epochs: 2)))
        let normal = try await r.engine.started(1)
        try normal.train(epochs: 2)
        try normal.end()
        #expect(try await r.settled("n1").state == .succeeded)

        _ = try await r.control.submit(try parser.parse(r.t.config("task_id: o1", epochs: 2)))
        let outage = try await r.engine.started(2)
        try outage.train(epochs: 2)
        try await r.applied("o1", "the epochs reach the server") { $0.epoch == 2 }
        try await r.server.stop()
        try outage.end()
        // The end came while Redis was down: the worker keeps how the job ended and retries.
        try await eventually("the worker holds the job's end", timeout: .seconds(20)) { r.worker.unsettledJobs == ["o1"] }
        try await r.server.start()

        let job = try await r.settled("o1", timeout: .seconds(60))
        #expect(job.state == .succeeded && job.bestWeights?.hasSuffix("/o1/weights/best.pt") == true, "\(job.state) \(job.message ?? "")")
        func listed(_ id: String) async throws -> [String] {
            try await r.t.yard.store.artifacts(of: id).map { "\($0.kind) \($0.key.dropFirst(id.count + 1))" }.sorted()
        }
        #expect(try await listed("n1") == ["log train.log", "results results.csv", "weights weights/best.pt"])
        #expect(try await listed("o1") == listed("n1"), "the same artifacts as the job that ended with Redis up")
        let lines = try await r.t.yard.store.logs(of: "o1", after: 0, limit: 100).map(\.line)
        #expect(!lines.contains { $0.contains("failed") }, "\(lines)")
        #expect(try await r.t.yard.store.events(of: "o1", after: 0, limit: 100).filter { $0.type == "state" }
            .compactMap { $0.payload["state"]?.stringValue } == ["queued", "running", "succeeded"])
        #expect(try await r.t.yard.store.events(of: "o1", after: 0, limit: 100).filter { $0.type == "artifact" }.count == 2)
    }

    /// Issue 26 (10): a job without secrets needs no key. A worker whose key
    /// is not the server's runs it; a job with secrets fails with a line
    /// naming both keys (before: every job failed, secrets or not).
    @Test func aWorkerWithAnotherKeyRunsJobsWithoutSecretsAndNamesBothKeysForOneWithSecrets() async throws {
        let other = try Self.box()
        let r = try await Remote(runner: ScriptedEngineRunner.training(epochs: 2), workerBox: other)
        defer { r.remove() }
        let parser = JobConfigParser { _ in true }
        _ = try await r.control.submit(try parser.parse(r.t.config("task_id: plain1", epochs: 2)))
        let plain = try await r.settled("plain1")
        #expect(plain.state == .succeeded, "\(plain.message ?? "")")
        #expect(try await r.t.yard.store.epochs(of: "plain1").map(\.epoch) == [1, 2])

        _ = try await r.control.submit(try parser.parse(r.t.config("task_id: sealed1\nminio: {MINIO_ENDPOINT: http://127.0.0.1:9, MINIO_ID: id, MINIO_SECRET_KEY: s3cr3t-value}\n", epochs: 2)))
        let sealed = try await r.settled("sealed1")
        let message = sealed.message ?? ""
        #expect(sealed.state == .failed)
        #expect(message.contains(r.box.keys[0].id) && message.contains(other.keys[0].id), "\(message)")
        #expect(message.contains("secret.key") && !message.contains("\n") && !message.contains("s3cr3t-value"), "\(message)")
    }

    /// Issue 26 (10): the server says which key seals job secrets when it
    /// starts (and with each job it publishes); a worker whose keys do not
    /// include it refuses to start, on one line naming both key ids.
    @Test func aWorkerChecksItsKeyAgainstTheServersWhenItStarts() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
        let t = try TestYard(queue: queue)
        defer { t.dir.remove() }
        let box = try Self.box(), wrong = try Self.box()
        #expect(try await WorkerNode.checkKey(wrong, source: "/w/worker.key", redis: redis).contains("not announced"),
                "an older server says nothing: the jobs with secrets say it")

        let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: box))
        try await control.recover()  // the server's start-up
        #expect(try await redis.send(["GET", "yard:secret-key"]).string == box.keys[0].id)
        do {
            _ = try await WorkerNode.checkKey(wrong, source: "/w/worker.key", redis: redis)
            Issue.record("a worker with another key started")
        } catch let error as YardError {
            #expect(error.message.contains(box.keys[0].id) && error.message.contains(wrong.keys[0].id), "\(error.message)")
            #expect(error.message.contains("--secret-key-file /w/worker.key") && !error.message.contains("\n"), "\(error.message)")
        }
        #expect(try await WorkerNode.checkKey(box, source: "YARD_SECRET_KEY", redis: redis).contains(box.keys[0].id))
        // A keyring holding the server's key among others (a rotation under way) opens its secrets.
        let ring = try SecretBox(keys: wrong.keys + box.keys)
        #expect(try await WorkerNode.checkKey(ring, source: "YARD_SECRET_KEY", redis: redis).contains(box.keys[0].id))
    }

    @Test func aServersStartUpLeavesRunningJobsToTheirWorkersAndRepublishesQueuedOnes() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
        let t = try TestYard(queue: queue)
        defer { t.dir.remove() }
        let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: try Self.box()))
        let parser = JobConfigParser { _ in true }
        _ = try await control.submit(try parser.parse(t.config("task_id: r1")))
        _ = try await control.submit(try parser.parse(t.config("task_id: r2")))
        let claim = try #require(try await queue.claim(worker: "elsewhere"))
        try await control.move(claim.jobID, to: .running)
        // Redis lost the queued job (a restart without its file).
        let waiting = claim.jobID == "r1" ? "r2" : "r1"
        _ = try await queue.cancel(waiting)
        _ = try await redis.send(["DEL", "yard:job:\(waiting)"])

        let queued = try await control.recover()
        #expect(queued == [waiting])
        #expect(try await t.yard.store.job(claim.jobID)?.state == .running, "the running job is its worker's")
        #expect(try await queue.claimant(of: claim.jobID) == "elsewhere")
        #expect(try await redis.send(["HEXISTS", "yard:job:\(waiting)", "record"]).int == 1)
        #expect(try await queue.claim(worker: "next")?.jobID == waiting)
    }

    /// Two real workers on "two machines" with different tags (`yard
    /// worker --tags`), announcing themselves, on one real redis-server:
    /// each submitted job runs on the worker that has its tags, under a
    /// server policy they read from Redis; a job for a GPU no worker has
    /// stays queued and says why.
    @Test func jobsRunOnTheWorkerWithTheirTags() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration(), backoff: [.milliseconds(50)])
        let queue = RedisJobQueue(redis: redis, lease: .seconds(60), policy: SchedulingPolicy(maxRunningPerUser: 5))
        let t = try TestYard(queue: queue)
        defer { t.dir.remove() }
        let box = try Self.box()
        let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: box))
        let consumer = ReportConsumer(redis: redis, sink: control, logger: Self.quiet)
        var tasks: [Task<Void, any Error>] = []
        var folders: [TemporaryDirectory] = []
        defer {
            for task in tasks { task.cancel() }
            for folder in folders { folder.remove() }
        }
        for (id, tags) in [("box-a100", ["a100", "80gb"]), ("box-cpu", ["cpu"])] {
            let own = RedisClient(try server.configuration(), backoff: [.milliseconds(50)])
            let ledger = RedisLedger(redis: own, box: box, flushTimeout: .milliseconds(300))
            let folder = try TemporaryDirectory("yard-tagged-worker")
            folders.append(folder)
            var configuration = Worker.Configuration(id: id, dataDirectory: folder.path, stopGrace: .seconds(2), settleBackoff: [.milliseconds(20)])
            configuration.tags = tags
            let worker = Worker(configuration: configuration, ledger: ledger, queue: RedisJobQueue(redis: own, lease: .seconds(60)),
                                runner: ScriptedEngineRunner.training(epochs: 1), trackers: [StoreTracker(records: ledger)],
                                artifacts: LocalArtifactStore(root: folder.file("artifacts")), logger: Self.quiet)
            var info = WorkerInfo(id: id, host: "h", pid: 1, device: "cpu", startedAt: Date(), leaseSeconds: 60)
            info.tags = tags
            let presence = WorkerPresence(registry: RedisWorkerRegistry(redis: own), entries: [.init(worker: worker, info: info)],
                                          interval: .milliseconds(200), nvidiaSMI: nil, logger: Self.quiet)
            tasks.append(Task { try await presence.run() })
            tasks.append(Task { try await worker.run() })
        }
        let parser = JobConfigParser { _ in true }
        let expected = ["g1": "box-a100", "c1": "box-cpu", "g2": "box-a100", "c2": "box-cpu", "both": "box-a100"]
        let resources = ["g1": "{tags: [a100]}", "c1": "{tags: [cpu]}", "g2": "{tags: [80GB]}", "c2": "{tags: cpu}", "both": "{tags: [a100, 80gb]}"]
        for id in expected.keys.sorted() {
            _ = try await control.submit(try parser.parse(t.config("task_id: \(id)\nresources: \(resources[id]!)\n", epochs: 1)))
        }
        _ = try await control.submit(try parser.parse(t.config("task_id: h100\nresources: {tags: [h100]}\n", epochs: 1)))
        for (id, worker) in expected {
            try await eventually("\(id) ends", timeout: .seconds(30)) {
                _ = try? await consumer.drain()
                return try await t.yard.store.job(id)?.state.isTerminal == true
            }
            let job = try #require(try await t.yard.store.job(id))
            #expect(job.state == .succeeded, "\(id): \(job.message ?? "")")
            #expect(job.worker == worker, "\(id) ran on \(job.worker ?? "nothing")")
        }
        try await eventually("both workers announced", timeout: .seconds(10)) {
            try await RedisWorkerRegistry(redis: redis).workers().count == 2
        }
        #expect(try await t.yard.store.job("h100")?.state == .queued)
        #expect(try await queue.waitingReason(of: "h100") == "waiting: no worker has tags h100")
        #expect(try await queue.claimant(of: "h100") == nil)
    }

    @Test func workersAnnounceThemselvesWithTheirGPUAndAreMarkedLostWhenSilent() async throws {
        let server = try await RedisServer()
        let redis = RedisClient(try server.configuration())
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let smi = try dir.write("bin/nvidia-smi", """
            #!/bin/sh
            echo "0, GPU-aaaa, NVIDIA A100-SXM4-40GB, 40960, 1024, 55, 61"
            echo "1, GPU-bbbb, NVIDIA A100-SXM4-40GB, 40960, 0, 0, 30"
            """)
        chmod(smi, 0o755)
        let t = try TestYard()
        defer { t.dir.remove() }
        let worker = t.worker(.training(epochs: 1)).worker
        let registry = RedisWorkerRegistry(redis: redis)
        let readings = GPUReadings()
        var info = WorkerInfo(id: "gpu-box-1", host: "gpu-box", pid: 42, device: "cuda:1", startedAt: Date())
        info.versions = ["torch": "2.9.0"]
        let presence = WorkerPresence(registry: registry, entries: [.init(worker: worker, info: info, gpu: 1)], interval: .seconds(2),
                                      nvidiaSMI: NvidiaSMI(searchPath: dir.file("bin")), readings: readings, logger: Self.quiet)
        try await presence.announce()
        let listed = try await registry.workers()
        #expect(listed.count == 1)
        #expect(listed.first?.status == .idle)
        #expect(listed.first?.gpus == [GPUStats(index: 1, uuid: "GPU-bbbb", name: "NVIDIA A100-SXM4-40GB", memoryTotalMiB: 40960, memoryUsedMiB: 0,
                                                utilizationPercent: 0, temperatureC: 30)], "only its own GPU")
        #expect(readings.current.count == 2)

        // No heartbeat for three intervals: lost (seen from 7 s on, no sleeping).
        let announced = try #require(listed.first)
        #expect(announced.seen(at: announced.heartbeatAt.addingTimeInterval(5)).status == .idle)
        #expect(announced.seen(at: announced.heartbeatAt.addingTimeInterval(7)).status == .lost)
        // Long lost: forgotten (a registry that forgets what expired 10 s ago "now").
        let forgetful = RedisWorkerRegistry(redis: redis, forgetAfter: -10)
        #expect(try await forgetful.workers().isEmpty)
        #expect(try await redis.send(["HLEN", "yard:workers"]).int == 0)
    }

    /// A worker's job shows in the registry when it starts and is gone when
    /// it ends, not a heartbeat later (here the interval is a minute).
    @Test func theRegistryFollowsAWorkersJobAtOnce() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: live1", epochs: 6)))
        let handle = t.worker(ScriptedEngineRunner.training(epochs: 6, stepDelay: .milliseconds(100)))
        let registry = MemoryWorkerRegistry()
        let presence = WorkerPresence(registry: registry, entries: [.init(worker: handle.worker, info: WorkerInfo(id: "w", host: "h", pid: 1, device: "cpu", startedAt: Date()))],
                                      interval: .seconds(60), nvidiaSMI: nil, logger: Self.quiet)
        let beats = Task { try await presence.run() }
        defer { beats.cancel() }
        let drain = Task { try await handle.drain() }
        try await eventually("the job shows", timeout: .seconds(5)) { try await registry.workers().first?.job == "live1" }
        try await drain.value
        try await eventually("the job is gone", timeout: .seconds(5)) {
            let listed = try await registry.workers().first
            return listed != nil && listed?.job == nil
        }
    }

    @Test func wyolosProgressFieldsFollowItsNamesAndUnits() throws {
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntask_id: p1\ntrain: {data: /d.yaml, epochs: 10}\nsweeper: {n_trials: 4}\n")
            .withMetadata("trial_number", .int(3))
        let job = Job(id: "p1", config: config, redacted: config.json, createdAt: Date())
        let gpu = GPUStats(index: 0, uuid: "GPU-1", name: "NVIDIA L4", memoryTotalMiB: 23034, memoryUsedMiB: 2034, utilizationPercent: 97, temperatureC: 70)
        let fields = try #require(Wyolo.progress(job: job, kind: "progress", payload: ["epoch": 3, "epochs": 10, "batch": 5, "batches": 20, "elapsed": 50.0],
                                                 gpus: [gpu], now: Date(timeIntervalSince1970: 1_795_000_000.25)))
        #expect(fields["EPOCH"] == "3" && fields["TOTAL_EPOCHS"] == "10")
        #expect(fields["EPOCH_PROGRESS"] == "0.25")
        #expect(fields["TRIAL_PROGRESS"] == "0.225")
        #expect(fields["TRIAL_NUMBER"] == "3" && fields["TOTAL_TRIALS"] == "4")
        #expect(fields["elapsed_time"] == "50.000" && fields["result_time"] == "222.222")
        #expect(fields["datetime"] == "2026-11-18T11:06:40.250000")
        #expect(fields["gpu_0_name"] == "NVIDIA L4" && fields["gpu_0_memoryFree"] == "21000" && fields["gpu_0_load"] == "97")
        #expect(Wyolo.progress(job: job, kind: "log", payload: ["line": "x"], gpus: [], now: Date()) == nil)
        #expect(Wyolo.resultTopic(of: job) == "results_queue")
    }

    // MARK: a remote worker (its own Redis connection, ledger and folder)

    /// A server (store, board, report consumer) and one worker on "another
    /// machine" sharing a real redis-server; the worker runs in a task.
    struct Remote {
        let server: RedisServer
        let t: TestYard
        let box: SecretBox
        let control: JobControl
        let consumer: ReportConsumer
        let worker: Worker
        let engine: GatedEngine
        let folder: TemporaryDirectory
        let task: Task<Void, any Error>

        init(runner: any EngineRunner, workerBox: SecretBox? = nil) async throws {
            server = try await RedisServer()
            let redis = RedisClient(try server.configuration(), backoff: [.milliseconds(50)])
            let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
            t = try TestYard(queue: queue)
            box = try DistributedPartsTests.box()
            control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: box))
            consumer = ReportConsumer(redis: redis, sink: control, logger: DistributedPartsTests.quiet)
            let own = RedisClient(try server.configuration(), backoff: [.milliseconds(50)])
            let ledger = RedisLedger(redis: own, box: workerBox ?? box, flushTimeout: .milliseconds(300))
            folder = try TemporaryDirectory("yard-remote-worker")
            engine = runner as? GatedEngine ?? GatedEngine()
            worker = Worker(configuration: .init(id: "remote-1", dataDirectory: folder.path, stopGrace: .seconds(2), settleBackoff: [.milliseconds(20)]),
                            ledger: ledger, queue: RedisJobQueue(redis: own, lease: .seconds(60)), runner: runner,
                            trackers: [StoreTracker(records: ledger)], artifacts: LocalArtifactStore(root: folder.file("artifacts")),
                            logger: DistributedPartsTests.quiet)
            let worker = worker
            task = Task { try await worker.run() }
        }

        func remove() {
            task.cancel()
            t.dir.remove()
            folder.remove()
        }

        /// Applies the worker's reports until the job satisfies `condition`.
        func applied(_ id: String, _ what: String, timeout: Duration = .seconds(20), _ condition: @escaping @Sendable (Job) -> Bool) async throws {
            try await eventually(what, timeout: timeout) {
                _ = try? await consumer.drain()
                return try await t.yard.store.job(id).map(condition) ?? false
            }
        }

        /// Applies the worker's reports until the job has ended; returns it.
        func settled(_ id: String, timeout: Duration = .seconds(20)) async throws -> Job {
            try await eventually("\(id) ends", timeout: timeout) {
                _ = try? await consumer.drain()
                return try await t.yard.store.job(id)?.state.isTerminal == true
            }
            return try #require(try await t.yard.store.job(id))
        }
    }

    // MARK: the wyolo bridge

    struct Bridge {
        let server: RedisServer
        let redis: RedisClient
        let t: TestYard
        let bridge: WyoloBridge
        let configs: TemporaryDirectory

        init() async throws {
            server = try await RedisServer()
            redis = RedisClient(try server.configuration())
            let queue = RedisJobQueue(redis: redis, lease: .seconds(60))
            t = try TestYard(queue: queue)
            configs = try TemporaryDirectory("wyolo-configs")
            let control = JobControl(store: t.yard.store, queue: queue, board: RedisJobBoard(redis: redis, box: try DistributedPartsTests.box()))
            bridge = WyoloBridge(redis: RedisClient(try server.configuration()), intake: control, configRoot: configs.path,
                                 logger: DistributedPartsTests.quiet)
            _ = try configs.write("job.yaml", t.config())
        }

        func remove() {
            t.dir.remove()
            configs.remove()
        }

        var store: any JobStore { t.yard.store }
    }

    @Test func aStreamMessageHandledTwiceAfterACrashGivesOneJob() async throws {
        let b = try await Bridge()
        defer { b.remove() }
        let entry = try #require(try await b.redis.send(["XADD", "training_queue", "*", "config_path", b.configs.file("job.yaml"), "trial_number", "7"]).string)
        // The bridge read it, stored the job, and died before acknowledging: simulated by
        // delivering it to the group without an ack, and storing the job as the bridge does.
        _ = try await b.redis.send(["XGROUP", "CREATE", "training_queue", WyoloBridge.group, "0"])
        _ = try await b.redis.send(["XREADGROUP", "GROUP", WyoloBridge.group, "bridge", "STREAMS", "training_queue", ">"])
        try await b.bridge.step()
        try await b.bridge.step()
        let jobs = try await b.store.jobs(in: [.queued])
        #expect(jobs.map(\.id) == ["wyolo-" + entry])
        #expect(jobs.first?.config["metadata"]?["trial_number"] == 7)
        #expect(try await b.redis.send(["XLEN", "training_queue"]).int == 0)
        #expect(try await b.redis.send(["XPENDING", "training_queue", WyoloBridge.group]).array?.first?.int == 0)
    }

    @Test func aListElementTakenBeforeACrashIsStillQueuedAndDoublyEncodedJSONIsRead() async throws {
        let b = try await Bridge()
        defer { b.remove() }
        let message = String(decoding: try JSONEncoder().encode(#"{"task_id": "l1", "config_path": "\#(b.configs.file("job.yaml"))"}"#), as: UTF8.self)
        // Taken off the client's list (LMOVE) by a bridge that then died.
        _ = try await b.redis.send(["RPUSH", "yard:wyolo:processing", message])
        _ = try await b.redis.send(["RPUSH", "training_queue", #"{"task_id": "l2", "config_path": "\#(b.configs.file("job.yaml"))"}"#])
        try await b.bridge.step()
        try await b.bridge.step()
        #expect(Set(try await b.store.jobs(in: [.queued]).map(\.id)) == ["l1", "l2"])
        #expect(try await b.redis.send(["LLEN", "yard:wyolo:processing"]).int == 0)
        #expect(try await b.redis.send(["LLEN", "training_queue"]).int == 0)
    }

    @Test(arguments: [
        ("not json at all", "not a JSON object"),
        (#"{"task_id": "h1"}"#, "no config_path"),
        (#"{"task_id": "h2", "config_path": "relative/job.yaml"}"#, "absolute path"),
        (#"{"task_id": "h3", "config_path": "/etc/passwd"}"#, "outside the folder"),
        (#"{"task_id": "h4", "config_path": "ROOT/escape.yaml"}"#, "outside the folder"),
        (#"{"task_id": "h5", "config_path": "ROOT/../../etc/hostname"}"#, "outside the folder"),
        (#"{"task_id": "h6", "config_path": "ROOT/missing.yaml"}"#, "no such file"),
        (#"{"task_id": "h7", "config_path": "ROOT/big.yaml"}"#, "larger than 1 MiB"),
        (#"{"task_id": "h8", "config_path": "ROOT/hostile.yaml"}"#, "h8"),
    ])
    func aBadMessageBecomesAFailedJobWithTheReason(message: String, reason: String) async throws {
        let b = try await Bridge()
        defer { b.remove() }
        // A symlink inside the root to a file outside it, a huge file, and YAML with an unknown key.
        symlink("/etc/hostname", b.configs.file("escape.yaml"))
        FileManager.default.createFile(atPath: b.configs.file("big.yaml"), contents: Data(count: (1 << 20) + 1))
        _ = try b.configs.write("hostile.yaml", "model: yolov8n.yaml\nrm_rf: true\ntrain: {data: /x}\n")
        _ = try await b.redis.send(["RPUSH", "training_queue", message.replacingOccurrences(of: "ROOT", with: b.configs.path)])
        try await b.bridge.step()
        let failed = try await b.store.jobs(in: [.failed])
        #expect(failed.count == 1)
        #expect(failed.first?.message?.contains(reason == "h8" ? "rm_rf" : reason) == true, "\(failed.first?.message ?? "none")")
        #expect(try await b.store.jobs(in: [.queued]).isEmpty)
        #expect(try await b.redis.send(["LLEN", "yard:wyolo:processing"]).int == 0, "the message is not left behind")
    }
}

/// An engine the test plays: each start hands it a process whose output
/// the test writes, step by step (files in the run folder included).
final class GatedEngine: EngineRunner {
    private let processes = Mutex<[GatedProcess]>([])

    func start(_ request: EngineRequest) async throws -> any EngineProcess {
        let process = GatedProcess(request)
        processes.withLock { $0.append(process) }
        return process
    }

    /// The `number`th process started (1-based), once it is.
    func started(_ number: Int) async throws -> GatedProcess {
        try await eventually("engine \(number) starts", timeout: .seconds(20)) { self.processes.withLock { $0.count >= number } }
        return processes.withLock { $0[number - 1] }
    }
}

final class GatedProcess: EngineProcess {
    let output: AsyncStream<EngineOutput>
    private let feed: AsyncStream<EngineOutput>.Continuation
    let run: String

    init(_ request: EngineRequest) {
        (output, feed) = AsyncStream.makeStream()
        run = "\(request.spec["project"]?.stringValue ?? "/runs")/\(request.spec["name"]?.stringValue ?? request.jobID)"
    }

    /// `started`, then each epoch.
    func train(epochs: Int) throws {
        feed.yield(.log("Ultralytics (gated)"))
        feed.yield(.event(EngineEvent(kind: .started, payload: ["device": "cpu", "epochs": .int(epochs), "save_dir": .string(run)])))
        for epoch in 1...epochs {
            feed.yield(.event(EngineEvent(kind: .epoch, payload: ["epoch": .int(epoch), "epochs": .int(epochs), "seconds": 0.1,
                                                                  "metrics": ["metrics/mAP50(B)": .double(0.1 * Double(epoch))]])))
            feed.yield(.log("epoch \(epoch) done"))
        }
    }

    /// What a training's end reports: its files kept, `finished`; then the process exits.
    func end() throws {
        for (relative, kind) in [("weights/best.pt", "weights"), ("results.csv", "results")] {
            let path = run + "/" + relative
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data("\(relative) of \(run)".utf8).write(to: URL(fileURLWithPath: path))
            feed.yield(.event(EngineEvent(kind: .artifact, payload: ["path": .string(path), "kind": .string(kind)])))
        }
        feed.yield(.event(EngineEvent(kind: .finished, payload: ["best": .string(run + "/weights/best.pt"), "fitness": 0.3])))
        feed.finish()
    }

    func requestStop() {}
    func kill() { feed.finish() }
    func waitForExit() async -> Int32 { 0 }
}
