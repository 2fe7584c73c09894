import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// `JobRecords`: the same expectations for every driver (the other
/// aggregates have their own suites: EventLog, RegistryStore, SweepStore,
/// DatasetStore contract tests).
@Suite("JobRecords contract")
struct JobStoreContractTests {
    enum Driver: String, CaseIterable, Sendable { case memory, sqlite }

    static func make(_ driver: Driver) throws -> any JobStore {
        switch driver {
        case .memory: MemoryJobStore()
        case .sqlite: SQLiteJobStore(database: try YardDatabase())
        }
    }

    static func job(_ id: String, at seconds: Double = 0) throws -> Job {
        let parser = JobConfigParser { _ in true }
        let config = try parser.parse("model: yolov8n.yaml\ntask_id: \(id)\ntrain: {data: /d.yaml, epochs: 3}\nminio: {MINIO_SECRET_KEY: s}")
        return Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date(timeIntervalSince1970: 1000 + seconds))
    }

    @Test(arguments: Driver.allCases)
    func insertReadListAndUpdate(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a", at: 1), secrets: ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        try await store.insert(Self.job("b", at: 2), secrets: [:])
        #expect(try await store.job("a")?.model == "yolov8n.yaml")
        #expect(try await store.job("zzz") == nil)
        #expect(try await store.jobs(limit: 10).map(\.id) == ["b", "a"])
        #expect(try await store.jobs(limit: 1).map(\.id) == ["b"])
        let updated = try await store.update("a") { $0.state = .running; $0.epoch = 2 }
        #expect(updated.state == .running)
        #expect(try await store.job("a")?.epoch == 2)
        #expect(try await store.jobs(in: [.running]).map(\.id) == ["a"])
        #expect(try await store.secrets(of: "a") == ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        #expect(try await store.job("a")?.config["minio"]?["MINIO_SECRET_KEY"] == "***")
    }

    /// The jobs list: filters by experiment, model and dataset (any version
    /// of a name, or one `NAME@ID`) applied before the limit, and pages
    /// after a cursor in the same order (created, then id), ties included.
    @Test(arguments: Driver.allCases)
    func listsFilterAndPageWithACursor(driver: Driver) async throws {
        let store = try Self.make(driver)
        for index in 0..<7 {
            var job = try Self.job("j\(index)", at: Double(index / 2))  // pairs share a creation time
            job.experiment = index.isMultiple(of: 2) ? "even" : "odd"
            job.model = index < 3 ? "yolov8n.pt" : "models:/det@production"
            job.dataset = index == 6 ? nil : "shapes@\(index < 4 ? "aaa" : "bbb")"
            try await store.insert(job, secrets: [:])
        }
        let all = try await store.jobs(JobQuery(limit: 100)).map(\.id)
        #expect(all == ["j6", "j5", "j4", "j3", "j2", "j1", "j0"])
        #expect(try await store.jobs(JobQuery(limit: 2, experiment: "odd")).map(\.id) == ["j5", "j3"])
        #expect(try await store.jobs(JobQuery(limit: 100, model: "yolov8n.pt")).map(\.id) == ["j2", "j1", "j0"])
        #expect(try await store.jobs(JobQuery(limit: 100, dataset: "shapes")).map(\.id) == ["j5", "j4", "j3", "j2", "j1", "j0"])
        #expect(try await store.jobs(JobQuery(limit: 100, dataset: "shapes@bbb")).map(\.id) == ["j5", "j4"])
        #expect(try await store.jobs(JobQuery(limit: 100, dataset: "shape")).isEmpty, "a name is whole, not a prefix")
        #expect(try await store.jobs(JobQuery(limit: 100, experiment: "even", model: "models:/det@production")).map(\.id) == ["j6", "j4"])
        // Pages of 3 walk the whole list once, in order, ties by id.
        var seen: [String] = [], cursor: String?
        repeat {
            let page = try await store.jobs(JobQuery(limit: 3, before: cursor))
            seen += page.map(\.id)
            cursor = page.count == 3 ? page.last?.id : nil
        } while cursor != nil
        #expect(seen == all)
        #expect(try await store.jobs(JobQuery(limit: 10, experiment: "even", before: "j4")).map(\.id) == ["j2", "j0"])
        #expect(try await store.jobs(JobQuery(limit: 10, before: "no-such-job")).isEmpty)
    }

    /// `/metrics` reads jobs by state and experiment, and since when the
    /// queued ones wait: their last state event (a resume), else their submission.
    @Test(arguments: Driver.allCases)
    func gaugesCountByStateAndExperimentAndDateTheQueuedByTheirLastStateEvent(driver: Driver) async throws {
        let store = try Self.make(driver)
        #expect(try await store.jobGauges() == JobGauges())
        try await store.insert(Self.job("resumed", at: 1), secrets: [:])
        try await store.insert(Self.job("fresh", at: 2), secrets: [:])
        var other = try Self.job("other", at: 3)
        other.experiment = "exp-b"
        try await store.insert(other, secrets: [:])
        try await store.update("other") { $0.state = .running }
        let before = Date()
        try await store.update("resumed", recording: "state") { _ in ["state": "queued"] }
        let gauges = try await store.jobGauges()
        let experiment = try Self.job("x").experiment
        #expect(gauges.counts == [.init(state: .queued, experiment: experiment): 2, .init(state: .running, experiment: "exp-b"): 1])
        #expect(gauges.queuedSince.count == 2)
        #expect(gauges.queuedSince.first == Date(timeIntervalSince1970: 1002), "the job with no state event waits from its submission")
        #expect(gauges.queuedSince.last.map { $0.timeIntervalSince(before) > -1 } == true, "the resumed one waits from its state event, not from 1001")
    }

    @Test(arguments: Driver.allCases)
    func duplicateIDsAndMissingJobsAreErrors(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        await #expect(throws: YardError.self) { try await store.insert(Self.job("a"), secrets: [:]) }
        await #expect(throws: YardError.self) { try await store.update("nope") { _ in } }
        await #expect(throws: YardError.self) { try await store.require("nope") }
    }

    /// A job and the event of its arrival are one write (the job layer
    /// inserted the job, then appended the event: a crash in between left a
    /// job the log's followers never saw arrive); a refused insert records
    /// neither, and the event carries the job's experiment.
    @Test(arguments: Driver.allCases)
    func aJobArrivesWithItsStateEventOrNotAtAll(driver: Driver) async throws {
        let store = try Self.make(driver)
        let head = try await store.eventHead()
        try await store.insert(Self.job("a"), secrets: [:], recording: ["state": "queued"])
        let events = try await store.events(after: head, limit: 10, filter: EventFilter())
        #expect(events.map(\.type) == ["state"])
        #expect(events.first?.jobID == "a" && events.first?.payload["state"] == "queued")
        #expect(events.first?.experiment == (try await store.job("a"))?.experiment)
        await #expect(throws: YardError.self) { try await store.insert(Self.job("A"), secrets: [:], recording: ["state": "queued"]) }
        #expect(try await store.events(after: head, limit: 10, filter: EventFilter()).count == 1)
    }

    /// Writes in one batch: each stores its records with its change or,
    /// skipped or failed, nothing; a failed one does not stop the others;
    /// a later write of the batch sees what an earlier one wrote.
    @Test(arguments: Driver.allCases)
    func aBatchOfWritesStoresEachWithItsChangeOrNotAtAll(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        let records: [JobRecord] = [.logs(["one", "two"]), .event(type: "progress", payload: ["batch": 1]),
                                    .epoch(EpochRecord(jobID: "a", epoch: 1, metrics: ["m": 0.5], seconds: 2)),
                                    .artifact(ArtifactRecord(jobID: "a", key: "a/best.pt", kind: "weights", size: 3))]
        let skipped = try await store.apply(records.map { record in JobWrite(id: "a") { _ in nil } })
        #expect(skipped.allSatisfy { if case .skipped = $0 { true } else { false } })
        #expect(try await store.logs(of: "a", after: 0, limit: 10).isEmpty)
        #expect(try await store.events(of: "a", after: 0, limit: 10).isEmpty)
        #expect(try await store.epochs(of: "a").isEmpty)
        #expect(try await store.artifacts(of: "a").isEmpty)

        var writes = records.map { record in
            JobWrite(id: "a") { job in
                job.reportSeq = (job.reportSeq ?? 0) + 1
                return [record]
            }
        }
        writes.insert(JobWrite(id: "a") { job in
            job.epoch = 99
            try job.state.checkMove(to: .succeeded, job: "a")
            return [.logs(["never"])]
        }, at: 2)
        writes.append(JobWrite(id: "nope") { _ in [] })
        let results = try await store.apply(writes)
        #expect(results.map { if case .applied = $0 { "applied" } else if case .failed = $0 { "failed" } else { "missing" } }
                == ["applied", "applied", "failed", "applied", "applied", "missing"])
        let job = try #require(try await store.job("a"))
        #expect(job.reportSeq == 4, "each write saw the one before")
        #expect(job.epoch != 99)
        #expect(try await store.logs(of: "a", after: 0, limit: 10).map(\.line) == ["one", "two"])
        #expect(try await store.events(of: "a", after: 0, limit: 10).map(\.type) == ["progress"])
        #expect(try await store.epochs(of: "a").map(\.epoch) == [1])
        #expect(try await store.artifacts(of: "a").map(\.key) == ["a/best.pt"])
    }

    @Test(arguments: Driver.allCases)
    func aFailedUpdateChangesNothing(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        await #expect(throws: YardError.self) {
            try await store.update("a") { job in
                job.epoch = 99
                try job.state.checkMove(to: .succeeded, job: "a")
            }
        }
        #expect(try await store.job("a")?.epoch == nil)
    }

    @Test(arguments: Driver.allCases)
    func anEpochRecordedTwiceIsOneRow(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        try await store.recordEpoch(EpochRecord(jobID: "a", epoch: 2, metrics: ["m": 1], seconds: 1))
        try await store.recordEpoch(EpochRecord(jobID: "a", epoch: 1, metrics: ["m": 0.5], seconds: 1))
        try await store.recordEpoch(EpochRecord(jobID: "a", epoch: 2, metrics: ["m": 2], seconds: 3))
        let epochs = try await store.epochs(of: "a")
        #expect(epochs.map(\.epoch) == [1, 2])
        #expect(epochs.last?.metrics == ["m": 2])
        #expect(epochs.last?.seconds == 3)
    }

    @Test(arguments: Driver.allCases)
    func eventsAndLogsComeBackInOrderAfterACursor(driver: Driver) async throws {
        let store = try Self.make(driver)
        let first = try await store.appendEvent(jobID: "a", type: "state", payload: ["state": "queued"])
        try await store.appendEvent(jobID: "b", type: "state", payload: ["state": "queued"])
        let third = try await store.appendEvent(jobID: "a", type: "epoch", payload: ["epoch": 1])
        #expect(try await store.events(of: "a", after: 0, limit: 10).map(\.id) == [first.id, third.id])
        #expect(try await store.events(of: "a", after: first.id, limit: 10).map(\.type) == ["epoch"])
        #expect(try await store.events(of: "a", after: 0, limit: 1).count == 1)
        try await store.appendLog(jobID: "a", lines: ["one", "two"])
        try await store.appendLog(jobID: "b", lines: ["other"])
        try await store.appendLog(jobID: "a", lines: ["three"])
        let lines = try await store.logs(of: "a", after: 0, limit: 10)
        #expect(lines.map(\.line) == ["one", "two", "three"])
        #expect(try await store.logs(of: "a", after: lines[1].id, limit: 10).map(\.line) == ["three"])
    }

    @Test(arguments: Driver.allCases)
    func artifactsAreKeyedPerJob(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        try await store.recordArtifact(ArtifactRecord(jobID: "a", key: "a/weights/best.pt", kind: "weights", size: 10))
        try await store.recordArtifact(ArtifactRecord(jobID: "a", key: "a/weights/best.pt", kind: "weights", size: 12))
        try await store.recordArtifact(ArtifactRecord(jobID: "a", key: "a/results.csv", kind: "results", size: 5))
        let artifacts = try await store.artifacts(of: "a")
        #expect(artifacts.map(\.key) == ["a/results.csv", "a/weights/best.pt"])
        #expect(artifacts.last?.size == 12)
    }

    @Test func theSQLiteFileKeepsEverythingAcrossReopen() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = SQLiteJobStore(database: try YardDatabase(path: dir.file("y.sqlite")))
            try await store.insert(Self.job("a"), secrets: ["k": "v"])
            try await store.recordEpoch(EpochRecord(jobID: "a", epoch: 1, metrics: ["m": 1], seconds: 1))
        }
        let reopened = SQLiteJobStore(database: try YardDatabase(path: dir.file("y.sqlite")))
        #expect(try await reopened.job("a")?.id == "a")
        #expect(try await reopened.epochs(of: "a").count == 1)
        #expect(try await reopened.secrets(of: "a") == ["k": "v"])
    }

    @Test func anUnwritableDatabasePathIsAOneLineError() {
        do {
            _ = try YardDatabase(path: "/proc/nope/y.sqlite")
            Issue.record("expected an error")
        } catch let error as YardError {
            #expect(error.field == "data-dir")
            #expect(!error.message.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
