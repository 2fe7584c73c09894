import Foundation
import Testing
import YardDomain
import YardEngine
import YardRedis
import YardSweeps
import YardTestSupport

extension EndToEnd {
/// A sweep's study protocol against the engine's real study process
/// (Optuna): the Swift side asks, reports and tells; Optuna samples,
/// prunes and keeps the study in its storage (SQLite, or its Redis journal
/// on a real redis-server), so a killed process loses nothing.
@Suite("Study process")
struct StudyProcessTests {
    static func engine(_ dir: TemporaryDirectory) -> EngineEnvironment {
        EngineEnvironment.resolve(python: ProcessInfo.processInfo.environment["YARD_PYTHON"], dataDirectory: dir.path)
    }

    static func spec(_ yaml: String) throws -> SweepSpec {
        try #require(try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntrain: {data: /d/data.yaml, epochs: 5, optimizer: SGD}\n" + yaml).sweep)
    }

    @Test func askReportTellAndTheBestThroughOptuna() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let study = StudyProcess(engine: Self.engine(dir))
        defer { Task { await study.close() } }
        let spec = try Self.spec("""
            sweeper: {n_trials: 6, sampler: RandomSampler, seed: 11, pruner: MedianPruner, grace_period: 2,
                      search_space: {model: [choice, yolov8n.yaml, yolov8s.yaml], train: {lr0: [loguniform, 1.0e-4, 1.0e-1], batch: [int, 8, 16]}}}
            """)
        let definition = StudyDefinition(name: "s1", storage: "sqlite:///\(dir.file("optuna.db"))", spec: spec)
        #expect(try await study.open(definition).isEmpty)
        var values: [Int: Double] = [:]
        for value in [0.3, 0.6, 0.45] {
            let (number, params) = try await study.ask("s1")
            #expect(Set(params.keys) == ["model", "train.lr0", "train.batch"])
            let lr0 = try #require(params["train.lr0"]?.doubleValue)
            #expect(lr0 >= 1e-4 && lr0 <= 0.1)
            for epoch in 1...3 { #expect(try await study.report("s1", number: number, step: epoch, value: value) == false) }
            try await study.tell("s1", number: number, .complete(value))
            values[number] = value
        }
        // Two more finished trials make the median; one far below it is pruned after the grace period.
        let (low, _) = try await study.ask("s1")
        #expect(try await study.report("s1", number: low, step: 1, value: 0.01) == false, "within the grace period")
        #expect(try await study.report("s1", number: low, step: 2, value: 0.01), "below the median after 2 epochs")
        try await study.tell("s1", number: low, .pruned)
        let best = try #require(try await study.best("s1"))
        #expect(best.value == 0.6 && values[best.number] == 0.6)
        let trials = try await study.trials("s1")
        #expect(trials.map(\.state) == [.complete, .complete, .complete, .pruned])
        #expect(trials.last?.intermediate == [1: 0.01, 2: 0.01])
        await #expect(throws: YardError.self) { try await study.tell("s1", number: 99, .failed) }
        #expect(try await study.trials("s1").count == 4, "a bad request leaves the process serving")
    }

    /// The study process killed mid-sweep: the next call starts a new one,
    /// opens the study again, and the trial asked before is still running.
    @Test func aKilledStudyProcessLosesNothing() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let study = StudyProcess(engine: Self.engine(dir))
        defer { Task { await study.close() } }
        let spec = try Self.spec("sweeper: {n_trials: 4, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}")
        try await study.open(StudyDefinition(name: "s2", storage: "sqlite:///\(dir.file("optuna.db"))", spec: spec))
        let (first, _) = try await study.ask("s2")
        _ = try await study.report("s2", number: first, step: 1, value: 0.2)
        let pid = try #require(await study.processID)
        kill(pid, SIGKILL)
        try await eventually("the study process is gone") { await study.processID == nil }
        _ = try await study.report("s2", number: first, step: 2, value: 0.25)
        #expect(await study.processID != pid, "a new process")
        try await study.tell("s2", number: first, .complete(0.3))
        let (second, _) = try await study.ask("s2")
        #expect(second == first + 1)
        let trials = try await study.trials("s2")
        #expect(trials.first?.intermediate == [1: 0.2, 2: 0.25] && trials.first?.state == .complete)
    }

    /// Issue 26: after kill -9 during a seeded RandomSampler sweep, trial 3's
    /// lr0 equalled trial 0's. The study opened again carries on from its
    /// history instead of starting its seed's sequence over.
    @Test func aSeededStudyOpenedAgainDoesNotRepeatItsFirstTrials() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let study = StudyProcess(engine: Self.engine(dir))
        defer { Task { await study.close() } }
        let spec = try Self.spec("sweeper: {n_trials: 8, sampler: RandomSampler, seed: 42, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}")
        try await study.open(StudyDefinition(name: "s5", storage: "sqlite:///\(dir.file("optuna.db"))", spec: spec))
        var earlier: [Double] = []
        for _ in 0..<3 { earlier.append(try #require(try await study.ask("s5").params["train.lr0"]?.doubleValue)) }
        let pid = try #require(await study.processID)
        kill(pid, SIGKILL)
        try await eventually("the study process is gone") { await study.processID == nil }
        for _ in 0..<3 {
            let (number, params) = try await study.ask("s5")
            let lr0 = try #require(params["train.lr0"]?.doubleValue)
            #expect(!earlier.contains(lr0), "trial \(number) repeats an earlier trial's lr0 \(lr0): \(earlier)")
        }
        #expect(await study.processID != pid)
    }

    /// A study process that hangs (SIGSTOP) fails the call at the timeout,
    /// is killed, and the next call gets a new one with the study open.
    @Test func aHungStudyProcessFailsTheCallAndIsReplaced() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let study = StudyProcess(engine: Self.engine(dir), timeout: .seconds(3))
        defer { Task { await study.close() } }
        let spec = try Self.spec("sweeper: {n_trials: 4, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}")
        try await study.open(StudyDefinition(name: "s3", storage: "sqlite:///\(dir.file("optuna.db"))", spec: spec))
        let pid = try #require(await study.processID)
        kill(pid, SIGSTOP)
        let started = ContinuousClock.now
        await #expect(throws: YardError.self) { _ = try await study.ask("s3") }
        #expect(ContinuousClock.now - started < .seconds(10), "failed at the timeout, not hung")
        try await eventually("the frozen process is killed") { kill(pid, 0) != 0 }
        let (number, _) = try await study.ask("s3")
        #expect(number >= 0)
        #expect(await study.processID != pid)
    }

    /// A storage that cannot be reached is refused in one line that never
    /// carries its password.
    @Test func anUnreachableStorageIsOneLineWithoutItsPassword() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let study = StudyProcess(engine: Self.engine(dir), timeout: .seconds(60))
        defer { Task { await study.close() } }
        let spec = try Self.spec("sweeper: {n_trials: 2, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}")
        do {
            try await study.open(StudyDefinition(name: "s4", storage: "postgresql://optuna:hunter2-secret@127.0.0.1:1/studies", spec: spec))
            Issue.record("opened a study on a closed port")
        } catch {
            let text = "\(error)"
            #expect(!text.contains("hunter2-secret"), "\(text)")
            #expect(!text.contains("\n") && text.contains("s4"), "\(text)")
        }
    }

    /// `storage: redis://...`: Optuna's journal storage on a real
    /// redis-server; a second study process (another server) sees the same study.
    @Test func optunasRedisJournalStorage() async throws {
        let dir = try TemporaryDirectory("study")
        defer { dir.remove() }
        let redis = try await RedisServer()
        let spec = try Self.spec("sweeper: {n_trials: 4, search_space: {train: {lr0: [uniform, 0.001, 0.01]}}}")
        let definition = StudyDefinition(name: "shared", storage: redis.url, spec: spec)
        let one = StudyProcess(engine: Self.engine(dir)), two = StudyProcess(engine: Self.engine(dir))
        defer { Task { await one.close(); await two.close() } }
        try await one.open(definition)
        let (number, _) = try await one.ask("shared")
        try await one.tell("shared", number: number, .complete(0.5))
        let seen = try await two.open(definition)
        #expect(seen.map(\.state) == [.complete] && seen.first?.value == 0.5)
        #expect(try await RedisClient(try redis.configuration()).send(["DBSIZE"]).int ?? 0 > 0, "the journal is in Redis")
    }
}
}
