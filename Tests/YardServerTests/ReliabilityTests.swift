import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardDomain
import YardEngine
import YardStore
import YardTestSupport

/// Issue 7: every way an attempt can break off ends the job and releases
/// its claim; nothing is reported that was not recorded; crash loops stop.
@Suite("Reliability: no stranded or looping jobs")
struct ReliabilityTests {
    static let parser = JobConfigParser { _ in true }

    @Test func aStoreFaultAfterTheJobStartedFailsItReleasesTheClaimAndTheWorkerGoesOn() async throws {
        let store = FaultyJobStore { call in call.name == "secrets" ? .init("disk I/O error") : nil }
        let t = try TestYard(store: store)
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: broken")))
        try await t.worker(.training(epochs: 2)).drain()
        let job = try await store.require("broken")
        #expect(job.state == .failed)
        #expect(job.message?.contains("disk I/O error") == true)
        #expect(try await t.yard.queue.claimant(of: "broken") == nil)
        #expect(try await t.yard.queue.claim(worker: "other")?.jobID == nil, "the claim was completed, not left behind")

        store.inject { _ in nil }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: next")))
        try await t.worker(.training(epochs: 2)).drain()
        #expect(try await store.require("next").state == .succeeded)
    }

    @Test func anEpochThatCannotBeRecordedEndsTheAttemptFailedNotSucceeded() async throws {
        let store = FaultyJobStore { call in call.name == "appendEvent" && call.detail == "epoch" ? .init("database or disk is full") : nil }
        let t = try TestYard(store: store)
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: unseen", epochs: 50)))
        let runner = ScriptedEngineRunner.training(epochs: 50, stepDelay: .milliseconds(2))
        try await t.worker(runner).drain()
        let job = try await store.require("unseen")
        #expect(job.state == .failed)
        #expect(job.message?.contains("recording the run failed at its epoch event") == true)
        #expect(job.message?.contains("disk is full") == true)
        #expect(job.bestWeights == nil, "no finish was reported")
        #expect(try await t.yard.queue.claimant(of: "unseen") == nil)
    }

    @Test func anUnwritableStoreAtTheEndIsRetriedUntilTheJobEnds() async throws {
        let store = FaultyJobStore { call in call.name == "update" && call.detail == "succeeded" ? .init("database or disk is full") : nil }
        let t = try TestYard(store: store)
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: late")))
        let worker = t.worker(.training(epochs: 2))
        let running = worker.start()
        defer { running.cancel() }
        try await eventually("the worker to keep the settlement") { worker.worker.unsettledJobs == ["late"] }
        #expect(try await store.require("late").state == .running)
        #expect(try await t.yard.queue.claimant(of: "late") != nil, "the claim is held until the end is recorded")
        store.inject { _ in nil }  // space came back
        try await eventually("the job to end", timeout: .seconds(20)) { try await store.require("late").state == .succeeded }
        try await eventually("the claim to go") { try await t.yard.queue.claimant(of: "late") == nil }
        #expect(worker.worker.unsettledJobs.isEmpty)
    }

    @Test func stoppingAJobWhoseEngineIsGoneStopsItAndResumeWorks() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let control = t.yard.control
        _ = try await control.submit(try Self.parser.parse(t.config("task_id: orphan")))
        // An attempt that died without settling: running, and nobody holds its claim.
        #expect(try await t.yard.queue.claim(worker: "gone")?.jobID == "orphan")
        try await control.move("orphan", to: .running)
        try await t.yard.queue.complete("orphan")
        let stopped = try await control.stop("orphan")
        #expect(stopped.state == .stopped)

        // And one already stuck in `stopping`.
        _ = try await control.submit(try Self.parser.parse(t.config("task_id: stuck")))
        #expect(try await t.yard.queue.claim(worker: "gone")?.jobID == "stuck")
        try await control.move("stuck", to: .running)
        try await control.move("stuck", to: .stopping)
        try await t.yard.queue.complete("stuck")
        #expect(try await control.stop("stuck").state == .stopped)
        #expect(try await control.resume("orphan").state == .queued)
        #expect(try await control.resume("stuck").state == .queued)
    }

    @Test func aJobThatKeepsCrashingItsProcessFailsAfterMaxAttempts() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let control = t.yard.control
        _ = try await control.submit(try Self.parser.parse(t.config("task_id: crashy\nmax_attempts: 2")))
        _ = try await control.submit(try Self.parser.parse(t.config("task_id: default")))
        // Each round: a process claims the job, starts it, and dies.
        func crash(_ id: String) async throws {
            var others: [String] = []
            while let claimed = try await t.yard.queue.claim(worker: "doomed")?.jobID, claimed != id { others.append(claimed) }
            for other in others { try await t.yard.queue.release(other) }
            try await control.move(id, to: .running) { $0.attempts += 1 }
            try await t.yard.store.appendLog(jobID: id, lines: ["epoch 1", "Killed"])
        }
        try await crash("crashy")
        #expect(try await control.recover() == ["crashy"])
        #expect(try await t.yard.store.require("crashy").message?.contains("crash 1 of at most 2") == true)
        try await crash("crashy")
        #expect(try await control.recover() == [])
        let job = try await t.yard.store.require("crashy")
        #expect(job.state == .failed)
        #expect(job.crashes == 2)
        #expect(job.message?.hasPrefix("crashed 2 times (max_attempts: 2); last log lines: ") == true)
        #expect(job.message?.contains("Killed") == true)
        #expect(try await t.yard.queue.claimant(of: "crashy") == nil)

        for round in 1...3 {
            try await crash("default")
            _ = try await control.recover()
            #expect(try await t.yard.store.require("default").state == (round < 3 ? .queued : .failed), "max_attempts defaults to 3")
        }
    }

    /// The stop grace runs on the worker's clock: no test waits two minutes.
    @Test func anEngineThatIgnoresAStopIsKilledAfterTheGracePeriod() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: stuck", epochs: 5000)))
        var runner = ScriptedEngineRunner.training(epochs: 5000, stepDelay: .milliseconds(2))
        runner.ignoresStop = true
        let clock = ManualClock()
        let worker = t.worker(runner) { $0.clock = clock; $0.stopGrace = .seconds(120) }
        let draining = Task { try await worker.drain() }
        try await eventually("epoch 1") { try await t.yard.store.job("stuck")?.epoch ?? 0 >= 1 }
        _ = try await t.yard.control.stop("stuck")
        var advanced = Duration.zero
        try await eventually("the kill", timeout: .seconds(30), every: .milliseconds(5)) {
            if clock.sleeperCount > 0 {
                clock.advance(by: .milliseconds(500))
                advanced += .milliseconds(500)
            }
            return try await t.yard.store.require("stuck").state.isTerminal
        }
        try await draining.value
        let job = try await t.yard.store.require("stuck")
        #expect(job.state == .stopped)
        #expect(job.message?.contains("killed after the grace period") == true)
        #expect(advanced >= .seconds(120) && advanced <= .seconds(122), "killed once the grace had passed on the worker's clock (\(advanced))")
        #expect(job.epoch ?? 0 < 5000)
    }

    @Test func maxAttemptsIsValidated() throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        #expect(throws: YardError.self) { try Self.parser.parse(t.config("max_attempts: 0")) }
        #expect(throws: YardError.self) { try Self.parser.parse(t.config("max_attempts: lots")) }
        #expect(try Self.parser.parse(t.config("max_attempts: 5")).maxAttempts == 5)
        #expect(try Self.parser.parse(t.config()).maxAttempts == 3)
    }

    @Test func listingByStateFiltersBeforeTheLimit() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: old")))
        try await t.worker(.training(epochs: 1)).drain()
        for i in 0..<3 { _ = try await t.yard.control.submit(try Self.parser.parse(t.config("task_id: new\(i)"))) }
        try await t.test { client in
            try await client.execute(uri: "/api/jobs?state=succeeded&limit=1", method: .get) { response in
                #expect(response.json["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["old"])
            }
        }
    }
}

/// A real full disk: the data dir on a small tmpfs that fills up mid-run.
@Suite("Reliability: a full disk", .enabled(if: FullDisk.canMount, "needs root to mount a tmpfs"))
struct FullDiskTests {
    @Test(.timeLimit(.minutes(2))) func aJobOnAFullDiskEndsOnceSpaceReturnsAndCanBeResumed() async throws {
        let mount = try FullDisk(megabytes: 24)
        defer { mount.remove() }
        let t = try TestYard(sqlite: true, directory: mount.path)
        _ = try await t.yard.control.submit(try ReliabilityTests.parser.parse(t.config("task_id: full", epochs: 400)))
        let worker = t.worker(.training(epochs: 400, stepDelay: .milliseconds(10)))
        let running = worker.start()
        defer { running.cancel() }
        try await eventually("epoch 3") { try await t.yard.store.job("full")?.epoch ?? 0 >= 3 }
        try mount.fill()
        // Nothing more can be written: the attempt ends, and its end waits for space.
        try await eventually("the worker to keep the settlement", timeout: .seconds(30)) { worker.worker.unsettledJobs == ["full"] }
        // A read may fail too while the device is full (SQLite's shared-memory
        // index lives beside the database): what can be read says running.
        if let state = try? await t.yard.store.require("full").state { #expect(state == .running) }
        mount.free()
        try await eventually("the job to end", timeout: .seconds(30)) { (try? await t.yard.store.require("full").state.isTerminal) ?? false }
        let job = try await t.yard.store.require("full")
        #expect(job.state == .failed)
        #expect(job.message?.contains("recording the run failed") == true, "\(job.message ?? "")")
        #expect(try await t.yard.queue.claimant(of: "full") == nil)
        _ = try await t.yard.control.resume("full")
        try await eventually("the resumed job to finish", timeout: .seconds(60)) { try await t.yard.store.require("full").state == .succeeded }
    }
}

extension FullDiskTests {
    /// A request the store cannot write on a full disk is a 503 that says
    /// so in one line (not a 500 "internal error"), and the same request
    /// succeeds once there is room again.
    @Test(.timeLimit(.minutes(2))) func aSubmitOnAFullDiskIsA503SayingTheDiskIsFull() async throws {
        let mount = try FullDisk(megabytes: 24)
        defer { mount.remove() }
        let t = try TestYard(sqlite: true, directory: mount.path)
        _ = try await t.yard.control.submit(try ReliabilityTests.parser.parse(t.config("task_id: before", epochs: 1)))
        try mount.fill()
        let config = t.config("task_id: on-full", epochs: 1)
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/yaml"],
                                     body: ByteBuffer(string: config)) { response in
                let text = String(buffer: response.body)
                #expect(response.status == .serviceUnavailable, "\(response.status): \(text)")
                #expect(text.contains("full"), "\(text)")
                #expect(!text.contains("\n"), "one line")
            }
        }
        mount.free()
        try await t.test { client in
            try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/yaml"],
                                     body: ByteBuffer(string: config)) { response in
                #expect(response.status == .created || response.status == .ok, "\(response.status): \(String(buffer: response.body))")
            }
        }
    }
}

/// A tmpfs mounted on a fresh folder, and a file that fills it.
struct FullDisk {
    let path: String

    static let canMount: Bool = {
        guard getuid() == 0, let probe = try? FullDisk(megabytes: 1) else { return false }
        probe.remove()
        return true
    }()

    init(megabytes: Int) throws {
        path = NSTemporaryDirectory() + "yard-full-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Self.sh("mount -t tmpfs -o size=\(megabytes)m tmpfs \(path)")
    }

    /// Writes zeros until the device is full.
    func fill() throws { _ = try? Self.sh("dd if=/dev/zero of=\(path)/filler bs=64k 2>/dev/null") }

    func free() { try? FileManager.default.removeItem(atPath: path + "/filler") }

    func remove() {
        _ = try? Self.sh("umount \(path)")
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    static func sh(_ command: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FaultyJobStore.Injected("`\(command)` exited \(process.terminationStatus)") }
        return process.terminationStatus
    }
}
