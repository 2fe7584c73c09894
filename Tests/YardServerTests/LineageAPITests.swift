import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import YardDomain
import YardStore
import YardTestSupport

/// Issue 31: every job records a seed and Ultralytics' deterministic mode;
/// `GET /api/lineage/REF` answers what made a version or a job;
/// `POST /api/jobs/ID/rerun` submits it again on the same pieces or refuses
/// in one line; `model: models:/NAME@...` pins the version it starts from and
/// the worker trains from its weights only when their sha256 matches.
@Suite("Lineage, reruns and fine-tuning from the registry")
struct LineageAPITests {
    static let datasetID = "0123456789abcdef0123456789abcdef.dir"

    static func post(_ client: any TestClientProtocol, _ uri: String, _ body: String = "", headers: HTTPFields = [.contentType: "application/yaml"]) async throws -> (Int, JSONValue) {
        try await ModelsAPITests.json(client, uri, .post, body, headers: headers)
    }

    /// A registered dataset version whose files are not on the server.
    static func recordDataset(_ t: TestYard) async throws {
        _ = try await t.yard.store.recordDatasetVersion(DatasetVersion(
            name: "shapes", number: 1, id: datasetID, createdAt: Date(), source: "/somewhere/shapes", format: "yolo", task: "detect",
            files: 40, bytes: 1000, classes: ["square"], splits: ["train": .init(images: 16, labelled: 16, instances: 20, classCounts: [20])],
            errors: 0, warnings: 1, notes: []))
    }

    @Test func everyJobRecordsASeedAndDeterministicModeAndItsCodeState() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.test { client in
            let diff = String(repeating: "ab", count: 32)
            var headers: HTTPFields = [.contentType: "application/yaml"]
            headers[HTTPField.Name("X-Yard-Git-Commit")!] = String(repeating: "c", count: 40)
            headers[HTTPField.Name("X-Yard-Git-Dirty")!] = diff
            let (status, created) = try await Self.post(client, "/api/jobs", t.config("task_id: s1"), headers: headers)
            #expect(status == 201, "\(created)")
            let job = try await t.yard.store.require("s1")
            let seed = try #require(job.config["train"]?["seed"]?.intValue, "a seed is chosen when the config has none")
            #expect((0...JobConfig.maxSeed).contains(seed))
            #expect(job.config["train"]?["deterministic"] == .bool(true))
            #expect(job.provenance?.gitDirty == true && job.provenance?.gitDiff == diff)

            // The user's own choices stay; a clean tree is recorded as clean; a hostile header is not recorded.
            headers[HTTPField.Name("X-Yard-Git-Dirty")!] = "clean"
            _ = try await Self.post(client, "/api/jobs", t.config("task_id: s2\n").replacingOccurrences(of: "imgsz: 32", with: "imgsz: 32, seed: 7, deterministic: false"), headers: headers)
            let own = try await t.yard.store.require("s2")
            #expect(own.config["train"]?["seed"] == 7 && own.config["train"]?["deterministic"] == .bool(false))
            #expect(own.provenance?.gitDirty == false && own.provenance?.gitDiff == nil)
            headers[HTTPField.Name("X-Yard-Git-Dirty")!] = "../../etc/passwd"
            _ = try await Self.post(client, "/api/jobs", t.config("task_id: s3"), headers: headers)
            #expect(try await t.yard.store.require("s3").provenance == nil)

            for (bad, field) in [("seed: -1", "train.seed"), ("seed: abc", "train.seed"), ("seed: 1.5", "train.seed"), ("deterministic: maybe", "train.deterministic")] {
                let (code, error) = try await Self.post(client, "/api/jobs", t.config().replacingOccurrences(of: "imgsz: 32", with: "imgsz: 32, \(bad)"))
                #expect(code == 400 && error["field"]?.stringValue == field, "\(bad): \(error)")
            }
        }
    }

    @Test func lineageNamesTheVersionItsJobDatasetCodeAndAliasMovesAndARerunRefusesWhenThePiecesAreGone() async throws {
        let t = try TestYard(sqlite: true)
        defer { t.dir.remove() }
        try await Self.recordDataset(t)
        let config = try JobConfigParser { _ in true }.parse("""
            model: yolov8n.yaml
            task_id: orig
            train: {data: "dataset:shapes", epochs: 1, seed: 11}
            deploy: {model: det, alias: production}
            minio: {MINIO_ENDPOINT: "http://127.0.0.1:9", MINIO_ID: id, MINIO_SECRET_KEY: hunter2-secret, MINIO_BUCKET: b}
            """)
        _ = try await t.yard.control.submit(config, gitCommit: String(repeating: "d", count: 40))
        try await t.yard.store.update("orig") {
            $0.state = .succeeded
            $0.device = "cpu"
            $0.versions = ["torch": "2.4.0", "ultralytics": "8.3.0", "engine": "0.1.0"]
            $0.finalMetrics = ["metrics/mAP50-95(B)": 0.25]
            $0.testMetrics = ["test/mAP50-95": 0.2]
        }
        _ = try t.dir.write("artifacts/orig/weights/best.pt", "weights of orig")
        try await t.test { client in
            let (registered, v1) = try await ModelsAPITests.json(client, "/api/models", .post, #"{"job_id": "orig", "name": "det", "alias": "champion"}"#)
            #expect(registered == 201, "\(v1)")
            for reference in ["det@v1", "det@1", "det@champion", "det", "orig"] {
                let (status, lineage) = try await ModelsAPITests.json(client, "/api/lineage/\(reference)")
                #expect(status == 200, "\(reference): \(lineage)")
                #expect(lineage["job"]?["id"] == "orig" && lineage["seed"] == 11 && lineage["deterministic"] == .bool(true))
                #expect(lineage["dataset"]?["hash"]?.stringValue == Self.datasetID && lineage["dataset"]?["version"]?["source"] == "/somewhere/shapes")
                #expect(lineage["dataset"]?["present"] == .bool(false), "the version's files are not on this server")
                #expect(lineage["code"]?["commit"]?.stringValue == String(repeating: "d", count: 40))
                #expect(lineage["engine"]?["torch"] == "2.4.0" && lineage["test"]?["test/mAP50-95"] == .double(0.2))
                #expect(lineage["registered"]?.arrayValue?.count == 1)
                #expect(lineage["alias_history"]?.arrayValue?.first?["alias"] == "champion")
                #expect(reference == "orig" ? lineage["model"] == nil : lineage["model"]?["version"] == "1")
                #expect(!"\(lineage)".contains("hunter2"), "secrets stay masked")
            }
            for (reference, code) in [("det@v9", 404), ("det@staging", 404), ("nothing", 404), ("det@..", 400), ("-x", 400)] {
                let (status, error) = try await ModelsAPITests.json(client, "/api/lineage/\(reference)")
                #expect(status == code && error["message"]?.stringValue?.contains("\n") == false, "\(reference): \(error)")
            }

            // The record as a tar (read back by tar itself): secrets masked, weights by hash, what is missing said.
            _ = try t.dir.write("artifacts/orig/environment.txt", "torch==2.4.0\nultralytics==8.3.0\n")
            let tar = try await client.execute(uri: "/api/lineage/det@v1/bundle", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType] == "application/x-tar")
                return Data(buffer: response.body)
            }
            let out = t.dir.file("bundle")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try tar.write(to: URL(fileURLWithPath: out + "/b.tar"))
            let untar = Process()
            untar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            untar.arguments = ["tar", "-xf", out + "/b.tar", "-C", out]
            try untar.run()
            untar.waitUntilExit()
            #expect(untar.terminationStatus == 0)
            func read(_ name: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: try Data(contentsOf: URL(fileURLWithPath: out + "/" + name))) }
            let index = try read("bundle.json")
            #expect(index["files"] == ["lineage.json", "config.json", "metrics.json", "weights.json", "environment.txt"])
            #expect(index["missing"]?.arrayValue?.first?.stringValue?.hasPrefix("dataset/manifest.json") == true, "\(index)")
            #expect(try read("config.json")["train"]?["seed"] == 11 && !String(decoding: tar, as: UTF8.self).contains("hunter2"))
            #expect(try read("weights.json")["best"]?["sha256"] == v1["sha256"] && (try read("weights.json"))["registered"]?[0]?["sha256"] == v1["sha256"])
            #expect(try read("metrics.json")["test"]?["test/mAP50-95"] == .double(0.2))
            #expect(try String(contentsOfFile: out + "/environment.txt", encoding: .utf8).contains("ultralytics==8.3.0"))
            #expect(try read("lineage.json")["job"]?["id"] == "orig")

            // The version's files are not here: refused in one line, naming the version.
            let (refused, error) = try await Self.post(client, "/api/jobs/orig/rerun")
            #expect(refused == 404, "\(error)")
            let message = try #require(error["message"]?.stringValue)
            #expect(message.contains("shapes@\(Self.datasetID) is gone") && !message.contains("\n"), "\(message)")
            let (unknown, _) = try await Self.post(client, "/api/jobs/nope/rerun")
            #expect(unknown == 404)
            let (latest, onLatest) = try await Self.post(client, "/api/jobs/orig/rerun?on_latest_data=true")
            #expect(latest == 201, "\(onLatest)")
            #expect(onLatest["config"]?["train"]?["data"]?.stringValue == "dataset:shapes@\(Self.datasetID)", "re-pinned to the latest version at submit")
            let (badFlag, _) = try await Self.post(client, "/api/jobs/orig/rerun?on_latest_data=perhaps")
            #expect(badFlag == 400)

            // A submission that could not be read has no config to run again.
            let _: Job = try await t.yard.control.reject(taskID: "unreadable", source: ["config_path": "/x.yaml"], reason: "config_path: /x.yaml does not exist")
            let (conflict, why) = try await Self.post(client, "/api/jobs/unreadable/rerun")
            #expect(conflict == 409 && why["message"]?.stringValue?.contains("could not be read") == true, "\(why)")
        }
    }

    @Test func aRerunIsTheSameConfigSeedAndSecretsWithoutRegisteringOrDeployingAgain() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        let config = try JobConfigParser { _ in true }.parse(t.config("""
            task_id: first
            deploy: {model: det, alias: production}
            minio: {MINIO_ENDPOINT: "http://127.0.0.1:9", MINIO_ID: id, MINIO_SECRET_KEY: hunter2-secret, MINIO_BUCKET: b}
            metadata: {sweep_id: sw, trial_number: 2, author: me}
            """))
        let original = try await t.yard.control.submit(config, gitCommit: String(repeating: "e", count: 40),
                                                       provenance: JobProvenance(gitDirty: false))
        try await t.test { client in
            let (status, rerun) = try await Self.post(client, "/api/jobs/first/rerun")
            #expect(status == 201, "\(rerun)")
            let id = try #require(rerun["id"]?.stringValue)
            #expect(id != "first")
            let job = try await t.yard.store.require(id)
            #expect(job.config["train"]?["seed"] == original.config["train"]?["seed"] && job.config["train"]?["seed"] != nil)
            #expect(job.config["deploy"] == nil, "a rerun never deploys")
            #expect(job.config["metadata"] == ["author": "me"], "nor joins the sweep")
            #expect(job.provenance?.rerunOf == "first" && job.gitCommit == original.gitCommit && job.provenance?.gitDirty == false)
            let secrets = try await t.yard.store.secrets(of: id)
            #expect("\(secrets)".contains("hunter2-secret"), "its secrets are carried over, apart from the record")
            #expect(!"\(rerun)".contains("hunter2"))

            // The data it trained on is gone: refused in one line.
            try FileManager.default.removeItem(atPath: t.data)
            let (refused, error) = try await Self.post(client, "/api/jobs/first/rerun")
            #expect(refused == 404 && error["message"]?.stringValue == "cannot rerun first: its dataset \(t.data) is gone", "\(error)")
        }
    }

    @Test func aModelFineTunedFromTheRegistryPinsItsParentAndTrainsOnlyFromWeightsWithItsHash() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await ModelsAPITests.succeededJob(t, "base", weights: "weights of base")
        try await t.test { client in
            let (registered, _) = try await ModelsAPITests.json(client, "/api/models", .post, #"{"job_id": "base", "name": "det", "alias": "champion"}"#)
            #expect(registered == 201)
            let (status, created) = try await Self.post(client, "/api/jobs", "model: models:/det@champion\ntask_id: tune\ntrain: {data: \(t.data), epochs: 1}\n")
            #expect(status == 201, "\(created)")
            for (model, code, says) in [("models:/det@staging", 404, "no alias staging"), ("models:/nope@v1", 404, "no registered model nope"),
                                        ("models:/det@v7", 404, "no version 7"), ("models:/../x", 400, "model")] {
                let (bad, error) = try await Self.post(client, "/api/jobs", "model: \"\(model)\"\ntrain: {data: \(t.data)}\n")
                #expect(bad == code && error["message"]?.stringValue?.contains(says) == true, "\(model): \(error)")
            }
        }
        let job = try await t.yard.store.require("tune")
        let parent = try #require(job.provenance?.parent)
        let sha = SHA256.hash(data: Data("weights of base".utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(parent.name == "det" && parent.version == "1" && parent.requested == "models:/det@champion" && parent.sha256 == sha)
        #expect(job.model == "models:/det@v1", "pinned to the version: the alias may move")

        // The worker trains from the version's weights, checked.
        let runner = ScriptedEngineRunner.training(epochs: 1)
        try await t.worker(runner).drain()
        let spec = try #require(runner.requests.all.first?.spec)
        let weights = try #require(spec["model"]?.stringValue)
        #expect(FileManager.default.contents(atPath: weights) == Data("weights of base".utf8))
        #expect(try await t.yard.store.require("tune").state == .succeeded)

        // Weights that changed where they are kept are refused, with the reason.
        let cached = t.dir.file("models/sha256/\(sha.prefix(2))/\(sha).pt")
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: cached))
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse("model: models:/det@v1\ntask_id: tune2\ntrain: {data: \(t.data), epochs: 1}\n"))
        try await t.worker(ScriptedEngineRunner.training(epochs: 1)).drain()
        let refused = try await t.yard.store.require("tune2")
        #expect(refused.state == .failed && refused.message?.contains("weights changed where they are kept") == true, "\(refused.message ?? "")")

        // The parent's weights gone from every place: a rerun is refused in one line.
        try FileManager.default.removeItem(atPath: cached)
        try FileManager.default.removeItem(atPath: t.dir.file("artifacts/base/weights/best.pt"))
        try await t.test { client in
            // Each attempt, from the job's state events.
            let (_, tuned) = try await ModelsAPITests.json(client, "/api/lineage/tune")
            #expect(tuned["attempts"]?.arrayValue?.count == 1 && tuned["attempts"]?[0]?["end"] == "succeeded", "\(tuned["attempts"] ?? .null)")
            #expect(tuned["parent"]?["version"] == "1" && tuned["host"] == nil, "the scripted engine names no host")
            let (_, failed) = try await ModelsAPITests.json(client, "/api/lineage/tune2")
            #expect(failed["attempts"]?[0]?["end"] == "failed" && failed["attempts"]?[0]?["message"]?.stringValue?.contains("weights changed") == true, "\(failed["attempts"] ?? .null)")
            let (status, error) = try await Self.post(client, "/api/jobs/tune/rerun")
            #expect(status == 404 && error["message"]?.stringValue == "cannot rerun tune: the weights of det version 1 it started from are gone (sha256 \(sha.prefix(12)))", "\(error)")
        }
    }
}
