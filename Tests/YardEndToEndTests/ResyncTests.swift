import Foundation
import Testing
import YardDomain
import YardStore
import YardTestSupport

extension EndToEnd {
/// `yard tracking resync` (issue 30): a data dir's runs and registry
/// recreated in a fresh `mlflow server`, read back with MLflow's own
/// client; a second resync adds nothing; a run a cut-off resync left
/// half-made is rebuilt.
@Suite("MLflow rebuilt from Trainyard's records")
struct ResyncTests {
    /// A data dir as a server leaves it: two finished jobs (one with
    /// epochs, test numbers, files and a registered version behind an
    /// alias), a failed one in another experiment, one still queued.
    static func plant(_ data: String) async throws {
        try FileManager.default.createDirectory(atPath: data + "/artifacts", withIntermediateDirectories: true)
        let store = SQLiteJobStore(database: try YardDatabase(path: data + "/yard.sqlite"))
        let parser = JobConfigParser { _ in true }
        func job(_ id: String, experiment: String, at seconds: Double) throws -> Job {
            let config = try parser.parse("""
                model: yolov8n.yaml
                experiment: "\(experiment)"
                train: {data: /d/data.yaml, epochs: 3, lr0: 0.01}
                mlflow: {MLFLOW_TRACKING_URI: "http://ops:pw-in-uri@gone:5000"}
                minio: {MINIO_SECRET_KEY: do-not-leak}
                metadata: {content: a note, author: "<b>tester</b>"}
                """)
            return Job(id: id, config: config, redacted: Redaction.redact(config.json), createdAt: Date(timeIntervalSince1970: 1_790_000_000 + seconds))
        }
        for (id, experiment, at) in [("rs-a", "resync-x", 0.0), ("rs-b", "resync-x", 100), ("rs-c", "resync-y", 200), ("rs-q", "resync-x", 300)] {
            try await store.insert(try job(id, experiment: experiment, at: at), secrets: ["minio\u{1F}MINIO_SECRET_KEY": "do-not-leak"])
        }
        for (id, state) in [("rs-a", JobState.succeeded), ("rs-b", .succeeded), ("rs-c", .failed)] {
            try await store.update(id) { job in
                job.state = state
                job.startedAt = job.createdAt.addingTimeInterval(5)
                job.finishedAt = job.createdAt.addingTimeInterval(60)
                job.attempts = 1
                job.epoch = state == .failed ? 1 : 3
                job.epochs = 3
                job.worker = "gpu-box-0"
                job.device = "cuda:0"
                if state == .failed { job.message = "CUDA error: device-side assert" } else { job.fitness = 0.5 }
            }
        }
        try await store.update("rs-a") { $0.testMetrics = ["test/mAP50-95": 0.42, "test/precision/cat": 0.9] }
        _ = try await store.appendLog(jobID: "rs-a", lines: ["epoch 1/3 loss 2.0", "<script>alert(1)</script> done"])
        for epoch in 1...3 {
            try await store.recordEpoch(EpochRecord(jobID: "rs-a", epoch: epoch, metrics: ["train/box_loss": 2.0 / Double(epoch), "metrics/mAP50(B)": 0.1 * Double(epoch)], seconds: 10))
        }
        try await store.recordEpoch(EpochRecord(jobID: "rs-c", epoch: 1, metrics: ["train/box_loss": 3.0], seconds: 12))
        for (key, text) in [("rs-a/weights/best.pt", "best weights"), ("rs-a/results.csv", "epoch,loss\n1,2.0\n"), ("rs-b/weights/best.pt", "b weights")] {
            let path = data + "/artifacts/" + key
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            try await store.recordArtifact(ArtifactRecord(jobID: String(key.prefix(4)), key: key, kind: "file", size: Int64(text.utf8.count)))
        }
        // Named by the records, freed from the disk since (by `yard gc`).
        try await store.recordArtifact(ArtifactRecord(jobID: "rs-a", key: "rs-a/weights/last.pt", kind: "weights", size: 9))
        for job in ["rs-a", "rs-b"] {
            _ = try await store.createModelVersion(ModelVersion(name: "resync-det", version: "", jobID: job, runID: "", source: "\(job)/weights/best.pt", createdAt: Date()))
        }
        _ = try await store.setModelAlias(name: "resync-det", alias: "production", version: "2", reason: "test", by: nil, time: Date())
        _ = try await store.setModelAlias(name: "resync-det", alias: "staging", version: "1", reason: "test", by: nil, time: Date())
    }

    static func readBack(_ uri: String) throws -> JSONValue {
        try MLflow.python(uri, """
            out = {"runs": {}, "versions": {}, "aliases": {}}
            for r in mlflow.search_runs(experiment_names=["resync-x", "resync-y"], output_format="list"):
                rid = r.info.run_id
                hist = {k: [[m.step, m.value] for m in client.get_metric_history(rid, k)] for k in r.data.metrics}
                arts = [a.path for a in client.list_artifacts(rid)]
                for folder in [a.path for a in client.list_artifacts(rid) if a.is_dir]:
                    arts += [a.path for a in client.list_artifacts(rid, folder)]
                cfg = open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="config.redacted.json")).read()
                best = open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="weights/best.pt")).read() if "weights/best.pt" in arts else ""
                log = open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="train.log")).read() if "train.log" in arts else ""
                out["runs"][r.data.tags["trainyard.job_id"]] = {"id": rid, "status": r.info.status, "start": r.info.start_time, "end": r.info.end_time,
                    "params": r.data.params, "tags": r.data.tags, "hist": hist, "arts": sorted(arts), "cfg": cfg, "best": best, "log": log}
            for v in client.search_model_versions("name='resync-det'"):
                out["versions"][v.version] = {"run": v.run_id, "tags": v.tags}
            for alias in ["production", "staging"]:
                out["aliases"][alias] = client.get_model_version_by_alias("resync-det", alias).version
            print(json.dumps(out))
            """)
    }

    /// A metric's history as [step, value] pairs, whichever way JSON numbers came back.
    static func points(_ history: JSONValue?) -> [[Double]] {
        (history?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.doubleValue) }
    }

    @Test func aLostMLflowIsRebuiltOnceAndAHalfMadeRunIsRedone() async throws {
        try theTestServersAreThere()
        let harness = try YardHarness("resync")
        defer { harness.dir.remove() }
        try await Self.plant(harness.data)
        let server = try MLflow.Server(folder: harness.dir.file("mlflow"))
        try await server.start()
        defer { Task { try? await server.kill() } }

        let first = try harness.yard(["tracking", "resync", "--to", server.uri, "--data-dir", harness.data])
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("runs: 3 created, 0 already there, 1 queued jobs not started yet"), "\(first.output)")
        #expect(first.output.contains("(1 no longer on disk)") && first.output.contains("versions: 2 created"), "\(first.output)")
        #expect(!first.output.contains("do-not-leak") && !first.output.contains("pw-in-uri"))
        let back = try Self.readBack(server.uri)
        let runs = try #require(back["runs"]?.objectValue)
        #expect(Set(runs.keys) == ["rs-a", "rs-b", "rs-c"], "the queued job has no run yet")
        let a = try #require(runs["rs-a"])
        #expect(a["status"] == "FINISHED" && runs["rs-c"]?["status"] == "FAILED")
        // The job's own times, not the resync's.
        #expect(a["start"]?.intValue == 1_790_000_005_000 && a["end"]?.intValue == 1_790_000_060_000, "\(a)")
        #expect(a["params"]?["lr0"] == "0.01" && a["params"]?["epochs"] == "3" && a["params"]?["model"] == "yolov8n.yaml")
        #expect(a["tags"]?["trainyard.state"] == "succeeded" && a["tags"]?["device"] == "cuda:0" && a["tags"]?["mlflow.note.content"] == "a note")
        #expect(a["tags"]?["metadata.author"] == "<b>tester</b>" && a["tags"]?["trainyard.resync"] == "done")
        #expect(runs["rs-c"]?["tags"]?["trainyard.message"] == "CUDA error: device-side assert")
        #expect(Self.points(a["hist"]?["train/box_loss"]) == [[1, 2.0], [2, 1.0], [3, 2.0 / 3]], "\(a["hist"] ?? .null)")
        #expect(Self.points(a["hist"]?["metrics/mAP50B"]).count == 3 || Self.points(a["hist"]?["metrics/mAP50(B)"]).count == 3, "\(a["hist"] ?? .null)")
        #expect(Self.points(a["hist"]?["epoch_seconds"]) == [[1, 10], [2, 10], [3, 10]])
        #expect(Self.points(a["hist"]?["test/mAP50-95"]) == [[3, 0.42]])
        #expect(a["arts"] == ["config.redacted.json", "results.csv", "train.log", "weights", "weights/best.pt"], "\(a["arts"] ?? .null)")
        #expect(a["log"] == "epoch 1/3 loss 2.0\n<script>alert(1)</script> done\n")
        #expect(a["best"] == "best weights")
        let config = try #require(a["cfg"]?.stringValue)
        #expect(config.contains("\"lr0\"") && !config.contains("do-not-leak") && !config.contains("pw-in-uri"), "\(config)")
        for run in runs.values { #expect(!"\(run)".contains("do-not-leak") && !"\(run)".contains("pw-in-uri")) }
        // The registry: one MLflow version per Trainyard version, of the right run, aliases where Trainyard has them.
        #expect(back["versions"]?["1"]?["run"] == a["id"] && back["versions"]?["2"]?["run"] == runs["rs-b"]?["id"])
        #expect(back["versions"]?["2"]?["tags"]?["trainyard.version"] == "2")
        #expect(back["aliases"] == ["production": "2", "staging": "1"])

        // Again: nothing added, every metric point still once.
        let second = try harness.yard(["tracking", "resync", "--to", server.uri, "--data-dir", harness.data])
        #expect(second.status == 0 && second.output.contains("runs: 0 created, 3 already there"), "\(second.output)")
        #expect(second.output.contains("nothing added"), "\(second.output)")
        let again = try Self.readBack(server.uri)
        #expect(again["runs"] == back["runs"] && again["versions"] == back["versions"])

        // A run a cut-off resync left half-made (marked partial) is deleted and rebuilt whole.
        let runID = try #require(a["id"]?.stringValue)
        _ = try MLflow.python(server.uri, """
            client.set_tag(\(runID.debugDescription), "trainyard.resync", "partial")
            print(json.dumps(True))
            """)
        let third = try harness.yard(["tracking", "resync", "--to", server.uri, "--data-dir", harness.data])
        #expect(third.status == 0 && third.output.contains("1 rebuilt"), "\(third.output)")
        let rebuilt = try Self.readBack(server.uri)
        let newA = try #require(rebuilt["runs"]?["rs-a"])
        #expect(newA["id"] != a["id"] && newA["hist"] == a["hist"] && newA["tags"]?["trainyard.resync"] == "done")
        #expect(rebuilt["runs"]?.objectValue?.count == 3)
    }

    @Test func badInputIsOneLineNamingTheFlag() throws {
        try theTestServersAreThere()
        let harness = try YardHarness("resync-input")
        defer { harness.dir.remove() }
        let empty = try harness.yard(["tracking", "resync", "--to", "http://127.0.0.1:9", "--data-dir", harness.dir.file("nothing")])
        #expect(empty.status != 0 && empty.output.contains("--data-dir") && empty.output.split(separator: "\n").count == 1, "\(empty.output)")
        let scheme = try harness.yard(["tracking", "resync", "--to", "ftp://user:hunter2@host/", "--data-dir", harness.data])
        #expect(scheme.status != 0 && scheme.output.contains("--to"), "\(scheme.output)")
        #expect(!scheme.output.contains("hunter2"), "a URL that may hold a password is never echoed: \(scheme.output)")
    }

    @Test func anUnreachableMLflowIsOneLineWithoutItsPassword() async throws {
        try theTestServersAreThere()
        let harness = try YardHarness("resync-down")
        defer { harness.dir.remove() }
        try await Self.plant(harness.data)
        let down = try harness.yard(["tracking", "resync", "--to", "http://alice:hunter2@127.0.0.1:9", "--data-dir", harness.data])
        #expect(down.status != 0, "\(down.output)")
        #expect(down.output.contains("--to: MLflow at http://127.0.0.1:9 cannot be reached"), "\(down.output)")
        #expect(!down.output.contains("hunter2") && down.output.split(separator: "\n").count == 1, "\(down.output)")
    }
}
}
