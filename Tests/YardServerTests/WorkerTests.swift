import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardServing
import YardSweeps
import YardDomain
import YardJobs
import YardEngine
import YardTestSupport
import YardTracker
import YardWebhooks
import YardWorker
@testable import YardServer

@Suite("Worker with a scripted engine")
struct WorkerTests {
    @Test func yardUpStopsTheTrackingSpoolAfterTheWorkersAndTheServerFirst() throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let services = t.yard.services(app: t.yard.buildApplication(logger: TestYard.quiet), runner: ScriptedEngineRunner.training(epochs: 1),
                                       logger: TestYard.quiet)
        // A ServiceGroup shuts services down in reverse order: the last listed first.
        #expect(services.count == t.yard.options.workers + 10)
        #expect(services.first?.service is TrackingSpool)
        #expect(services.dropFirst().first?.service is WorkerPresence, "workers are listed until they stopped")
        #expect(services.dropFirst(2).first?.service is WorkerWatch, "their leaving is recorded")
        #expect(services.dropFirst(3).first?.service is MetricsFollower, "the last jobs' ends are counted")
        #expect(services.dropFirst(4).first?.service is EventRetentionService)
        #expect(services.dropFirst(5).first?.service is WebhookDeliverer, "webhooks go on while workers, sweeps and registration end")
        #expect(services.dropFirst(6).first?.service is SweepService, "sweeps stop after the workers")
        #expect(services.dropFirst(7).first?.service is AutoRegistration, "registration goes on while workers finish jobs")
        #expect(services.dropFirst(8).first?.service is ModelServerService, "predictors stop after the server stopped taking requests")
        #expect(services.dropFirst(9).dropLast().allSatisfy { $0.service is Worker })
        #expect(!(services.last?.service is Worker) && !(services.last?.service is TrackingSpool))
    }

    @Test func aTrainingIsRecordedAndStreamed() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let config = try JobConfigParser { _ in true }.parse(t.config("task_id: w1", epochs: 3))
        _ = try await t.yard.control.submit(config)
        let runner = ScriptedEngineRunner.training(epochs: 3)
        try await t.worker(runner).drain()

        let job = try await t.yard.store.require("w1")
        #expect(job.state == .succeeded)
        #expect(job.attempts == 1)
        #expect(job.epoch == 3)
        #expect(job.device == "cpu")
        #expect(job.runID == "w1")
        #expect(job.bestWeights == t.dir.path + "/runs/w1/weights/best.pt")
        #expect(job.fitness == 0.3)
        let epochs = try await t.yard.store.epochs(of: "w1")
        #expect(epochs.map(\.epoch) == [1, 2, 3])
        #expect(epochs[1].metrics["metrics/mAP50(B)"] == 0.2)
        #expect(epochs[1].metrics["train/box_loss"] == 1.0)

        let spec = try #require(runner.requests.all.first?.spec)
        #expect(spec["train"]?["epochs"] == 3)
        #expect(spec["name"] == "w1")
        #expect(spec["project"]?.stringValue == t.dir.path + "/runs")
        #expect(spec["resume"] == nil)

        // The log went to the store and to train.log, which is kept as an artifact.
        let lines = try await t.yard.store.logs(of: "w1", after: 0, limit: 100).map(\.line)
        #expect(lines == ["Ultralytics (scripted)", "epoch 1 done", "epoch 2 done", "epoch 3 done"])
        #expect(try await t.yard.store.artifacts(of: "w1").map(\.key) == ["w1/train.log"])
        #expect(try await t.yard.artifacts.exists(key: "w1/train.log"))

        try await t.test { client in
            try await client.execute(uri: "/api/jobs/w1/events", method: .get) { response in
                #expect(response.headers[.contentType] == "text/event-stream")
                let events = response.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
                let types = events.compactMap { $0.split(separator: "\n").first { $0.hasPrefix("event: ") }?.dropFirst(7) }.map(String.init)
                #expect(types.first == "state")
                #expect(types.filter { $0 == "epoch" }.count == 3)
                #expect(types.last == "state")
                #expect(events.last?.contains(#""state":"succeeded""#) == true)
            }
            try await client.execute(uri: "/api/jobs/w1/events", method: .get, headers: [.init("Last-Event-ID")!: "1000000"]) { response in
                #expect(response.text.isEmpty, "nothing after the last id")
            }
            try await client.execute(uri: "/api/jobs/w1/logs?follow=true", method: .get) { response in
                #expect(response.text == "Ultralytics (scripted)\nepoch 1 done\nepoch 2 done\nepoch 3 done\n")
            }
            try await client.execute(uri: "/api/jobs/w1", method: .get) { response in
                #expect(response.json["epoch_metrics"]?.arrayValue?.count == 3)
                #expect(response.json["artifacts"]?.arrayValue?.count == 1)
            }
        }
    }

    @Test func anEngineFailureFailsTheJobWithItsMessage() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: f1")))
        let runner = ScriptedEngineRunner(exitCode: 1) { _ in
            [.log("Traceback ..."), .event(EngineEvent(kind: .failed, payload: ["error": "SyntaxError", "message": "'lr9' is not a valid YOLO argument."]))]
        }
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("f1")
        #expect(job.state == .failed)
        #expect(job.message == "SyntaxError: 'lr9' is not a valid YOLO argument.")
    }

    @Test func anEngineThatDiesSilentlyFailsTheJob() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: d1")))
        let runner = ScriptedEngineRunner(exitCode: 139) { _ in [.log("Segmentation fault"), .protocolError("garbage")] }
        try await t.worker(runner).drain()
        let job = try await t.yard.store.require("d1")
        #expect(job.state == .failed)
        #expect(job.message?.contains("exited with code 139") == true)
        #expect(job.message?.contains("garbage") == true)
    }

    @Test func aStopDuringTrainingEndsStoppedAndResumeUsesTheCheckpoint() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: s1", epochs: 50)))
        let runner = ScriptedEngineRunner.training(epochs: 50, stepDelay: .milliseconds(40))
        let worker = t.worker(runner)
        let store = t.yard.store
        let control = t.yard.control
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.drain() }
            try await eventually("epoch 2") { (try await store.job("s1"))?.epoch ?? 0 >= 2 }
            _ = try await control.stop("s1")
            try await group.waitForAll()
        }
        #expect(runner.stops.all == ["stop"], "a user's stop waits for a resumable checkpoint")
        var job = try await store.require("s1")
        #expect(job.state == .stopped)
        #expect(job.message?.contains("yard resume s1") == true)
        #expect(job.epoch ?? 0 < 50)

        _ = try await control.resume("s1")
        try await t.worker(ScriptedEngineRunner.training(epochs: 3)).drain()
        job = try await store.require("s1")
        #expect(job.state == .succeeded)
        #expect(job.attempts == 2)
        let resumed = try await store.events(of: "s1", after: 0, limit: 1000).filter { $0.type == "state" }.map { $0.payload["state"]?.stringValue ?? "" }
        #expect(resumed == ["queued", "running", "stopping", "stopped", "queued", "running", "succeeded"])
    }

    /// A sweep's pruner stops a trial through the ordinary stop path; it
    /// ends `pruned` with the pruner's reason, and is not resumable.
    @Test func aPrunedTrialEndsPrunedThroughTheStopPath() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: p1", epochs: 50)))
        let engine = ScriptedEngineRunner.training(epochs: 50, stepDelay: .milliseconds(40))
        let worker = t.worker(engine)
        let store = t.yard.store, control = t.yard.control
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.drain() }
            try await eventually("epoch 2") { (try await store.job("p1"))?.epoch ?? 0 >= 2 }
            _ = try await control.prune("p1", reason: "pruned at epoch 2: fitness 0.1 below the median 0.5")
            try await group.waitForAll()
        }
        #expect(engine.stops.all == ["abandon"], "a pruned trial is never resumed: no checkpoint to wait for")
        let job = try await store.require("p1")
        #expect(job.state == .pruned)
        #expect(job.message == "pruned at epoch 2: fitness 0.1 below the median 0.5")
        #expect(job.state.isTerminal && job.finishedAt != nil)
        let states = try await store.events(of: "p1", after: 0, limit: 1000).filter { $0.type == "state" }.map { $0.payload["state"]?.stringValue ?? "" }
        #expect(states == ["queued", "running", "stopping", "pruned"])
        await #expect(throws: YardError.self) { _ = try await control.resume("p1") }
        await #expect(throws: YardError.self) { _ = try await control.stop("p1") }
        // A queued trial pruned before it starts ends pruned at once.
        _ = try await control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: p2", epochs: 5)))
        #expect(try await control.prune("p2", reason: "the study ended").state == .pruned)
    }

    @Test func resumeAfterAStopPassesTheCheckpointToTheEngine() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: r1")))
        try await t.worker(ScriptedEngineRunner(exitCode: 1) { _ in [] }).drain()
        #expect(try await t.yard.store.require("r1").state == .failed)
        try Self.checkpoint(t.dir.path + "/runs/r1/weights/last.pt", whole: true)
        _ = try await t.yard.control.resume("r1")
        let runner = ScriptedEngineRunner.training(epochs: 3)
        try await t.worker(runner).drain()
        #expect(runner.requests.all.first?.spec["resume"]?.stringValue == t.dir.path + "/runs/r1/weights/last.pt")
        #expect(FileManager.default.fileExists(atPath: t.dir.path + "/runs/r1/weights/last.pt"), "a resume keeps the run folder")
    }

    /// An engine killed while Ultralytics rewrote last.pt (in place) leaves
    /// the start of a zip; handed to Ultralytics it fails the job "checkpoint
    /// not found". The next attempt says so and trains from epoch 0.
    @Test func aCheckpointCutOffByAKillIsNotResumedFrom() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: r2")))
        try await t.worker(ScriptedEngineRunner(exitCode: 1) { _ in [] }).drain()
        try Self.checkpoint(t.dir.path + "/runs/r2/weights/last.pt", whole: false)
        _ = try await t.yard.control.resume("r2")
        let runner = ScriptedEngineRunner.training(epochs: 3)
        try await t.worker(runner).drain()
        #expect(runner.requests.all.first?.spec["resume"] == nil)
        #expect(try await t.yard.store.require("r2").state == .succeeded)
        let log = try await t.yard.store.logs(of: "r2", last: 10).map(\.line).joined(separator: "\n")
        #expect(log.contains("was cut off while it was written"), "\(log)")
        #expect(log.contains("training restarts from epoch 0"), "\(log)")
    }

    /// A checkpoint as torch writes one (a zip: a member, its central
    /// directory and the end record, with a comment), or its first part.
    static func checkpoint(_ path: String, whole: Bool) throws {
        let name = Array("archive/data.pkl".utf8), body = Array(repeating: UInt8(7), count: 3000), comment = Array("torch".utf8)
        func le(_ value: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var zip: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + le(0, 14) + le(body.count, 4) + le(body.count, 4) + le(name.count, 2) + le(0, 2) + name + body
        let directory = zip.count
        zip += [0x50, 0x4B, 0x01, 0x02] + le(0, 16) + le(body.count, 4) + le(body.count, 4) + le(name.count, 2) + le(0, 12) + le(0, 4) + name
        let directorySize = zip.count - directory
        zip += [0x50, 0x4B, 0x05, 0x06] + le(0, 4) + le(1, 2) + le(1, 2) + le(directorySize, 4) + le(directory, 4) + le(comment.count, 2) + comment
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(whole ? zip : Array(zip.prefix(2000))).write(to: URL(fileURLWithPath: path))
    }

    @Test func recoveryRequeuesInterruptedJobs() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let control = t.yard.control
        _ = try await control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: i1")))
        _ = try await control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: i2")))
        // Simulate a process that claimed i1 and died mid-run.
        #expect(try await t.yard.queue.claim(worker: "dead")?.jobID == "i1")
        try await control.move("i1", to: .running)
        #expect(try await control.recover() == ["i1"])
        #expect(try await t.yard.store.require("i1").state == .queued)
        var claimed: [String] = []
        while let id = try await t.yard.queue.claim(worker: "new")?.jobID { claimed.append(id) }
        #expect(Set(claimed) == ["i1", "i2"])
    }
}

