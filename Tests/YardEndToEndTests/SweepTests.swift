import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// A real sweep: `yard up` with two workers, six tiny Ultralytics trials,
/// the server killed mid-sweep and started again, and Optuna's own Python
/// API reading the study back.
@Suite("Sweeps with real Ultralytics")
struct SweepTests {
    /// Issue 26: `lr0: [choice, 1, 1.0]` was created (201), then failed every
    /// pass (its stored config reads 1.0 back as 1: "a choice is listed
    /// twice"). It is refused when created, 400 naming the field, and nothing is kept.
    @Test func aSweepItsPassesCouldNotReadIsRefusedWhenCreated() async throws {
        let h = try YardHarness("sweep-refused")
        defer { h.dir.remove() }
        let data = try h.dir.write("demo/data.yaml", "path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        let yard = try await h.up()
        defer { yard.process.terminate() }
        var request = HTTPClientRequest(url: yard.base + "/api/sweeps")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: """
            model: yolov8n.yaml
            train: {data: \(data), epochs: 1, optimizer: SGD}
            sweeper: {n_trials: 2, search_space: {train: {lr0: [choice, 1, 1.0]}}}
            """))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try JSONDecoder().decode(JSONValue.self, from: Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
        #expect(response.status == .badRequest, "\(response.status) \(body)")
        #expect(body["field"] == "sweeper.search_space.train.lr0", "\(body)")
        #expect(body["message"]?.stringValue?.contains("a choice is listed twice") == true, "\(body)")
        #expect(try await yard.get("/api/sweeps")["sweeps"]?.arrayValue?.isEmpty == true, "nothing was stored")
    }

    /// The grid visits each lr0 once; 2.0 is refused by Ultralytics (the
    /// deliberately bad region: that trial fails and the study goes on). The
    /// fitness is the learning rate Ultralytics reports each epoch: losses on
    /// 32 synthetic images do not rank lr0 the same way twice (CI found a run
    /// with nothing to prune), while this metric makes the smallest lr0s the
    /// trials the median pruner must stop, whatever the order of events.
    @Test func aSweepSurvivesAServerKillAndMatchesOptunasOwnRecord() async throws {
        let uri = try MLflow.sharedURI()
        let experiment = "sweep-e2e-\(UUID().uuidString.prefix(8))"
        let h = try YardHarness("sweep")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 32, val: 8)
        let arguments = ["up", "--port", "0", "--data-dir", h.data, "--python", h.python, "--stop-grace", "60", "--workers", "2"]
        var yard = try await h.serving(arguments, log: "up")
        let config = try h.dir.write("sweep.yaml", """
            model: yolov8n.yaml
            experiment: \(experiment)
            mlflow: {MLFLOW_TRACKING_URI: "\(uri)"}
            train: {data: \(data), epochs: 6, imgsz: 128, batch: 8, workers: 0, plots: false, optimizer: SGD, warmup_epochs: 0}
            sweeper:
              study_name: e2e-lr
              n_trials: 6
              max_concurrent: 2
              sampler: GridSampler
              seed: 3
              grace_period: 1
              direction: maximize
              fitness: lr/pg0
              search_space: {train: {lr0: [choice, 0.15, 0.0001, 0.5, 0.0002, 2.0, 0.05]}}
            """)
        let started = try h.yard(["sweep", config, "--json"], server: yard.port)
        #expect(started.status == 0, "\(started.output)")
        let id = try #require(try JSONDecoder().decode(JSONValue.self, from: Data(started.output.utf8))["id"]?.stringValue)

        // The server dies (kill -9) once two trials have ended, and comes back.
        try await eventually("two trials told", timeout: .seconds(300), every: .milliseconds(500)) {
            let trials = try await yard.get("/api/sweeps/\(id)")["trial_list"]?.arrayValue ?? []
            return trials.filter { $0["told"] != nil }.count >= 2
        }
        try await yard.signal(SIGKILL)
        yard = try await h.serving(arguments, log: "up-again")
        defer { yard.process.terminate() }
        var sweep: JSONValue = .null
        try await eventually("the sweep to finish", timeout: .seconds(400), every: .seconds(1)) {
            sweep = try await yard.get("/api/sweeps/\(id)")
            return sweep["state"] == "finished"
        }

        let trials = sweep["trial_list"]?.arrayValue ?? []
        #expect(trials.compactMap { $0["number"]?.intValue }.sorted() == Array(0..<6), "exactly n_trials, none twice: \(trials)")
        let states = trials.compactMap { $0["state"]?.stringValue }
        #expect(Set(states).isSubset(of: ["succeeded", "pruned", "failed"]), "\(states)")
        let summary = trials.map {
            "\($0["params"]?["train.lr0"]?.doubleValue ?? -1) \($0["state"]?.stringValue ?? "") \($0["value"]?.doubleValue ?? -1) \($0["message"]?.stringValue ?? "")"
        }
        var failures: [String] = []
        for trial in trials where trial["state"] == "failed" {
            let job = trial["job_id"]?.stringValue ?? ""
            let record = try? await yard.get("/api/jobs/\(job)")
            let logs = (try? h.yard(["logs", job], server: yard.port).output.suffix(2000)) ?? ""
            failures.append("\(job): \(record?["message"] ?? .null) \(logs)")
        }
        #expect(states.filter { $0 == "failed" }.count == 1, "lr0 2.0 is refused by Ultralytics: \(summary) \(failures)")
        #expect(states.contains("pruned"), "a trial below the median is pruned: \(summary)")
        for trial in trials where trial["state"] == "pruned" {
            #expect(trial["message"]?.stringValue?.contains("pruned at epoch") == true)
        }

        // Optuna's own record of the study: the same trials, the same best.
        let script = """
            import json, optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            s = optuna.load_study(study_name="e2e-lr", storage="sqlite:///\(h.data)/sweeps/optuna.sqlite3")
            b = s.best_trial
            print(json.dumps({"number": b.number, "value": b.value, "params": b.params, "states": [t.state.name for t in s.trials]}))
            """
        let optuna = try h.python(script)
        #expect(optuna["states"]?.arrayValue?.count == 6)
        let optunaStates = Set((optuna["states"]?.arrayValue ?? []).compactMap(\.stringValue))
        #expect(optunaStates.isSubset(of: ["COMPLETE", "PRUNED", "FAIL"]), "\(optunaStates)")
        let best = try #require(sweep["best"])
        #expect(optuna["number"] == best["number"])
        #expect(optuna["value"]?.doubleValue == best["value"]?.doubleValue)
        #expect(optuna["params"]?["train.lr0"]?.doubleValue == best["params"]?["train.lr0"]?.doubleValue)
        let shown = try h.yard(["sweep", "show", id], server: yard.port)
        #expect(shown.status == 0 && shown.output.contains("best: trial \(best["number"]?.intValue ?? -1)"), "\(shown.output)")
        let bestConfig = try h.yard(["sweep", "show", id, "--best-config"], server: yard.port)
        #expect(bestConfig.output.contains("lr0:") && !bestConfig.output.contains("sweeper"), "\(bestConfig.output)")

        // MLflow, across the kill: one parent run, each trial's run its child once.
        var runs: [JSONValue] = []
        try await eventually("the sweep's runs in MLflow", timeout: .seconds(120), every: .seconds(2)) {
            runs = try MLflow.python(uri, """
                runs = mlflow.search_runs(experiment_names=[\(experiment.debugDescription)], output_format="list")
                print(json.dumps([{"id": r.info.run_id, "name": r.info.run_name, "status": r.info.status, "params": r.data.params,
                                   "tags": r.data.tags} for r in runs]))
                """).arrayValue ?? []
            return runs.count >= 7 && runs.allSatisfy { $0["status"] != "RUNNING" }
        }
        let parents = runs.filter { $0["tags"]?["trainyard.sweep_id"]?.stringValue == id }
        #expect(parents.count == 1, "\(runs.map { $0["name"] ?? "" })")
        let parent = try #require(parents.first)
        let children = runs.filter { $0["tags"]?["mlflow.parentRunId"] == parent["id"] }
        #expect(Set(children.compactMap { $0["name"]?.stringValue }) == Set(trials.compactMap { $0["job_id"]?.stringValue }) && runs.count == 7,
                "six children, no run twice: \(runs.map { $0["name"] ?? "" })")
        #expect(parent["status"] == "FINISHED")
        #expect(try await yard.get("/api/sweeps/\(id)")["mlflow_run_id"] == parent["id"], "the sweep names its run")
        #expect(parent["params"]?["lr0"]?.stringValue.flatMap(Double.init) == best["params"]?["train.lr0"]?.doubleValue)
    }
}
}
