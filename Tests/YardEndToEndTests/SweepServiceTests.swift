import Foundation
import Logging
import Synchronization
import Testing
import YardArtifacts
import YardDomain
import YardJobs
import YardEngine
import YardQueue
import YardStore
import YardSweeps
import YardTestSupport
import YardTracker
import YardWorker

extension EndToEnd {
/// Sweeps with the real study process (Optuna) and two in-process workers
/// whose scripted engine scores a trial by its `lr0`: above 0.6 it fails
/// (the deliberately bad region), below 0.01 it learns little (what the
/// pruner should stop), in between it does well. The grid makes each
/// region certain to be visited; its seed fixes the order. Training itself is
/// scripted here; the real-Ultralytics sweep comes with `yard sweep`.
@Suite("Sweep service")
struct SweepServiceTests {
    struct Rig {
        let dir: TemporaryDirectory
        let control: JobControl
        let workers: [Worker]
        let parser: JobConfigParser
        let data: String
        /// MLflow calls of the workers and the service, as in a server.
        let spool: TrackingSpool
        /// The store, where a test may inject a fault (a full disk).
        let store: FaultyJobStore

        init() throws {
            dir = try TemporaryDirectory("sweep")
            store = FaultyJobStore(base: SQLiteJobStore(database: try YardDatabase(path: dir.file("yard.sqlite"))))
            let queue = MemoryJobQueue()
            control = JobControl(store: store, queue: queue)
            let ledger = StoreLedger(control: control)
            var quiet = Logger(label: "test")
            quiet.logLevel = .critical
            spool = TrackingSpool(directory: dir.file("tracking"), logger: quiet)
            let control = self.control, dir = self.dir, spool = self.spool
            workers = (0..<2).map { index in
                Worker(configuration: Worker.Configuration(id: "w\(index)", dataDirectory: dir.file("w\(index)"), stopGrace: .seconds(5)),
                       ledger: ledger, queue: queue, runner: SweepServiceTests.engine(),
                       trackers: [StoreTracker(records: ledger), MLflowTracker(spool: spool, secrets: ledger, defaultURI: nil)],
                       artifacts: LocalArtifactStore(root: dir.file("artifacts")), logger: quiet)
            }
            _ = control
            parser = JobConfigParser { FileManager.default.fileExists(atPath: $0) }
            data = try dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        }

        func service(retryDelay: Duration = .milliseconds(50), failureLimit: Int = 10, longestWait: Duration = .seconds(60),
                     logger: Logger? = nil) -> SweepService {
            var quiet = Logger(label: "sweeps")
            quiet.logLevel = .warning
            let engine = EngineEnvironment.resolve(python: ProcessInfo.processInfo.environment["YARD_PYTHON"], dataDirectory: dir.path)
            return SweepService(control: control, study: StudyProcess(engine: engine), dataDirectory: dir.path, parser: parser,
                                retryDelay: retryDelay, failureLimit: failureLimit, longestWait: longestWait,
                                tracker: MLflowSweepTracker(spool: spool, defaultURI: nil, directory: dir.file("sweeps")),
                                logger: logger ?? quiet)
        }

        /// A sweep as a server before issue 26 stored it: `lr0: [choice, 1, 1.0]`
        /// was accepted, and its config reads back as `[choice, 1, 1]`, which no
        /// pass can validate ("a choice is listed twice"). With `queued`, its
        /// trial 0 was asked and its job queued before that.
        func unreadableSweep(queued: Bool) async throws -> Sweep {
            let good = try config("{n_trials: 3, max_concurrent: 1, sampler: RandomSampler, seed: 0, pruner: none, search_space: {train: {lr0: [choice, 1, 2]}}}")
            let text = String(decoding: try JSONEncoder().encode(good.json), as: UTF8.self)
            let broken = text.replacingOccurrences(of: #"["choice",1,2]"#, with: #"["choice",1,1]"#)
            #expect(broken != text)
            let sweep = Sweep(id: "sweep-unreadable", study: "unreadable", experiment: good.experiment,
                              config: try JSONDecoder().decode(JSONValue.self, from: Data(broken.utf8)), createdAt: Date())
            try await store.insertSweep(sweep, secrets: [:])
            guard queued else { return sweep }
            var trial = try parser.validate(SweepSpec.trialDocument(good.document, values: ["train.lr0": 1]))
            trial = trial.withTaskID(Sweep.trialJobID(sweep: sweep.id, number: 0))
            _ = try await control.submit(trial)
            return try await store.updateSweep(sweep.id) { $0.trials.append(Sweep.Trial(number: 0, jobID: Sweep.trialJobID(sweep: sweep.id, number: 0), params: ["train.lr0": 1])) }
        }

        func config(_ sweeper: String, extra: String = "") throws -> JobConfig {
            try parser.parse("model: yolov8n.yaml\ntrain: {data: \(data), epochs: 6, imgsz: 32, optimizer: SGD}\nsweeper: \(sweeper)\n" + extra)
        }
    }

    /// Fitness by epoch for a trial's lr0; lr0 above 0.6 fails at epoch 2.
    static func engine() -> ScriptedEngineRunner {
        ScriptedEngineRunner(stepDelay: .milliseconds(150)) { request in
            let lr0 = request.spec["train"]?["lr0"]?.doubleValue ?? 0.01
            let epochs = request.spec["train"]?["epochs"]?.intValue ?? 6
            let run = "\(request.spec["project"]?.stringValue ?? "/runs")/\(request.jobID)"
            let quality = lr0 < 0.01 ? 0.05 : 0.4 + lr0 / 2
            var steps: [EngineOutput] = [.event(EngineEvent(kind: .started, payload: ["device": "cpu", "epochs": .int(epochs), "save_dir": .string(run)]))]
            for epoch in 1...epochs {
                if lr0 > 0.6 && epoch == 2 {
                    steps.append(.event(EngineEvent(kind: .failed, payload: ["error": "FloatingPointError", "message": .string("loss is NaN (lr0 \(lr0))")])))
                    return steps
                }
                let fitness = quality * Double(epoch) / Double(epochs)
                steps.append(.event(EngineEvent(kind: .epoch, payload: ["epoch": .int(epoch), "epochs": .int(epochs), "seconds": 0.01,
                                                                       "metrics": ["metrics/mAP50-95(B)": .double(fitness * 0.9)], "fitness": .double(fitness)])))
            }
            steps.append(.event(EngineEvent(kind: .finished, payload: ["best": .string(run + "/weights/best.pt"), "fitness": .double(quality),
                                                                      "metrics": ["metrics/mAP50-95(B)": .double(quality * 0.9)]])))
            return steps
        }
    }

    /// Runs the workers and `service` until `done` holds (or the timeout).
    static func run(_ rig: Rig, _ service: SweepService, timeout: Duration = .seconds(120),
                    watch: @escaping @Sendable () async throws -> Void = {}, until done: @escaping @Sendable () async throws -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in rig.workers { group.addTask { try await worker.run() } }
            group.addTask { try await service.run() }
            group.addTask { try await rig.spool.run() }
            try await eventually("the sweep to get there", timeout: timeout, every: .milliseconds(50)) {
                try await watch()
                return try await done()
            }
            group.cancelAll()
        }
    }

    /// A sweep on `dataset:NAME` pins the version when it is created: a
    /// version added while it runs does not reach its later trials.
    @Test func aSweepOnARegisteredDatasetPinsItsVersionForEveryTrial() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        func version(_ id: String) -> DatasetVersion {
            DatasetVersion(name: "shapes", number: 0, id: id, createdAt: Date(), source: "/x", format: "yolo", task: "detect",
                           files: 1, bytes: 1, classes: ["a"], splits: [:], errors: 0, warnings: 0, notes: [])
        }
        _ = try await rig.store.recordDatasetVersion(version("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.dir"))
        let service = rig.service()
        let config = try rig.parser.parse("""
            model: yolov8n.yaml
            train: {data: "dataset:shapes", epochs: 3, optimizer: SGD}
            sweeper: {n_trials: 4, max_concurrent: 1, sampler: RandomSampler, seed: 1, search_space: {train: {lr0: [uniform, 0.001, 0.1]}}}
            """)
        let sweep = try await service.create(config)
        _ = try await rig.store.recordDatasetVersion(version("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.dir"))
        #expect(sweep.config["train"]?["data"]?.stringValue == "dataset:shapes@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.dir")
        // The first trial's job, and the next one after it ends.
        let first = try #require(sweep.trials.first?.jobID)
        _ = try await rig.control.stop(first)
        await service.advanceAll()
        let jobs = try await rig.store.jobs(limit: 10)
        #expect(jobs.count == 2)
        for job in jobs {
            #expect(job.dataset == "shapes@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.dir", "\(job.id): \(job.dataset ?? "none")")
        }
    }

    @Test func sixTrialsTwoAtATimeEachEndingCompletePrunedOrFailed() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let service = rig.service()
        let sweep = try await service.create(try rig.config("""
            {study_name: lr-hunt, n_trials: 6, max_concurrent: 2, sampler: GridSampler, seed: 0, pruner: MedianPruner, grace_period: 2,
             search_space: {train: {lr0: [choice, 0.2, 0.3, 0.001, 0.9, 0.002, 0.4]}}}
            """))
        #expect(sweep.trials.count == 2, "max_concurrent trials queued at once")
        let store = rig.control.store
        let most = Mutex(0)
        try await Self.run(rig, service, watch: {
            let running = try await store.jobs(in: [.queued, .running, .stopping]).count
            most.withLock { $0 = max($0, running) }
        }) { try await store.sweep(sweep.id)?.state == .finished }

        let done = try #require(try await store.sweep(sweep.id))
        #expect(most.withLock { $0 } <= 2, "never more than max_concurrent trials at once")
        #expect(done.trials.map(\.number) == Array(0..<6))
        var ends: [JobState: Int] = [:]
        for trial in done.trials {
            let job = try await store.require(trial.jobID)
            #expect(job.state == trial.told, "\(trial.jobID)")
            #expect(job.attempts == 1, "no trial ran twice")
            #expect(job.config["train"]?["lr0"]?.doubleValue == trial.params["train.lr0"]?.doubleValue)
            #expect(job.config["metadata"]?["sweep_id"]?.stringValue == sweep.id)
            ends[job.state, default: 0] += 1
            if job.state == .pruned {
                #expect(job.message?.contains("pruned at epoch") == true)
                #expect((job.epoch ?? 0) >= 2, "not pruned within its grace period")
            }
        }
        #expect(Set(ends.keys).isSubset(of: [.succeeded, .pruned, .failed]))
        #expect(ends[.failed, default: 0] >= 1, "the bad region fails: \(ends)")
        #expect(ends[.pruned, default: 0] >= 1, "the pruner stops a weak trial: \(ends) \(done.trials.map { $0.params })")
        let best = try #require(done.best)
        let succeeded = done.trials.filter { $0.told == .succeeded }.compactMap(\.value)
        #expect(best.value == succeeded.max())
        #expect(done.message?.contains("best: trial \(best.number)") == true)
    }

    /// A sampled value that makes the trial's config invalid (imgsz -1 here)
    /// fails that trial with the config's reason, told FAIL; the study goes on.
    @Test func aTrialWhoseValuesMakeAnInvalidConfigFailsAndTheSweepGoesOn() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let service = rig.service()
        let sweep = try await service.create(try rig.config("""
            {n_trials: 3, max_concurrent: 1, sampler: GridSampler, seed: 0, pruner: none,
             search_space: {train: {imgsz: [choice, 32, -1, 64]}}}
            """))
        let store = rig.control.store
        try await Self.run(rig, service, timeout: .seconds(60)) { try await store.sweep(sweep.id)?.state == .finished }
        let done = try #require(try await store.sweep(sweep.id))
        #expect(done.trials.count == 3)
        let bad = try #require(done.trials.first { $0.params["train.imgsz"] == -1 })
        #expect(bad.told == .failed)
        #expect(bad.message?.contains("train.imgsz") == true, "\(bad)")
        #expect(try await store.job(bad.jobID) == nil, "nothing was queued for it")
        #expect(done.trials.filter { $0.told == .succeeded }.count == 2)
    }

    /// The sweep is stored but its first trial cannot be (a full disk): the
    /// request still answers with the sweep, not an error that would read as
    /// "not created", and the service queues the trials once the disk is back.
    @Test func aSweepStoredIsAnsweredEvenWhenItsFirstTrialCannotBeQueuedYet() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let service = rig.service()
        rig.store.inject { $0.name == "insert" ? .init("disk full") : nil }
        let sweep = try await service.create(try rig.config("{n_trials: 2, max_concurrent: 2, sampler: RandomSampler, seed: 0, pruner: none, search_space: {train: {lr0: [uniform, 0.1, 0.5]}}}"))
        #expect(try await rig.store.sweep(sweep.id) != nil)
        #expect(try await rig.store.jobs(limit: 10, state: nil).isEmpty)
        rig.store.inject { _ in nil }
        try await Self.run(rig, service, timeout: .seconds(60)) { try await rig.store.sweep(sweep.id)?.state == .finished }
        let done = try #require(try await rig.store.sweep(sweep.id))
        #expect(done.trials.count == 2 && done.trials.allSatisfy { $0.told == .succeeded }, "\(done.trials)")
    }

    /// Issue 26: a sweep no pass can read answered 400 to its stop and stayed
    /// `stopping` for ever. A stop always ends a sweep: with no trial, and
    /// with a queued trial (stopped through the ordinary path).
    @Test(arguments: [false, true])
    func aStopEndsASweepWhoseStudyCannotBeUsed(queued: Bool) async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let service = rig.service()
        let sweep = try await rig.unreadableSweep(queued: queued)
        let stopped = try await service.stop(sweep.id)
        #expect(stopped.state == .stopped, "\(stopped.state) \(stopped.message ?? "")")
        #expect(stopped.message?.contains("sweeper.search_space.train.lr0") == true, "\(stopped.message ?? "")")
        #expect(stopped.finishedAt != nil)
        if queued {
            let job = try await rig.store.require(sweep.trials[0].jobID)
            #expect(job.state == .stopped, "its trial is stopped with it: \(job.state)")
        }
        #expect(try await service.stop(sweep.id).state == .stopped, "a second stop answers the same")
        await service.advanceAll()
        #expect(try await rig.store.sweep(sweep.id)?.state == .stopped)
    }

    /// Issue 26: such a sweep failed every pass, logged every second, for
    /// ever. It now fails a bounded number of passes, each waiting longer,
    /// and ends `failed` with the reason; its queued trial is stopped.
    @Test func aSweepWhosePassesAllFailEndsFailedAfterItsTries() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let log = LogCapture()
        let service = rig.service(retryDelay: .milliseconds(20), failureLimit: 4, longestWait: .milliseconds(200), logger: log.logger)
        let sweep = try await rig.unreadableSweep(queued: true)
        let started = ContinuousClock.now
        let running = Task { try await service.run() }
        defer { running.cancel() }
        try await eventually("the sweep to end", timeout: .seconds(30), every: .milliseconds(20)) {
            try await rig.store.sweep(sweep.id)?.state.isTerminal == true
        }
        let took = ContinuousClock.now - started
        let ended = try #require(try await rig.store.sweep(sweep.id))
        #expect(ended.state == .failed, "\(ended.state)")
        let message = ended.message ?? ""
        #expect(message.contains("failed 4 passes in a row") && message.contains("sweeper.search_space.train.lr0: a choice is listed twice"), "\(message)")
        #expect(!message.contains("\n"))
        #expect(try await rig.store.require(sweep.trials[0].jobID).state == .stopped, "its trial does not run on without it")
        // 20 + 40 + 80 ms between the four tries: the waits grow.
        #expect(took >= .milliseconds(140), "\(took)")
        let warnings = log.messages(.warning).filter { $0.contains(sweep.id) }
        #expect(warnings.count <= 5, "a line per try, and one that its end is not tracked: \(warnings)")
        try await Task.sleep(for: .milliseconds(500))
        #expect(log.messages(.warning).filter { $0.contains(sweep.id) }.count == warnings.count, "nothing more once it ended")
    }

    /// With MLflow configured, a sweep is one parent run and each trial's run
    /// its child (`mlflow.parentRunId`), read back with the official client;
    /// the parent carries the sweep's settings, the best-so-far curve and, at
    /// the end, the best trial's params under the names its run uses.
    @Test func aSweepIsOneMLflowParentRunWithItsTrialsAsChildren() async throws {
        let uri = try MLflow.sharedURI()
        let rig = try Rig()
        defer { rig.dir.remove() }
        let experiment = "sweep-\(UUID().uuidString.prefix(8))"
        let service = rig.service()
        let sweep = try await service.create(try rig.config("""
            {n_trials: 4, max_concurrent: 2, sampler: GridSampler, seed: 0, pruner: none,
             search_space: {train: {lr0: [choice, 0.2, 0.3, 0.9, 0.4]}, model: [choice, yolov8n.yaml]}}
            """, extra: "experiment: \(experiment)\nmlflow: {MLFLOW_TRACKING_URI: \"\(uri)\"}\n"))
        let store = rig.control.store
        try await Self.run(rig, service) {
            guard try await store.sweep(sweep.id)?.state == .finished else { return false }
            return await rig.spool.pendingJobs().isEmpty
        }
        let done = try #require(try await store.sweep(sweep.id))
        let best = try #require(done.best)

        let runs = try MLflow.python(uri, """
            runs = mlflow.search_runs(experiment_names=[\(experiment.debugDescription)], output_format="list")
            out = []
            for r in runs:
                hist = {k: [[m.step, m.value] for m in client.get_metric_history(r.info.run_id, k)] for k in r.data.metrics}
                arts = [a.path for a in client.list_artifacts(r.info.run_id)]
                out.append({"id": r.info.run_id, "name": r.info.run_name, "status": r.info.status, "params": r.data.params,
                            "tags": r.data.tags, "hist": hist, "arts": arts})
            print(json.dumps(out))
            """).arrayValue ?? []
        let parents = runs.filter { $0["tags"]?["trainyard.sweep_id"]?.stringValue == sweep.id }
        #expect(parents.count == 1, "one parent run: \(runs.map { $0["name"] ?? "" })")
        let parent = try #require(parents.first)
        let parentID = try #require(parent["id"]?.stringValue)
        let children = runs.filter { $0["tags"]?["mlflow.parentRunId"]?.stringValue == parentID }
        #expect(children.compactMap { $0["name"]?.stringValue }.sorted() == done.trials.map(\.jobID).sorted(), "every trial a child")
        #expect(runs.count == 5, "the parent and four trials, no other run")
        for child in children {
            let trial = try #require(done.trials.first { $0.jobID == child["name"]?.stringValue })
            #expect(child["status"]?.stringValue == (trial.told == .succeeded ? "FINISHED" : "FAILED"), "\(trial.jobID) \(String(describing: trial.told))")
        }
        #expect(parent["status"] == "FINISHED")
        #expect(parent["name"]?.stringValue == sweep.id)
        #expect(parent["params"]?["sweeper.sampler"] == "GridSampler")
        #expect(parent["params"]?["search_space.train.lr0"] == "[choice, 0.2, 0.3, 0.9, 0.4]")
        #expect(parent["params"]?["epochs"] == "6", "base values a trial never changes")
        #expect(parent["params"]?["lr0"]?.stringValue.flatMap(Double.init) == best.params["train.lr0"]?.doubleValue, "the best trial's params")
        #expect(parent["params"]?["model"] == "yolov8n.yaml")
        #expect(parent["tags"]?["trainyard.best_job_id"]?.stringValue == best.jobID)
        let curve = parent["hist"]?["fitness"]?.arrayValue ?? []
        #expect(curve.last?[1]?.doubleValue == best.value, "the parent's fitness is the best trial's: \(curve)")
        let values = curve.compactMap { $0[1]?.doubleValue }
        #expect(values == values.sorted(), "a best-so-far curve only improves: \(values)")
        #expect(parent["arts"]?.arrayValue?.contains("config.redacted.json") == true)
    }

    /// The sweep service (and its study process) goes away mid-sweep while
    /// the workers go on; a trial was even asked of Optuna and not recorded
    /// (a crash between the two). A new service finishes the sweep with
    /// exactly n_trials trials, none run twice, the orphan adopted.
    @Test func aRestartedServiceFinishesWithExactlyItsTrials() async throws {
        let rig = try Rig()
        defer { rig.dir.remove() }
        let store = rig.control.store
        let config = try rig.config("{n_trials: 5, max_concurrent: 2, sampler: RandomSampler, seed: 1, pruner: none, search_space: {train: {lr0: [uniform, 0.1, 0.5]}}}")
        let spec = try #require(config.sweep)
        try await withThrowingTaskGroup(of: Void.self) { workers in
            for worker in rig.workers { workers.addTask { try await worker.run() } }
            let first = rig.service()
            let sweep = try await first.create(config)
            let running = Task { try await first.run() }
            try await eventually("two trials told", timeout: .seconds(180)) { (try await store.sweep(sweep.id)?.trials.filter { $0.told != nil }.count ?? 0) >= 2 }
            running.cancel()
            _ = try? await running.value
            // A trial Optuna handed out just before the crash, never recorded.
            let engine = EngineEnvironment.resolve(python: ProcessInfo.processInfo.environment["YARD_PYTHON"], dataDirectory: rig.dir.path)
            let orphanStudy = StudyProcess(engine: engine)
            try await orphanStudy.open(StudyDefinition(name: sweep.study, storage: "sqlite:///" + rig.dir.file("sweeps/optuna.sqlite3"), spec: spec))
            let orphan = try await orphanStudy.ask(sweep.study).number
            await orphanStudy.close()

            let second = rig.service()
            let again = Task { try await second.run() }
            try await eventually("the sweep finished", timeout: .seconds(300)) { try await store.sweep(sweep.id)?.state == .finished }
            again.cancel()
            _ = try? await again.value
            workers.cancelAll()

            let done = try #require(try await store.sweep(sweep.id))
            #expect(done.trials.count == 5, "\(done.trials.map(\.number))")
            #expect(Set(done.trials.map(\.number)).count == 5, "no trial twice")
            #expect(done.trials.contains { $0.number == orphan }, "the trial asked before the crash was run, not lost")
            #expect(done.trials.allSatisfy { $0.told == .succeeded })
            for trial in done.trials { #expect(try await store.require(trial.jobID).attempts == 1, "\(trial.jobID) ran once") }
            let check = StudyProcess(engine: engine)
            let inOptuna = try await check.open(StudyDefinition(name: sweep.study, storage: "sqlite:///" + rig.dir.file("sweeps/optuna.sqlite3"), spec: spec))
            await check.close()
            #expect(inOptuna.count == 5 && inOptuna.allSatisfy { $0.state == .complete }, "Optuna's study has exactly the 5 trials, all complete")
        }
    }
}
}
