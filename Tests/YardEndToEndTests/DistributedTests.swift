import Foundation
import Testing
import YardDomain
import YardRedis
import YardTestSupport

extension EndToEnd {
/// `yard server --redis` and `yard worker --redis` processes, each with a
/// data dir of its own, sharing a real redis-server (and moto as S3 where a
/// job must move between machines).
@Suite("Workers over Redis")
struct DistributedTests {
    static func config(data: String, epochs: Int, extra: String = "") -> String {
        """
        model: yolov8n.yaml
        train: {data: \(data), epochs: \(epochs), imgsz: 64, batch: 8, workers: 0, plots: false}
        \(extra)
        """
    }

    /// The job's holder among `workers` (its id ends with the pid).
    static func holder(of job: JSONValue, among workers: [YardProcess]) throws -> YardProcess {
        let id = try #require(job["worker"]?.stringValue)
        return try #require(workers.first { id.hasSuffix("-\($0.pid)") }, "no worker \(id)")
    }

    @Test func fiveJobsOnTwoWorkersEachFinishExactlyOnceAndAStopReachesTheWorker() async throws {
        let redis = try await RedisServer()
        let h = try YardHarness("dist-five")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"))
        defer { server.process.terminate() }
        let key = try h.secretKey(of: h.dir.file("server"))
        let first = try await h.worker(redis: redis.url, name: "w1", lease: 10, key: key)
        let second = try await h.worker(redis: redis.url, name: "w2", lease: 10, key: key)
        defer { [first, second].forEach { $0.signal(SIGKILL) } }

        var ids: [String] = []
        for _ in 0..<5 { ids.append(try await server.submit(Self.config(data: data, epochs: 2))) }
        for id in ids { try await server.waitForState(id, "succeeded") }

        var ranOn = Set<String>()
        for id in ids {
            let job = try await server.job(id)
            #expect(job["attempts"] == 1, "\(id) ran more than once: \(job)")
            #expect(try await server.recordedEpochs(id) == [1, 2])
            #expect(try await server.stateHistory(id) == ["queued", "running", "succeeded"])
            let epochEvents = try await eventPayloads(server, id, type: "epoch").compactMap { $0["epoch"]?.intValue }
            #expect(epochEvents == [1, 2], "\(id): every epoch reported once")
            ranOn.insert(try Self.holder(of: job, among: [first, second]).log)
            // The run lives on the worker that ran it, not on the server.
            #expect(!FileManager.default.fileExists(atPath: h.dir.file("server") + "/runs/\(id)"))
        }
        #expect(ranOn.count == 2, "both workers took jobs")

        let client = RedisClient(try redis.configuration())
        #expect(try await client.send(["XLEN", "yard:jobs"]).int == 0, "the queue is empty")
        #expect(try await client.send(["HLEN", "yard:queue:entry"]).int == 0)

        // Workers announce themselves every few seconds: the last job may show until the next heartbeat.
        var listed: [JSONValue] = []
        try await eventually("both workers listed idle", timeout: .seconds(15), every: .milliseconds(250)) {
            listed = try await server.get("/api/workers")["workers"]?.arrayValue ?? []
            return listed.count == 2 && listed.allSatisfy { $0["status"] == "idle" }
        }
        #expect(listed.allSatisfy { $0["device"] == "cpu" && $0["versions"]?["torch"]?.stringValue != nil && $0["heartbeat_at"] != nil }, "\(listed)")
        let table = try h.yard(["workers"], server: server.port)
        #expect(table.status == 0 && table.output.contains("idle") && table.output.contains("TAGS"), "\(table.output)")

        // `yard stop` reaches the worker on the other side of Redis.
        let long = try await server.submit(Self.config(data: data, epochs: 200))
        try await server.waitFor(long, "first epoch") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        let asked = ContinuousClock.now
        #expect(try h.yard(["stop", long], server: server.port).status == 0)
        try await server.waitForState(long, "stopped", timeout: .seconds(30))
        let took = ContinuousClock.now - asked
        #expect(took < .seconds(10), "stopped after \(took)")
        #expect(try await server.job(long)["message"]?.stringValue?.contains("stopped after epoch") == true)
        await client.close()
    }

    /// What a remote worker's tracking spool does reaches the server: the
    /// job's `tracking` becomes synced with its MLflow run, and the server
    /// registers the job (`register_model`) in its registry of record with
    /// weights it fetched from the MLflow run (the worker has no S3).
    @Test func aRemoteWorkersMLflowRunAndRegisteredVersionReachTheServer() async throws {
        let uri = try MLflow.sharedURI()
        let redis = try await RedisServer()
        let h = try YardHarness("dist-mlflow")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"))
        defer { server.process.terminate() }
        let worker = try await h.worker(redis: redis.url, name: "w1", lease: 10, key: try h.secretKey(of: h.dir.file("server")))
        defer { worker.signal(SIGKILL) }
        let model = "dist-\(UUID().uuidString.prefix(8))"
        let id = try await server.submit(Self.config(data: data, epochs: 1, extra: """
            experiment: \(model)
            mlflow: {MLFLOW_TRACKING_URI: "\(uri)", register_model: \(model), register_alias: champion}
            """))
        try await server.waitForState(id, "succeeded")
        try await server.waitFor(id, timeout: .seconds(120), "tracking synced") { $0["tracking"] == "synced" }
        let runID = try #require(try await server.job(id)["mlflow_run_id"]?.stringValue)
        var versions: [JSONValue] = []
        try await eventually("the version in the server's registry", timeout: .seconds(90), every: .milliseconds(250)) {
            versions = try await server.get("/api/models?name=\(model)")["versions"]?.arrayValue ?? []
            return !versions.isEmpty
        }
        #expect(versions.first?["job_id"]?.stringValue == id)
        #expect(versions.first?["run_id"]?.stringValue == runID)
        #expect(versions.first?["aliases"]?.arrayValue?.contains("champion") == true, "\(versions)")
        #expect(versions.first?["source"]?.stringValue == "runs:/\(runID)/weights/best.pt", "the worker's weights, through MLflow")
        let again = try h.yard(["models", "register", id, "\(model)-b"], server: server.port)
        #expect(again.status == 0, "the server registers the remote job too: \(again.output)")
    }

    @Test func aKilledWorkersJobIsTakenOverAfterTheLeaseAndContinuesFromItsS3Checkpoint() async throws {
        let endpoint = try S3Server.endpoint()
        let s3 = try S3Server.client()
        let bucket = S3Server.bucket("takeover")
        let redis = try await RedisServer()
        let h = try YardHarness("dist-kill")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 48, val: 4)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"))
        defer { server.process.terminate() }
        let key = try h.secretKey(of: h.dir.file("server"))
        let workers = [try await h.worker(redis: redis.url, name: "w1", lease: 5, key: key),
                       try await h.worker(redis: redis.url, name: "w2", lease: 5, key: key)]
        defer { workers.forEach { $0.signal(SIGKILL) } }

        let id = try await server.submit(Self.config(data: data, epochs: 8, extra: """
            minio: {MINIO_ENDPOINT: \(endpoint), MINIO_ID: testing, MINIO_SECRET_KEY: s3-secret-value, MINIO_BUCKET: \(bucket)}
            """))
        try await server.waitFor(id, "epoch 2 and a checkpoint in S3") { ($0["epoch"]?.intValue ?? 0) >= 2 }
        try await eventually("the checkpoint in S3", timeout: .seconds(60), every: .milliseconds(200)) {
            try await s3.head(bucket: bucket, key: "\(id)/weights/last.pt") != nil
        }
        let victim = try Self.holder(of: try await server.job(id), among: workers)
        try await victim.kill9()
        let survivor = workers.first { $0.pid != victim.pid }!

        try await server.waitForState(id, "succeeded", timeout: .seconds(300))
        let job = try await server.job(id)
        #expect(job["attempts"] == 2)
        #expect(try Self.holder(of: job, among: workers).pid == survivor.pid)
        #expect(try await server.recordedEpochs(id) == Array(1...8))
        let log = try h.yard(["logs", id], server: server.port).output
        #expect(log.contains("[trainyard] resuming from"), "\(log.suffix(2000))")
        #expect(!log.contains("restarts from epoch 0"))
        #expect(!log.contains("s3-secret-value"))

        // Ultralytics' own results.csv continues the first attempt's rows.
        let results = h.dir.file("results.csv")
        try await s3.getFile(bucket: bucket, key: "\(id)/results.csv", to: results)
        let rows = try ResultsCSV(path: results).rows.compactMap { $0["epoch"].map(Int.init) }
        #expect(Set(rows) == Set(1...8), "results.csv epochs: \(rows)")
        #expect(rows.first == 1)
    }

    @Test func aWorkerPausedPastItsLeaseRecordsNothingOverTheAttemptThatTookItsJob() async throws {
        let endpoint = try S3Server.endpoint()
        let bucket = S3Server.bucket("paused")
        let redis = try await RedisServer()
        let h = try YardHarness("dist-pause")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 48, val: 4)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"))
        defer { server.process.terminate() }
        let key = try h.secretKey(of: h.dir.file("server"))
        let workers = [try await h.worker(redis: redis.url, name: "w1", lease: 4, key: key),
                       try await h.worker(redis: redis.url, name: "w2", lease: 4, key: key)]
        defer { workers.forEach { $0.signal(SIGCONT); $0.signal(SIGKILL) } }

        let id = try await server.submit(Self.config(data: data, epochs: 6, extra: """
            minio: {MINIO_ENDPOINT: \(endpoint), MINIO_ID: testing, MINIO_SECRET_KEY: s3-secret-value, MINIO_BUCKET: \(bucket)}
            """))
        try await server.waitFor(id, "epoch 1") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        let paused = try Self.holder(of: try await server.job(id), among: workers)
        paused.signal(SIGSTOP)
        try await server.waitFor(id, timeout: .seconds(120), "another worker took it over") { ($0["claim"]?.intValue ?? 0) >= 2 }
        paused.signal(SIGCONT)

        try await server.waitForState(id, "succeeded", timeout: .seconds(300))
        // Let the old worker catch up with what its engine did meanwhile.
        try await eventually("the paused worker to learn it lost the job", timeout: .seconds(60), every: .milliseconds(200)) {
            paused.text.contains("lost its claim")
        }
        try await Task.sleep(for: .seconds(2))
        let job = try await server.job(id)
        #expect(job["state"] == "succeeded")
        #expect(try Self.holder(of: job, among: workers).pid != paused.pid)
        let history = try await server.stateHistory(id)
        #expect(history.filter { $0 == "succeeded" }.count == 1, "\(history)")
        #expect(history.last == "succeeded", "\(history)")
        #expect(try await server.recordedEpochs(id) == Array(1...6))
    }

    @Test func theServerKilledMidTrainingLosesNoEpochAndRedisRestartedLosesNoJob() async throws {
        let redis = try await RedisServer()
        let h = try YardHarness("dist-restart")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 32, val: 4)
        let serverData = h.dir.file("server")
        var server = try await h.server(redis: redis.url, data: serverData)
        let port = server.port
        let key = try h.secretKey(of: serverData)
        let worker = try await h.worker(redis: redis.url, name: "w1", lease: 10, key: key)
        defer { worker.signal(SIGKILL) }

        let id = try await server.submit(Self.config(data: data, epochs: 6))
        let queued = try await server.submit(Self.config(data: data, epochs: 2))
        try await server.waitFor(id, "epoch 1") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        // The worker trains on while the server is gone; its reports wait in Redis.
        try await Task.sleep(for: .seconds(4))
        server = try await h.server(redis: redis.url, port: port, data: serverData)
        defer { server.process.terminate() }

        // Redis goes down and comes back (AOF on): the queued job is still there.
        try await redis.kill9()
        try await Task.sleep(for: .seconds(1))
        try await redis.start()

        try await server.waitForState(id, "succeeded", timeout: .seconds(300))
        try await server.waitForState(queued, "succeeded", timeout: .seconds(300))
        #expect(try await server.recordedEpochs(id) == Array(1...6))
        let epochEvents = try await eventPayloads(server, id, type: "epoch").compactMap { $0["epoch"]?.intValue }
        #expect(epochEvents == Array(1...6), "every epoch reported once across the restart")
        #expect(try await server.stateHistory(id) == ["queued", "running", "succeeded"])
        #expect(try await server.job(queued)["attempts"] == 1)
        let logs = try h.yard(["logs", id], server: server.port).output
        let lines = logs.split(separator: "\n")
        #expect(Set(lines.filter { $0.hasPrefix("[trainyard]") }).count == lines.filter { $0.hasPrefix("[trainyard]") }.count, "no log line twice")
    }

    /// Issue 26 (10): a worker given another key than the server's used to
    /// start and then fail every job it claimed. The server says which key
    /// it seals with; the worker refuses to start, on one line naming both.
    @Test func aWorkerWithTheWrongKeyRefusesToStartNamingBothKeys() async throws {
        let redis = try await RedisServer()
        let h = try YardHarness("dist-wrong-key")
        defer { h.dir.remove() }
        let serverData = h.dir.file("server")
        let server = try await h.server(redis: redis.url, data: serverData)
        defer { server.process.terminate() }
        let expected = try SecretBox(keys: SecretBox.parseKeys(try h.secretKey(of: serverData), source: "server")).keys[0].id
        let client = RedisClient(try redis.configuration())
        try await eventually("the server announces its key", timeout: .seconds(30)) {
            try await client.send(["GET", "yard:secret-key"]).string == expected
        }
        await client.close()

        let wrongKey = SecretKey.fresh
        let given = try SecretBox(keys: SecretBox.parseKeys(wrongKey, source: "worker")).keys[0].id
        let keyFile = try h.dir.write("worker.key", wrongKey + "\n")
        let (process, log) = try h.launch(["worker", "--redis", redis.url, "--data-dir", h.dir.file("w1"), "--secret-key-file", keyFile,
                                           "--python", h.python], log: "w1")
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        try await eventually("the worker exits", timeout: .seconds(60)) { !process.isRunning }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus != 0)
        #expect(output.contains(expected) && output.contains(given) && output.contains(keyFile), "\(output)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(output)")

        // The right key: it starts, and says the key is the server's.
        let worker = try await h.worker(redis: redis.url, name: "w2", lease: 10, key: try h.secretKey(of: serverData))
        defer { worker.signal(SIGKILL) }
        #expect(worker.text.contains("the server's is \(expected)"), "\(worker.text)")
    }

    @Test func wyoloClientsMessagesAsAStreamEntryAndAsAListPushAreTrainedWithTheirProgressInRedis() async throws {
        let redis = try await RedisServer()
        let h = try YardHarness("dist-wyolo")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let configs = h.dir.file("configs")
        try FileManager.default.createDirectory(atPath: configs, withIntermediateDirectories: true)
        let config = configs + "/config.yaml"
        try Self.config(data: data, epochs: 2, extra: "redis: {REDIS_HOST: 127.0.0.1, REDIS_PORT: \(redis.port), TOPIC: training_queue}")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"), extra: ["--wyolo-configs", configs])
        defer { server.process.terminate() }
        let worker = try await h.worker(redis: redis.url, name: "w1", lease: 10, key: try h.secretKey(of: h.dir.file("server")))
        defer { worker.signal(SIGKILL) }
        let client = RedisClient(try redis.configuration())
        defer { Task { await client.close() } }

        // Seed 001's usage example: RedisStreamManager.add_to_stream.
        let entry = try #require(try await client.send(["XADD", "training_queue", "*", "config_path", config, "trial_number", "2"]).string)
        let streamed = "wyolo-" + entry
        try await server.waitForState(streamed, "succeeded")
        #expect(try await client.send(["XLEN", "training_queue"]).int == 0, "the message moved into Trainyard's queue")

        // The list form, JSON encoded twice as wyolo's v1 client does.
        _ = try await client.send(["DEL", "training_queue"])
        let message = #"{"task_id": "wyolo-list-1", "config_path": "\#(config)", "user_code": "u1"}"#
        let twice = String(decoding: try JSONEncoder().encode(message), as: UTF8.self)
        _ = try await client.send(["RPUSH", "training_queue", twice])
        try await server.waitForState("wyolo-list-1", "succeeded")

        // A message naming a file outside the configs folder becomes a failed job, not a lost one.
        _ = try await client.send(["RPUSH", "training_queue", #"{"task_id": "wyolo-bad", "config_path": "/etc/passwd"}"#])
        try await server.waitFor("wyolo-bad", timeout: .seconds(30), failureExpected: true, "failed") { $0["state"] == "failed" }
        #expect(try await server.job("wyolo-bad")["message"]?.stringValue?.contains("outside the folder") == true)
        #expect(try await client.send(["LLEN", "training_queue"]).int == 0)
        #expect(try await client.send(["LLEN", "yard:wyolo:processing"]).int == 0)

        for id in [streamed, "wyolo-list-1"] {
            let progress = try await client.send(["HGETALL", "progress:\(id)"]).array?.compactMap(\.string) ?? []
            let fields = Dictionary(uniqueKeysWithValues: stride(from: 0, to: progress.count - 1, by: 2).map { (progress[$0], progress[$0 + 1]) })
            #expect(fields["task_id"] == id)
            #expect(fields["EPOCH"] == "2" && fields["TOTAL_EPOCHS"] == "2" && fields["TRIAL_PROGRESS"] == "1", "\(fields)")
            #expect(fields["elapsed_time"].flatMap(Double.init) != nil && fields["result_time"].flatMap(Double.init) != nil, "\(fields)")
            let ttl = try await client.send(["TTL", "progress:\(id)"]).int ?? 0
            #expect((1...1200).contains(ttl))
            #expect((try await client.send(["XLEN", "stream:\(id)"]).int ?? 0) > 5, "log lines on stream:\(id)")
        }
        #expect(try await client.send(["HGET", "progress:\(streamed)", "TRIAL_NUMBER"]).string == "2")
        let results = try await client.send(["XRANGE", "results_queue", "-", "+"]).array ?? []
        let ended = results.compactMap { entry -> [String]? in entry.array?[1].array?.compactMap(\.string) }
        #expect(ended.count == 2)
        #expect(ended.allSatisfy { $0.contains("succeeded") })
    }
}
}
