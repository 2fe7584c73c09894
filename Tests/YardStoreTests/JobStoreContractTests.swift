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

    /// A record stored with a change of its job: both or neither.
    @Test(arguments: Driver.allCases)
    func aRecordIsStoredWithItsChangeOrNotAtAll(driver: Driver) async throws {
        let store = try Self.make(driver)
        try await store.insert(Self.job("a"), secrets: [:])
        let records: [JobRecord] = [.logs(["one", "two"]), .event(type: "progress", payload: ["batch": 1]),
                                    .epoch(EpochRecord(jobID: "a", epoch: 1, metrics: ["m": 0.5], seconds: 2)),
                                    .artifact(ArtifactRecord(jobID: "a", key: "a/best.pt", kind: "weights", size: 3))]
        for record in records {
            #expect(try await store.update("a", storing: record) { _ in false } == false)
        }
        #expect(try await store.logs(of: "a", after: 0, limit: 10).isEmpty)
        #expect(try await store.events(of: "a", after: 0, limit: 10).isEmpty)
        #expect(try await store.epochs(of: "a").isEmpty)
        #expect(try await store.artifacts(of: "a").isEmpty)
        for (index, record) in records.enumerated() {
            #expect(try await store.update("a", storing: record) { $0.reportSeq = index + 1; return true })
        }
        #expect(try await store.job("a")?.reportSeq == 4)
        #expect(try await store.logs(of: "a", after: 0, limit: 10).map(\.line) == ["one", "two"])
        #expect(try await store.events(of: "a", after: 0, limit: 10).map(\.type) == ["progress"])
        #expect(try await store.epochs(of: "a").map(\.epoch) == [1])
        #expect(try await store.artifacts(of: "a").map(\.key) == ["a/best.pt"])
        await #expect(throws: YardError.self) {
            try await store.update("a", storing: .logs(["three"])) { job in
                job.epoch = 99
                try job.state.checkMove(to: .succeeded, job: "a")
                return true
            }
        }
        #expect(try await store.job("a")?.epoch != 99)
        #expect(try await store.logs(of: "a", after: 0, limit: 10).count == 2)
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
