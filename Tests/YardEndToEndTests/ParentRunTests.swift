import Foundation
import Logging
import Testing
import YardDomain
import YardTestSupport
import YardTracker

extension EndToEnd {
/// A sweep's parent run is spooled by the server, its trials' runs by the
/// workers: after an outage they reach MLflow in any order. A child that
/// comes first waits for its parent (MLflow answering is no outage), and
/// one whose parent never comes is recorded on its own after `parentWait`.
@Suite("MLflow parent runs")
struct ParentRunTests {
    static func start(_ experiment: String, uri: String, job: String, sweep: String) -> [String: JSONValue] {
        ["op": "start", "tracking_uri": .string(uri), "experiment": .string(experiment), "run_name": .string(job), "start_time": 1,
         "tags": ["trainyard.job_id": .string(job)], "params": [:], "parent": ["tag": .string(MLflowSweepTracker.keyTag), "value": .string(sweep)]]
    }

    static func runs(_ uri: String, _ experiment: String) throws -> [JSONValue] {
        try MLflow.python(uri, """
            runs = mlflow.search_runs(experiment_names=[\(experiment.debugDescription)], output_format="list")
            print(json.dumps([{"id": r.info.run_id, "name": r.info.run_name, "tags": r.data.tags} for r in runs]))
            """).arrayValue ?? []
    }

    @Test func aChildRunWaitsForItsParentAndIsNotAnOutage() async throws {
        let uri = try MLflow.sharedURI()
        let dir = try TemporaryDirectory("parent")
        defer { dir.remove() }
        let experiment = "parent-\(UUID().uuidString.prefix(8))"
        let spool = TrackingSpool(directory: dir.path, logger: Logger(label: "test"))
        try await spool.append(jobID: "sweep-p-t0", Self.start(experiment, uri: uri, job: "sweep-p-t0", sweep: "sweep-p"))
        #expect(await spool.replayAll() == false, "the child waits")
        #expect(await spool.inOutage == false, "MLflow answered: no outage is reported")
        #expect(try Self.runs(uri, experiment).isEmpty, "no orphan run was created")

        try await spool.append(jobID: "@sweep-p", ["op": "start", "tracking_uri": .string(uri), "experiment": .string(experiment),
                                                  "run_name": "sweep-p", "start_time": 1, "key_tag": .string(MLflowSweepTracker.keyTag),
                                                  "tags": .object([MLflowSweepTracker.keyTag: "sweep-p"]), "params": [:]])
        #expect(await spool.replayAll())
        let runs = try Self.runs(uri, experiment)
        let parent = try #require(runs.first { $0["name"] == "sweep-p" })
        let child = try #require(runs.first { $0["name"] == "sweep-p-t0" })
        #expect(child["tags"]?["mlflow.parentRunId"] == parent["id"])
        #expect(runs.count == 2)
    }

    @Test func aChildWhoseParentNeverComesIsRecordedAlone() async throws {
        let uri = try MLflow.sharedURI()
        let dir = try TemporaryDirectory("parent")
        defer { dir.remove() }
        let experiment = "parent-\(UUID().uuidString.prefix(8))"
        let log = LogCapture()
        let spool = TrackingSpool(directory: dir.path, logger: log.logger, parentWait: 0)
        try await spool.append(jobID: "sweep-q-t0", Self.start(experiment, uri: uri, job: "sweep-q-t0", sweep: "sweep-q"))
        #expect(await spool.replayAll())
        let runs = try Self.runs(uri, experiment)
        #expect(runs.count == 1 && runs.first?["tags"]?["mlflow.parentRunId"] == nil)
        #expect(log.messages(.warning).contains { $0.contains("no parent run with trainyard.sweep_id = sweep-q") }, "\(log.messages(.warning))")
    }
}
}
