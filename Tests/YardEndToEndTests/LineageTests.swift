import Foundation
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// Issue 31 end to end, with the real binary and real Ultralytics on a CPU:
/// a job on a registered dataset version, registered as a model, answers
/// "what made you" (the DVC hash `dvc add` prints, the commit, the engine's
/// versions); a rerun gives identical final metrics; a rerun whose dataset
/// version's files are gone is refused in one line; a model fine-tuned from
/// `models:/NAME@v1` names v1 as its parent.
@Suite("Lineage and reruns with real Ultralytics")
struct LineageTests {
    static func git(_ repo: String, _ arguments: String) throws -> String {
        let result = try DatasetTests.sh("git -C \(repo) -c user.email=t@example.com -c user.name=t \(arguments)")
        guard result.status == 0 else { throw HarnessError("git \(arguments): \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A sweep's trials share the seed chosen when it was created (they
    /// differ by their values only), and each trial's lineage names it.
    @Test func aSweepsTrialsShareOneSeedAndNameTheirSweepAndTrial() async throws {
        let h = try YardHarness("lineage-sweep")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let config = try h.dir.write("sweep.yaml", """
            model: yolov8n.yaml
            train: {data: \(data), epochs: 1, imgsz: 64, batch: 8, workers: 0, plots: false, optimizer: SGD, device: cpu}
            sweeper: {n_trials: 2, sampler: GridSampler, search_space: {train: {lr0: [choice, 0.01, 0.02]}}}
            """)
        let started = try h.yard(["sweep", config, "--json"], server: yard.port)
        #expect(started.status == 0, "\(started.output)")
        let id = try #require(try JSONDecoder().decode(JSONValue.self, from: Data(started.output.utf8))["id"]?.stringValue)
        try await eventually("both trials told", timeout: .seconds(240), every: .milliseconds(500)) {
            (try await yard.get("/api/sweeps/\(id)")["trial_list"]?.arrayValue ?? []).filter { $0["told"] != nil }.count == 2
        }
        let trials = try await yard.get("/api/sweeps/\(id)")["trial_list"]?.arrayValue ?? []
        var seeds: Set<Int> = []
        for trial in trials {
            let job = try #require(trial["job_id"]?.stringValue)
            let lineage = try await yard.get("/api/lineage/\(job)")
            #expect(lineage["sweep"]?["id"]?.stringValue == id && lineage["sweep"]?["trial"]?.intValue == (trial["number"]?.intValue ?? -9) + 1, "\(lineage["sweep"] ?? .null)")
            #expect(lineage["sweep"]?["params"]?["train.lr0"] == trial["params"]?["train.lr0"])
            if let seed = lineage["seed"]?.intValue { seeds.insert(seed) }
        }
        #expect(trials.count == 2 && seeds.count == 1, "one seed for the sweep: \(seeds)")
    }

    @Test func aRegisteredModelAnswersWhatMadeItAndItsRunRunsAgainTheSame() async throws {
        let h = try YardHarness("lineage")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 16, val: 4) as NSString).deletingLastPathComponent
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let added = try h.yard(["datasets", "add", "shapes", folder, "--json"], server: yard.port)
        #expect(added.status == 0, "\(added.output)")
        let id = try #require(try DatasetTests.json(added.output)["version"]?["id"]?.stringValue)

        // The config in a git repo with an uncommitted file: the commit and a dirty diff are recorded.
        let repo = h.dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        _ = try Self.git(repo, "init -q")
        let config = try h.dir.write("repo/job.yaml", """
            model: yolov8n.yaml
            train: {data: "dataset:shapes", epochs: 1, imgsz: 64, batch: 8, workers: 0, plots: false, device: cpu}

            """)
        _ = try Self.git(repo, "add job.yaml")
        _ = try Self.git(repo, "commit -q -m config")
        let commit = try Self.git(repo, "rev-parse HEAD")
        _ = try h.dir.write("repo/notes.txt", "not committed\n")

        let submitted = try h.yard(["submit", config, "--wait"], server: yard.port)
        #expect(submitted.status == 0, "\(submitted.output)")
        let jobID = try #require(submitted.output.split(separator: "\n").first { $0.hasPrefix("submitted ") }?.dropFirst(10)).description
        #expect(try h.yard(["models", "register", jobID, "det"], server: yard.port).status == 0)

        let shown = try h.yard(["lineage", "det@v1", "--json"], server: yard.port)
        #expect(shown.status == 0, "\(shown.output)")
        let lineage = try JSONDecoder().decode(JSONValue.self, from: Data(shown.output.utf8))
        #expect(lineage["model"]?["version"] == "1" && lineage["job"]?["id"]?.stringValue == jobID)
        #expect(lineage["dataset"]?["hash"]?.stringValue == id && lineage["dataset"]?["version"]?["id"]?.stringValue == id)
        #expect(id == (try DatasetTests.dvcHash(of: folder, in: h.dir)), "the lineage's dataset hash is what `dvc add` prints")
        #expect(lineage["dataset"]?["present"] == .bool(true))
        #expect(lineage["attempts"]?.arrayValue?.count == 1 && lineage["attempts"]?[0]?["end"] == "succeeded", "\(lineage["attempts"] ?? .null)")
        #expect(lineage["code"]?["commit"]?.stringValue == commit && lineage["code"]?["dirty"] == .bool(true))
        #expect(lineage["code"]?["diff"]?.stringValue?.count == 64)
        let engine = try #require(lineage["engine"]?.objectValue)
        #expect(engine["ultralytics"]?.stringValue == (try h.installedVersion("ultralytics")))
        #expect(engine["torch"]?.stringValue?.isEmpty == false && engine["python"]?.stringValue?.isEmpty == false && engine["engine"] != nil)
        #expect(lineage["device"] == "cpu" && lineage["host"]?.stringValue?.isEmpty == false)
        let seed = try #require(lineage["seed"]?.intValue, "a seed is chosen and recorded")
        #expect(lineage["deterministic"] == .bool(true))
        #expect(lineage["alias_history"]?.arrayValue?.isEmpty == true && lineage["registered"]?.arrayValue?.count == 1)
        let text = try h.yard(["lineage", "det@v1"], server: yard.port)
        #expect(text.output.contains("DVC hash \(id)") && text.output.contains("commit \(commit) (dirty"), "\(text.output)")

        // The same run again: identical final metrics on a CPU.
        let rerun = try h.yard(["rerun", "det@v1", "--wait"], server: yard.port)
        #expect(rerun.status == 0 && rerun.output.contains("the final metrics and the last epoch agree exactly"), "\(rerun.output)")
        let rerunID = try #require(rerun.output.split(separator: "\n").first { $0.hasPrefix("rerun of ") }?.split(separator: " ")[5]).description
        let again = try await yard.get("/api/lineage/\(rerunID)")
        #expect(again["rerun_of"]?.stringValue == jobID && again["seed"]?.intValue == seed && again["dataset"]?["hash"]?.stringValue == id)
        #expect(again["metrics"] == lineage["metrics"] && again["last_epoch"] == lineage["last_epoch"])
        let losses = (lineage["last_epoch"]?.objectValue ?? [:]).filter { $0.key.hasSuffix("_loss") }
        #expect(losses.count >= 3 && losses.values.allSatisfy { ($0.doubleValue ?? 0) > 0 }, "losses, not zeros, were compared: \(losses)")

        // The record as a bundle, and that bundle run again: the same numbers.
        let bundle = h.dir.file("det-v1.tar")
        let written = try h.yard(["lineage", "det@v1", "--bundle", bundle], server: yard.port)
        #expect(written.status == 0, "\(written.output)")
        let unpacked = h.dir.file("unpacked")
        #expect(try DatasetTests.sh("mkdir -p \(unpacked) && tar -xf \(bundle) -C \(unpacked)").status == 0)
        let manifest = try JSONDecoder().decode(JSONValue.self, from: try Data(contentsOf: URL(fileURLWithPath: unpacked + "/dataset/manifest.json")))
        #expect(manifest.arrayValue?.count == lineage["dataset"]?["version"]?["files"]?.intValue && manifest.arrayValue?.isEmpty == false)
        let environment = try String(contentsOfFile: unpacked + "/environment.txt", encoding: .utf8)
        #expect(environment.lowercased().contains("ultralytics==\(engine["ultralytics"]?.stringValue ?? "?")"), "\(environment.prefix(300))")
        let fromBundle = try h.yard(["rerun", "--from-bundle", bundle, "--wait"], server: yard.port)
        #expect(fromBundle.status == 0 && fromBundle.output.contains("the final metrics and the last epoch agree exactly"), "\(fromBundle.output)")
        for (arguments, says) in [(["rerun", "--from-bundle", config], "not a lineage bundle"), (["rerun", "--from-bundle", h.dir.file("none.tar")], "does not exist"),
                                  (["rerun", "--from-bundle", bundle, "--data", "dataset:nope"], "no dataset nope"),
                                  (["lineage", "det@v1", "--bundle", "/nonexistent/x.tar"], "does not exist")] {
            let refusedBundle = try h.yard(arguments, server: yard.port)
            #expect(refusedBundle.status != 0 && refusedBundle.output.split(separator: "\n").count == 1 && refusedBundle.output.contains(says), "\(refusedBundle.output)")
        }

        // Fine-tuned from the registered version: v1 is its parent.
        let tune = try h.dir.write("tune.yaml", """
            model: models:/det@v1
            train: {data: "dataset:shapes", epochs: 1, imgsz: 64, batch: 8, workers: 0, plots: false, device: cpu}

            """)
        let tuned = try h.yard(["submit", tune, "--wait"], server: yard.port)
        #expect(tuned.status == 0, "\(tuned.output)")
        let tunedID = try #require(tuned.output.split(separator: "\n").first { $0.hasPrefix("submitted ") }?.dropFirst(10)).description
        #expect(try h.yard(["models", "register", tunedID, "det"], server: yard.port).status == 0)
        let child = try await yard.get("/api/lineage/det@v2")
        #expect(child["parent"]?["name"] == "det" && child["parent"]?["version"] == "1", "\(child)")
        #expect(child["parent"]?["sha256"] == lineage["model"]?["sha256"])
        #expect(child["job"]?["model"] == "models:/det@v1")

        // The version's files removed: a rerun is refused in one line.
        try FileManager.default.removeItem(atPath: h.data + "/datasets/versions/\(id)")
        let refused = try h.yard(["rerun", jobID], server: yard.port)
        #expect(refused.status != 0)
        let lines = refused.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("shapes@\(id) is gone"), "\(refused.output)")
    }
}
}
