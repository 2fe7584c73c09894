import Foundation
import Logging
import Synchronization
import Testing
import YardDomain
import YardStore
import YardTestSupport
import YardWebhooks

/// A deliverer on a memory store with real receivers on 127.0.0.1.
struct Harness {
    let dir: TemporaryDirectory
    let store: any JobStore
    let logs = LogCapture()
    let deliverer: WebhookDeliverer
    let task: Task<Void, any Error>

    init(_ name: String, targets: [WebhookTarget] = [], allowPrivate: Bool = true, timeout: Duration = .seconds(10),
         store: any JobStore = MemoryJobStore()) async throws {
        dir = try TemporaryDirectory("webhooks-\(name)")
        self.store = store
        var settings = WebhookSettings()
        settings.targets = targets
        settings.allowPrivate = allowPrivate
        settings.timeout = timeout
        settings.backoff = WebhookBackoff(base: 0.2, cap: 1, giveUpAfter: 86_400)
        let deliverer = WebhookDeliverer(store: store, settings: settings, stateFile: dir.file("webhooks.json"), logger: logs.logger)
        self.deliverer = deliverer
        task = Task { try await deliverer.run() }
        let file = dir.file("webhooks.json")
        try await eventually("the deliverer to start") { FileManager.default.fileExists(atPath: file) }
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    /// A job whose config has `notify` (YAML), stored as `JobControl.submit` stores it: secrets sealed apart, config masked.
    func insertJob(_ id: String, notify: String, extra: String = "") async throws {
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: /d/data.yaml}\nnotify: \(notify)\n" + extra)
        let secrets = Redaction.secrets(of: config.json)
        try await store.insert(Job(id: id, config: config, redacted: SecretMasker(secrets: secrets).mask(Redaction.redact(config.json)), createdAt: Date()),
                               secrets: secrets)
    }

    /// A sweep whose base config has `notify`, stored as `SweepService.create` stores it.
    func insertSweep(_ id: String, notify: String) async throws {
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntrain: {data: /d/data.yaml}\nnotify: \(notify)\n")
        let secrets = Redaction.secrets(of: config.json)
        let sweep = Sweep(id: id, study: id, experiment: id, config: SecretMasker(secrets: secrets).mask(Redaction.redact(config.json)), createdAt: Date())
        try await store.insertSweep(sweep, secrets: secrets)
    }

    @discardableResult
    func end(_ id: String, _ state: String = "failed") async throws -> JobEvent {
        try await store.appendEvent(jobID: id, type: "state", payload: ["state": .string(state), "message": "it ended", "time": "2026-01-01T00:00:00Z"])
    }

    func target(_ key: String) async -> WebhookStatus.Target? { await deliverer.status().targets.first { $0.key == key } }
}

func server(_ url: String, secret: String? = "server-secret-123", events: String = "") throws -> WebhookTarget {
    try WebhookTarget.server(url + events, secret: secret, allowPrivate: true)
}

@Suite("Webhook deliveries", .serialized)
struct DeliveryTests {
    @Test("a job's notify: gets its end, signed with its secret (HMAC-SHA256 of TIMESTAMP.BODY) and numbered by the event's sequence")
    func signedJobEnd() async throws {
        let receiver = try await Receiver.start()
        let h = try await Harness("signed")
        try await h.insertJob("job-a", notify: "{url: \(receiver.url), secret: per-job-secret-9}")
        let event = try await h.end("job-a")
        try await eventually("the delivery") { receiver.count == 1 }
        let delivery = try #require(receiver.all.first)
        let timestamp = try #require(delivery.headers["x-trainyard-timestamp"].flatMap { Int64($0) })
        let signature = try #require(delivery.headers["x-trainyard-signature"])
        #expect(WebhookSignature.verify(signature: signature, body: delivery.body, timestamp: timestamp, secret: "per-job-secret-9"))
        #expect(!WebhookSignature.verify(signature: signature, body: delivery.body, timestamp: timestamp, secret: "server-secret-123"))
        #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 600)
        #expect(delivery.sequence == String(event.id))
        let json = try #require(delivery.json)
        #expect(json["event"] as? String == "job.failed")
        #expect(json["id"] as? String == "job-a")
        #expect(json["sequence"] as? Int == Int(event.id))
        #expect((json["summary"] as? String)?.contains("job-a failed") == true)
        #expect(json["text"] == nil)  // json format: no Slack text
        try await eventually("the status to show it") { await h.target("job:job-a")?.lastSequence == event.id }
        #expect(await h.target("job:job-a")?.lastStatus == 204)
        await h.stop()
        await receiver.stop()
    }

    @Test("a receiver that is down, then up, gets the event once: retried after the failure, with backoff")
    func downThenUp() async throws {
        let port = try freePort()
        let url = "http://127.0.0.1:\(port)/hook"
        let target = try server(url)
        let h = try await Harness("retry", targets: [target])
        let first = try await h.end("job-b")
        try await eventually("a failed try") { await h.target(target.key)?.lastError != nil }
        #expect(await h.target(target.key)?.pending == 1)
        let receiver = try await Receiver.start(port: port)
        try await eventually("the retry to land", timeout: .seconds(30)) { receiver.count >= 1 }
        try await eventually("the delivery to be recorded") { await h.target(target.key)?.pending == 0 }
        // A later event goes through too; by then a repeat of the first would have come.
        let second = try await h.end("job-c", "succeeded")
        try await eventually("the second event") { receiver.all.contains { $0.sequence == String(second.id) } }
        #expect(receiver.all.filter { $0.sequence == String(first.id) }.count == 1)
        // The status counts a delivery once its answer is read, a moment after the receiver has it.
        try await eventually("both deliveries to be counted") { await h.target(target.key)?.delivered == 2 }
        await h.stop()
        await receiver.stop()
    }

    @Test("a receiver that hangs delays neither the job's end nor the other targets")
    func hangingReceiver() async throws {
        let hanging = try await Receiver.start(.hold)
        let quick = try await Receiver.start()
        let hangingTarget = try server(hanging.url)
        let h = try await Harness("hang", targets: [hangingTarget, try server(quick.url)])
        try await h.insertJob("job-d", notify: quick.url)
        // The job's end is a store write: it returns while the hanging receiver holds its delivery.
        let event = try await h.end("job-d")
        try await eventually("the hanging receiver to hold the delivery") { hanging.count == 1 }
        try await eventually("the other targets to get it meanwhile") { quick.count == 2 }
        let second = try await h.end("job-e", "succeeded")
        try await eventually("the next event to pass the hanging one") { quick.all.contains { $0.sequence == String(second.id) } }
        // Still held: nothing above waited for it.
        #expect(await h.target(hangingTarget.key)?.lastSequence == nil)
        #expect(await h.target(hangingTarget.key)?.pending == 2)
        hanging.gate.open()
        try await eventually("the held deliveries to finish") { await h.target(hangingTarget.key)?.delivered == 2 }
        await h.stop()
        await hanging.stop()
        await quick.stop()
    }

    @Test("a hanging receiver times out after the request timeout and is retried")
    func timeout() async throws {
        let hanging = try await Receiver.start(.hold)
        let target = try server(hanging.url)
        let h = try await Harness("timeout", targets: [target], timeout: .seconds(1))
        try await h.end("job-f")
        try await eventually("the timeout to be recorded", timeout: .seconds(20)) {
            await h.target(target.key)?.lastError?.contains("did not answer within") == true
        }
        try await eventually("a retry", timeout: .seconds(20)) { hanging.count >= 2 }
        hanging.gate.open()
        await h.stop()
        await hanging.stop()
    }

    @Test("private addresses are refused without --allow-private-webhooks: literal at validation, names once resolved")
    func privateRefused() async throws {
        for url in ["http://127.0.0.1/x", "http://10.1.2.3/x", "http://172.20.0.1/x", "http://192.168.1.1/x", "http://169.254.169.254/latest",
                    "http://[::1]/x", "http://[fe80::1]/x", "http://[fd00::1]/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"] {
            #expect(throws: YardError.self, "\(url)") { try WebhookTarget.server(url, secret: nil, allowPrivate: false) }
            #expect(throws: YardError.self, "\(url)") { try NotifySpec.parse(.string(url), allowPrivate: false) }
        }
        #expect(throws: YardError.self) { try WebhookTarget.server("ftp://example.com/x", secret: nil, allowPrivate: true) }
        #expect(throws: YardError.self) { try WebhookTarget.server("file:///etc/passwd", secret: nil, allowPrivate: true) }
        _ = try WebhookTarget.server("https://93.184.215.14/x", secret: nil, allowPrivate: false)
        _ = try WebhookTarget.server("http://127.0.0.1/x", secret: nil, allowPrivate: true)

        // A name that resolves to loopback is refused when it is sent.
        let receiver = try await Receiver.start()
        let target = try WebhookTarget.server("http://localhost:\(receiver.port)/hook", secret: nil, allowPrivate: false)
        let h = try await Harness("private", targets: [target], allowPrivate: false)
        try await h.end("job-g")
        try await eventually("the refusal") { await h.target(target.key)?.lastError?.contains("loopback") == true }
        #expect(receiver.count == 0)
        await h.stop()
        await receiver.stop()
    }

    @Test("a redirect is not followed (to a private address or any other)")
    func redirectNotFollowed() async throws {
        let inner = try await Receiver.start()
        let outer = try await Receiver.start(.redirect(inner.url))
        let target = try server(outer.url)
        let h = try await Harness("redirect", targets: [target])
        try await h.end("job-h")
        try await eventually("the redirect answer") { await h.target(target.key)?.lastError?.contains("302") == true }
        #expect(outer.count >= 1)
        #expect(inner.count == 0)
        #expect(await h.target(target.key)?.pending == 1)
        await h.stop()
        await outer.stop()
        await inner.stop()
    }

    @Test("a --webhook's events= takes only those; format=slack adds text; other log entries are no webhook")
    func filters() async throws {
        let all = try await Receiver.start()
        let failures = try await Receiver.start()
        let failedOnly = try server(failures.url, events: ";events=job.failed,worker.lost;format=slack")
        let h = try await Harness("filters", targets: [try server(all.url), failedOnly])
        try await h.end("job-i", "succeeded")
        try await h.store.appendEvent(.worker, id: "gpu-box-0", type: "state", payload: ["state": "lost", "host": "gpu-box", "job_id": "job-i"])
        try await h.store.appendEvent(jobID: "job-i", type: "epoch", payload: ["epoch": 1])
        try await h.end("job-j", "running")
        try await eventually("both to arrive") { all.count == 2 && failures.count == 1 }
        let lost = try #require(failures.all.first?.json)
        #expect(lost["event"] as? String == "worker.lost")
        #expect((lost["text"] as? String)?.contains("gpu-box") == true)
        #expect(Set(all.all.compactMap { $0.json?["event"] as? String }) == ["job.succeeded", "worker.lost"])
        await h.stop()
        await all.stop()
        await failures.stop()
    }
}

@Suite("Webhook routing")
struct RoutingTests {
    @Test("a sweep's notify: gets its end; its trials' ends only when its events list them; a trial never sends to the notify: it inherits")
    func sweepNotify() async throws {
        let listing = try await Receiver.start()
        let plain = try await Receiver.start()
        let h = try await Harness("sweeps")
        try await h.insertSweep("sweep-a", notify: "{url: '\(listing.url)', events: [sweep.finished, job.failed]}")
        try await h.insertSweep("sweep-b", notify: plain.url)
        // Trials carry the sweep's notify: in their config (made from its base config) and its id in metadata.
        try await h.insertJob("trial-a1", notify: "{url: '\(listing.url)', events: [sweep.finished, job.failed]}", extra: "metadata: {sweep_id: sweep-a}\n")
        try await h.insertJob("trial-a2", notify: "{url: '\(listing.url)', events: [sweep.finished, job.failed]}", extra: "metadata: {sweep_id: sweep-a}\n")
        try await h.insertJob("trial-b1", notify: plain.url, extra: "metadata: {sweep_id: sweep-b}\n")
        let failed = try await h.end("trial-a1", "failed")
        try await h.end("trial-a2", "succeeded")
        try await h.end("trial-b1", "failed")
        let finished = try await h.store.appendEvent(.sweep, id: "sweep-b", type: "state", payload: ["state": "finished", "previous": "running"])
        try await eventually("the sweep's end") { plain.count >= 1 }
        try await eventually("the listed trial end") { listing.count >= 1 }
        // The deliveries above came after the others were read: anything else would be here by now.
        try await eventually("the log to be read") {
            let status = await h.deliverer.status()
            return status.cursor >= finished.id && status.pending == 0
        }
        #expect(plain.all.map(\.sequence) == [String(finished.id)])
        #expect(plain.all.first?.json?["event"] as? String == "sweep.finished")
        #expect(listing.all.map(\.sequence) == [String(failed.id)])
        #expect(await h.target("sweep:sweep-a") != nil)
        #expect(await h.target("job:trial-a1") == nil)
        await h.stop()
        await listing.stop()
        await plain.stop()
    }

    @Test("idle, the deliverer reads nothing; a state event wakes it at once, an epoch event does not")
    func followsTheLog() async throws {
        let reads = Mutex(0)
        let store = FaultyJobStore { call in
            if call.name == "events" { reads.withLock { $0 += 1 } }
            return nil
        }
        let receiver = try await Receiver.start()
        let h = try await Harness("follow", targets: [try server(receiver.url)], store: store)
        try await eventually("the first read") { reads.withLock { $0 } == 1 }
        // Idle for 3 s: nothing reads the store on a timer.
        try await Task.sleep(for: .seconds(3))
        #expect(reads.withLock { $0 } == 1, "the store was read \(reads.withLock { $0 }) times while nothing happened")
        for n in 0..<20 { try await store.appendEvent(jobID: "j", type: "epoch", payload: ["epoch": .int(n)]) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(reads.withLock { $0 } == 1, "epoch events woke the deliverer")
        try await store.appendEvent(jobID: "j", type: "state", payload: ["state": "succeeded"])
        try await eventually("the delivery") { receiver.count == 1 }
        await h.stop()
        await receiver.stop()
    }

    @Test("when retention removed events past the cursor, the status says so and delivery goes on from the floor")
    func retentionFloor() async throws {
        let receiver = try await Receiver.start()
        let dir = try TemporaryDirectory("webhooks-floor")
        let store = MemoryJobStore()
        for epoch in 1...3 { try await store.appendEvent(jobID: "old", type: "epoch", payload: ["epoch": .int(epoch)]) }
        try await store.pruneEvents(before: Date().addingTimeInterval(60))
        let floor = try await store.eventFloor()
        #expect(floor > 0)
        var settings = WebhookSettings()
        settings.allowPrivate = true
        settings.targets = [try server(receiver.url)]
        let deliverer = WebhookDeliverer(store: store, settings: settings, stateFile: dir.file("webhooks.json"), logger: LogCapture().logger)
        let task = Task { try await deliverer.run() }
        try await eventually("the note") { await deliverer.status().note?.contains("retention removed events up to \(floor)") == true }
        let event = try await store.appendEvent(jobID: "new", type: "state", payload: ["state": "succeeded"])
        try await eventually("the delivery after the floor") { receiver.all.contains { $0.sequence == String(event.id) } }
        task.cancel()
        _ = try? await task.value
        await receiver.stop()
    }
}

@Suite("Webhook secrets")
struct WebhookSecretTests {
    @Test("webhook URLs and secrets never reach the logs, the status or the state file, delivered or failing")
    func neverLogged() async throws {
        let receiver = try await Receiver.start(.status(500))
        let deadPort = try freePort()
        let serverTarget = try WebhookTarget.server("http://127.0.0.1:\(deadPort)/ServerSecretPath", secret: "server-secret-abc", allowPrivate: true)
        let h = try await Harness("secrets", targets: [serverTarget])
        try await h.insertJob("job-s", notify: "{url: '\(receiver.url)?token=JobSecretQuery', secret: job-secret-xyz}")
        try await h.end("job-s")
        try await eventually("both to fail once") {
            await h.deliverer.status().targets.filter { $0.lastError != nil }.count == 2
        }
        let status = String(decoding: try JSONEncoder().encode(await h.deliverer.status()), as: UTF8.self)
        await h.stop()
        let file = try String(contentsOfFile: h.dir.file("webhooks.json"), encoding: .utf8)
        let logs = h.logs.records.withLock { $0.map(\.1) }.joined(separator: "\n")
        #expect(logs.contains("not delivered"))  // the failures were logged, masked
        for text in [status, file, logs] {
            for secret in ["ServerSecretPath", "server-secret-abc", "JobSecretQuery", "job-secret-xyz", "/hook"] {
                #expect(!text.contains(secret), "\(secret) in \(text.prefix(300))")
            }
        }
        await receiver.stop()
    }
}
