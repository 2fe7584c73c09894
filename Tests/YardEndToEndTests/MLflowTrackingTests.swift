import Foundation
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// Real trainings tracked in a real `mlflow server`, read back with the
/// official Python client.
@Suite("MLflow tracking")
struct MLflowTrackingTests {
    static func config(data: String, experiment: String, uri: String, epochs: Int, extra: String = "", mlflowExtra: String = "") -> String {
        """
        model: yolov8n.yaml
        experiment: \(experiment)
        train: {data: \(data), epochs: \(epochs), imgsz: 64, batch: 8, workers: 0, plots: false\(extra)}
        mlflow: {MLFLOW_TRACKING_URI: "\(uri)"\(mlflowExtra)}
        minio: {MINIO_ID: me, MINIO_SECRET_KEY: do-not-leak}
        metadata: {content: a note for the run, author: tester}

        """
    }

    /// Everything about the experiment's runs, as the official client sees it.
    static func readBack(_ uri: String, experiment: String) throws -> JSONValue {
        try MLflow.python(uri, """
            runs = mlflow.search_runs(experiment_names=[\(experiment.debugDescription)], output_format="list")
            out = []
            for r in runs:
                rid = r.info.run_id
                hist = {k: [[m.step, m.value] for m in client.get_metric_history(rid, k)] for k in r.data.metrics}
                arts = [a.path for a in client.list_artifacts(rid)]
                if "weights" in arts:
                    arts += [a.path for a in client.list_artifacts(rid, "weights")]
                log = open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="train.log")).read() if "train.log" in arts else ""
                cfg = open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="config.redacted.json")).read() if "config.redacted.json" in arts else ""
                out.append({"id": rid, "name": r.info.run_name, "status": r.info.status, "params": r.data.params,
                            "tags": r.data.tags, "hist": hist, "arts": arts, "log": log[-4000:], "cfg": cfg})
            print(json.dumps(out))
            """)
    }

    @Test func aTrainingIsRecordedWithParamsMetricsTagsAndArtifacts() async throws {
        let uri = try MLflow.sharedURI()
        let h = try YardHarness("mlflow")
        defer { h.dir.remove() }
        let data = try h.demoDataset()
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let experiment = "e2e-\(UUID().uuidString.prefix(8))"
        let model = "\(experiment)-detector"
        let id = try await yard.submit(Self.config(data: data, experiment: experiment, uri: uri, epochs: 2,
                                                   mlflowExtra: ", register_model: \(model), register_alias: champion"))
        try await yard.waitForState(id, "succeeded")
        try await yard.waitFor(id, timeout: .seconds(120), "tracking synced") { $0["tracking"] == "synced" }
        let job = try await yard.job(id)
        let runs = try #require(try Self.readBack(uri, experiment: experiment).arrayValue)
        #expect(runs.count == 1)
        let run = try #require(runs.first)
        #expect(run["id"] == job["mlflow_run_id"])
        #expect(run["name"]?.stringValue == id)
        #expect(run["status"] == "FINISHED")

        // params: model, type and the flattened train args; never a secret
        let params = run["params"]?.objectValue ?? [:]
        #expect(params["model"] == "yolov8n.yaml")
        #expect(params["type"] == "yolo")
        #expect(params["epochs"] == "2")
        #expect(params["imgsz"] == "64")
        #expect(params["data"]?.stringValue == data)
        #expect(!"\(run)".contains("do-not-leak"))

        // tags: lineage
        let tags = run["tags"]?.objectValue ?? [:]
        #expect(tags["trainyard.job_id"]?.stringValue == id)
        #expect(tags["trainyard.dataset_hash"] == job["dataset_hash"])
        #expect(tags["trainyard.config_hash"]?.stringValue?.count == 64)
        #expect(tags["device"] == "cpu")
        let ultralytics = try h.installedVersion("ultralytics")
        #expect(tags["ultralytics_version"]?.stringValue == ultralytics)
        #expect(tags["torch_version"] != nil && tags["python_version"] != nil)
        #expect(tags["engine_version"] != nil && tags["trainyard.host"]?.stringValue?.isEmpty == false, "the lineage's engine and host")
        #expect(tags["trainyard.worker_host"] != nil)
        #expect(tags["mlflow.note.content"] == "a note for the run")
        #expect(tags["metadata.author"] == "tester")

        // metrics: every epoch, step = epoch, names sanitised, equal to the store
        let history = run["hist"]?.objectValue ?? [:]
        let epochs = job["epoch_metrics"]?.arrayValue ?? []
        #expect(epochs.count == 2)
        for epoch in epochs {
            let step = epoch["epoch"]?.intValue ?? 0
            for (name, value) in epoch["metrics"]?.objectValue ?? [:] {
                let key = name.replacingOccurrences(of: "(", with: "").replacingOccurrences(of: ")", with: "")
                let points = history[key]?.arrayValue ?? []
                #expect(points.count == 2, "\(key) has \(points.count) points")
                let point = points.first { $0[0]?.intValue == step }
                #expect(point?[1]?.doubleValue.map { abs($0 - (value.doubleValue ?? .nan)) < 1e-9 } == true, "\(key) at step \(step)")
            }
        }
        #expect(history["metrics/mAP50-95B"] != nil)

        // artifacts: weights, results, args, the log, the redacted config
        let artifacts = Set((run["arts"]?.arrayValue ?? []).compactMap(\.stringValue))
        for expected in ["weights/best.pt", "weights/last.pt", "results.csv", "args.yaml", "train.log", "config.redacted.json"] {
            #expect(artifacts.contains(expected), "\(expected) missing from \(artifacts.sorted())")
        }
        let config = run["cfg"]?.stringValue ?? ""
        #expect(config.contains("MINIO_SECRET_KEY") && config.contains("***") && !config.contains("do-not-leak"))
        #expect(run["log"]?.stringValue?.contains("Ultralytics") == true)

        // registry: registered by the server with its alias, in its own
        // store first, then mirrored to MLflow's registry through the spool
        var versions: [JSONValue] = []
        try await eventually("the version in the registry", timeout: .seconds(60), every: .milliseconds(250)) {
            versions = try await yard.get("/api/models?name=\(model)")["versions"]?.arrayValue ?? []
            return versions.first?["aliases"] == ["champion"]
        }
        #expect(versions.count == 1)
        #expect(versions.first?["sha256"]?.stringValue?.count == 64)
        var registered: JSONValue = .null
        try await eventually("the version mirrored to MLflow", timeout: .seconds(60), every: .milliseconds(500)) {
            registered = (try? MLflow.python(uri, """
                v = client.get_model_version_by_alias(\(model.debugDescription), "champion")
                print(json.dumps({"version": v.version, "run": v.run_id, "job": v.tags.get("trainyard.job_id"), "source": v.source, "sha": v.tags.get("trainyard.sha256")}))
                """)) ?? .null
            return registered != .null
        }
        #expect(registered["version"] == "1")
        #expect(registered["run"] == job["mlflow_run_id"])
        #expect(registered["job"]?.stringValue == id)
        #expect(registered["source"]?.stringValue?.hasSuffix("/weights/best.pt") == true)
        #expect(registered["sha"] == versions.first?["sha256"])
        try await eventually("MLflow's number on the version", timeout: .seconds(30), every: .milliseconds(250)) {
            try await yard.get("/api/models?name=\(model)")["versions"]?[0]?["mlflow_version"] == "1"
        }

        // and by hand through the CLI: a second name, an alias set afterwards
        let register = try h.yard(["models", "register", id, "\(model)-b"], server: yard.port)
        #expect(register.status == 0, "\(register.output)")
        let alias = try h.yard(["models", "alias", "\(model)-b", "1", "production"], server: yard.port)
        #expect(alias.status == 0, "\(alias.output)")
        let again = try h.yard(["models", "register", id, "\(model)-b"], server: yard.port)
        #expect(again.output.contains("version 1"), "registering the same run again reuses its version: \(again.output)")
        try await eventually("the alias mirrored to MLflow", timeout: .seconds(60), every: .milliseconds(500)) {
            let production = try? MLflow.python(uri, """
                print(json.dumps(client.get_model_version_by_alias(\("\(model)-b".debugDescription), "production").version))
                """)
            return production == "1"
        }
        let list = try h.yard(["models", "list"], server: yard.port)
        #expect(list.output.contains("\(model)-b") && list.output.contains("production"))
    }

    @Test func aFailingJobEndsFAILEDWithItsLogUploaded() async throws {
        let uri = try MLflow.sharedURI()
        let h = try YardHarness("mlflow-fail")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 4, val: 2)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let experiment = "e2e-fail-\(UUID().uuidString.prefix(8))"
        let id = try await yard.submit(Self.config(data: data, experiment: experiment, uri: uri, epochs: 1, extra: ", lr9: 0.5"))
        try await yard.waitFor(id, failureExpected: true, "failed") { $0["state"] == "failed" }
        try await yard.waitFor(id, timeout: .seconds(120), failureExpected: true, "tracking synced") { $0["tracking"] == "synced" }
        let runs = try #require(try Self.readBack(uri, experiment: experiment).arrayValue)
        #expect(runs.count == 1)
        #expect(runs.first?["status"] == "FAILED")
        #expect(runs.first?["log"]?.stringValue?.contains("lr9") == true)
        #expect(runs.first?["tags"]?["trainyard.message"]?.stringValue?.contains("'lr9' is not a valid YOLO argument") == true)
    }

    @Test func anOutageIsReplayedWithEveryEpochExactlyOnce() async throws {
        let h = try YardHarness("mlflow-outage")
        defer { h.dir.remove() }
        let server = try MLflow.Server(folder: h.dir.file("mlflow"))
        async let started: Void = server.start()
        let data = try h.demoDataset(train: 64)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        try await started
        let experiment = "e2e-outage"
        let id = try await yard.submit(Self.config(data: data, experiment: experiment, uri: server.uri, epochs: 6))
        try await yard.waitFor(id, "first epoch sent") { ($0["epoch"]?.intValue ?? 0) >= 1 && $0["mlflow_run_id"]?.stringValue != nil }

        try await server.kill()
        try await yard.waitForState(id, "succeeded")
        let finished = try await yard.job(id)
        #expect(finished["tracking"] == "pending", "the job finished while MLflow was down")
        #expect((finished["epoch_metrics"]?.arrayValue ?? []).count == 6)

        try await server.start()
        try await yard.waitFor(id, timeout: .seconds(120), "tracking synced after the outage") { $0["tracking"] == "synced" }
        let runs = try #require(try Self.readBack(server.uri, experiment: experiment).arrayValue)
        #expect(runs.count == 1, "no second run")
        let run = try #require(runs.first)
        #expect(run["status"] == "FINISHED")
        let history = run["hist"]?.objectValue ?? [:]
        #expect(!history.isEmpty)
        for (key, points) in history {
            let steps = (points.arrayValue ?? []).compactMap { $0[0]?.intValue }
            #expect(steps.sorted() == Array(1...6), "\(key): steps \(steps.sorted())")
        }
        #expect((run["arts"]?.arrayValue ?? []).contains("weights/best.pt"))
    }
}
}
