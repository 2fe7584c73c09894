import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// The same expectations for every JobStore driver.
@Suite("JobStore contract")
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

    @Test(arguments: Driver.allCases)
    func duplicateIDsAndMissingJobsAreErrors(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        await #expect(throws: YardError.self) { try await store.insert(Self.job("a"), secrets: [:]) }
        await #expect(throws: YardError.self) { try await store.update("nope") { _ in } }
        await #expect(throws: YardError.self) { try await store.require("nope") }
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
    func sweepsAreStoredListedAndUpdatedWithTheirSecretsApart(driver: Driver) async throws {
        let store = try Self.make(driver)
        let config = try Self.job("base").config
        var first = Sweep(id: "sw1", study: "lr-study", experiment: "e", config: config, createdAt: Date(timeIntervalSince1970: 10))
        first.trials = [Sweep.Trial(number: 0, jobID: Sweep.trialJobID(sweep: "sw1", number: 0), params: ["train.lr0": 0.01])]
        try await store.insertSweep(first, secrets: ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        try await store.insertSweep(Sweep(id: "sw2", study: "other", experiment: "e", config: .object([:]), createdAt: Date(timeIntervalSince1970: 20)), secrets: [:])
        await #expect(throws: YardError.self) {
            try await store.insertSweep(Sweep(id: "SW1", study: "x", experiment: "e", config: .object([:]), createdAt: Date()), secrets: [:])
        }
        #expect(try await store.sweep("sw1") == first)
        #expect(try await store.sweep("nope") == nil)
        #expect(try await store.sweepSecrets(of: "sw1") == ["minio\u{1F}MINIO_SECRET_KEY": "s"])
        #expect(try await store.sweep("sw1")?.config["minio"]?["MINIO_SECRET_KEY"] == "***")
        #expect(try await store.sweeps(limit: 10, active: false).map(\.id) == ["sw2", "sw1"])
        let done = try await store.updateSweep("sw2") { sweep in
            sweep.state = .finished
            sweep.best = Sweep.Best(number: 3, jobID: "sw2-t3", value: 0.7, params: ["model": "yolov8s.yaml"])
        }
        #expect(done.best?.value == 0.7)
        #expect(try await store.sweeps(limit: 10, active: true).map(\.id) == ["sw1"], "ended sweeps are not active")
        #expect(try await store.sweeps(limit: 1, active: false).map(\.id) == ["sw2"])
        await #expect(throws: YardError.self) { try await store.updateSweep("nope") { _ in } }
        #expect(Sweep.trialJobID(sweep: "sw1", number: 12) == "sw1-t12")
    }

    /// The registry of record: the store numbers versions per model, a job
    /// registered again under the same name is the version it made, and
    /// every alias move is kept with what it replaced.
    @Test(arguments: Driver.allCases)
    func modelVersionsAreNumberedPerModelAndAliasMovesAreKept(driver: Driver) async throws {
        let store = try Self.make(driver)
        func draft(_ name: String, _ job: String) -> ModelVersion {
            var v = ModelVersion(name: name, version: "", jobID: job, runID: "", source: "\(job)/weights/best.pt", createdAt: Date(timeIntervalSince1970: 100))
            v.sha256 = String(repeating: "a", count: 64)
            return v
        }
        let (v1, made1) = try await store.createModelVersion(draft("det", "j1"))
        let (v2, _) = try await store.createModelVersion(draft("det", "j2"))
        let (other, _) = try await store.createModelVersion(draft("cls", "j1"))
        let (again, made) = try await store.createModelVersion(draft("det", "j1"))
        #expect(made1 && !made)
        #expect([v1.version, v2.version, other.version, again.version] == ["1", "2", "1", "1"])

        let set = try await store.setModelAlias(name: "det", alias: "production", version: "1", reason: "alias", time: Date(timeIntervalSince1970: 200))
        #expect(set.previous == nil)
        let moved = try await store.setModelAlias(name: "det", alias: "production", version: "2", reason: "deploy", time: Date(timeIntervalSince1970: 300))
        #expect(moved.previous == "1" && moved.version == "2")
        await #expect(throws: YardError.self) {
            try await store.setModelAlias(name: "det", alias: "production", version: "9", reason: "alias", time: Date())
        }
        #expect(try await store.modelVersions(name: "det").map { "\($0.version):\($0.aliases)" } == ["2:[\"production\"]", "1:[]"])
        let removed = try await store.setModelAlias(name: "det", alias: "production", version: nil, reason: "removed", time: Date(timeIntervalSince1970: 400))
        #expect(removed.previous == "2")
        #expect(try await store.modelVersions(name: "det").allSatisfy { $0.aliases.isEmpty })
        let history = try await store.aliasHistory(name: "det", alias: "production", limit: 10)
        #expect(history.map(\.reason) == ["removed", "deploy", "alias"])
        #expect(history.map(\.version) == [nil, "2", "1"])
        #expect(try await store.aliasHistory(name: "det", alias: nil, limit: 2).count == 2)

        let updated = try await store.updateModelVersion(name: "det", version: "2") { $0.mlflowVersion = "7"; $0.version = "99" }
        #expect(updated.version == "2" && updated.mlflowVersion == "7")
        #expect(try await store.modelVersions(name: "det").first?.mlflowVersion == "7")
        await #expect(throws: YardError.self) { try await store.updateModelVersion(name: "det", version: "5") { _ in } }

        // Serving settings are per model, replaced whole.
        #expect(try await store.modelSettings(name: "det") == nil)
        try await store.setModelSettings(name: "det", ModelSettings(blurFaces: FaceBlur(minNeighbors: 3)))
        #expect(try await store.modelSettings(name: "det")?.blurFaces?.minNeighbors == 3)
        try await store.setModelSettings(name: "det", ModelSettings())
        #expect(try await store.modelSettings(name: "det") == ModelSettings())
        #expect(try await store.modelSettings(name: "seg") == nil)
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
