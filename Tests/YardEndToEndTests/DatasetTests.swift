import Foundation
import Testing
import YardArtifacts
import YardDatasets
import YardDomain
import YardTestSupport

extension EndToEnd {
/// Issue 12 end to end: `yard datasets` with the real binary, DVC's own
/// `dvc add`, and real Ultralytics training and test-split evaluation.
@Suite("Datasets with DVC and real Ultralytics")
struct DatasetTests {
    static func sh(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The `md5` `dvc add` writes for a copy of `folder` in a fresh DVC repo.
    static func dvcHash(of folder: String, in dir: TemporaryDirectory) throws -> String {
        guard let services = ProcessInfo.processInfo.environment["YARD_SERVICES"] else { throw HarnessError("YARD_SERVICES is not set; run scripts/test.sh") }
        let repo = dir.file("dvc-repo")
        let result = try sh("mkdir -p \(repo) && cd \(repo) && \(services)/bin/dvc init --no-scm -q && cp -r \(folder) data && \(services)/bin/dvc add data -q && cat data.dvc")
        guard result.status == 0, let line = result.output.split(separator: "\n").first(where: { $0.contains("md5:") }) else {
            throw HarnessError("dvc add failed: \(result.output.suffix(600))")
        }
        return line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)
    }

    static func json(_ output: String) throws -> JSONValue {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else { throw HarnessError("no JSON in: \(output.suffix(400))") }
        return try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
    }

    @Test func aVersionIdIsWhatDVCComputesReAddingIsANoOpAndBadFilesAreNamedWithTheirLine() async throws {
        let h = try YardHarness("datasets")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 16, val: 4) as NSString).deletingLastPathComponent
        let yard = try await h.up()
        defer { yard.process.terminate() }

        let added = try h.yard(["datasets", "add", "shapes", folder, "--json"], server: yard.port)
        #expect(added.status == 0, "\(added.output)")
        let version = try Self.json(added.output)
        let id = try #require(version["version"]?["id"]?.stringValue)
        #expect(id == (try Self.dvcHash(of: folder, in: h.dir)), "the version id is DVC's directory hash")
        #expect(version["created"] == .bool(true))

        let again = try h.yard(["datasets", "add", "shapes", folder], server: yard.port)
        #expect(again.status == 0 && again.output.contains("unchanged, still version 1"), "\(again.output)")
        let listed = try h.yard(["datasets", "list"], server: yard.port)
        #expect(listed.output.contains("shapes") && listed.output.contains(String(id.prefix(12))), "\(listed.output)")

        // A corrupt JPEG and an out-of-range box, planted in a copy.
        let broken = h.dir.file("broken")
        #expect(try Self.sh("cp -r \(folder) \(broken)").status == 0)
        var images = try FileManager.default.contentsOfDirectory(atPath: broken + "/images/train").sorted()
        let png = broken + "/images/train/" + images[0]
        images[0] = (images[0] as NSString).deletingPathExtension + ".jpg"
        let jpeg = broken + "/images/train/" + images[0]
        let converted = try Self.sh("\(h.python) -c \"from PIL import Image; Image.open('\(png)').save('\(jpeg)', quality=90)\" && rm \(png)")
        #expect(converted.status == 0, "\(converted.output)")
        let whole = try #require(FileManager.default.contents(atPath: jpeg))
        try whole.prefix(120).write(to: URL(fileURLWithPath: jpeg))  // cut inside its header: Ultralytics drops it
        let label = "labels/train/" + (images[1] as NSString).deletingPathExtension + ".txt"
        let rows = try String(contentsOfFile: broken + "/" + label, encoding: .utf8).split(separator: "\n")
        try (rows[0] + "\n0 1.7 0.5 0.2 0.2\n").write(toFile: broken + "/" + label, atomically: true, encoding: .utf8)
        let validated = try h.yard(["datasets", "validate", broken])
        #expect(validated.status == 1, "errors exit 1: \(validated.output)")
        #expect(validated.output.contains("error: images/train/\(images[0]):"), "\(validated.output)")
        #expect(validated.output.contains("error: \(label):2: coordinate 1.7 is outside 0-1"), "\(validated.output)")
        let fixed = try h.yard(["datasets", "validate", broken, "--fix", h.dir.file("fixed")])
        #expect(fixed.output.contains("wrote \(h.dir.file("fixed"))"), "\(fixed.output)")
        #expect(try h.yard(["datasets", "validate", h.dir.file("fixed")]).status == 0)
        #expect(FileManager.default.fileExists(atPath: broken + "/images/train/" + images[0]), "the source is never changed")
        // The stored version of the same name is not touched by edits of its source.
        let stored = try h.yard(["datasets", "validate", "shapes@1"], server: yard.port)
        #expect(stored.status == 0, "\(stored.output)")
    }

    /// `datasets add s3://bucket/prefix` reads the objects with the server's
    /// credentials (a real S3 server) into the same version as the folder.
    @Test func aDatasetInABucketAddsTheSameVersionAsItsFolder() async throws {
        let h = try YardHarness("datasets-s3")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 8, val: 4) as NSString).deletingLastPathComponent
        let client = try S3Server.client()
        let bucket = S3Server.bucket("datasets")
        try await client.createBucket(bucket)
        let files = try DatasetFiles.list(root: folder, allowExternalSymlinks: false)
        for file in files { try await client.putFile(folder + "/" + file, bucket: bucket, key: "shapes/" + file) }
        let yard = try await h.serving(["up", "--port", "0", "--data-dir", h.data, "--python", h.python], environment: [
            "MINIO_ENDPOINT": try S3Server.endpoint(), "MINIO_ID": "testing", "MINIO_SECRET_KEY": "testing"], log: "up")
        defer { yard.process.terminate() }
        let local = try Self.json(try h.yard(["datasets", "add", "shapes", folder, "--json"], server: yard.port).output)
        let remote = try h.yard(["datasets", "add", "shapes", "s3://\(bucket)/shapes", "--json"], server: yard.port)
        #expect(remote.status == 0, "\(remote.output)")
        let version = try Self.json(remote.output)
        #expect(version["version"]?["id"] == local["version"]?["id"])
        #expect(version["created"] == .bool(false))
        let missing = try h.yard(["datasets", "add", "other", "s3://\(bucket)/nothing-here"], server: yard.port)
        #expect(missing.status != 0 && missing.output.contains("holds no objects"), "\(missing.output)")
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: h.data + "/datasets/tmp")) ?? []
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// A `yard worker` on "another machine" (a data dir of its own) trains on
    /// a version the server stored: the server copied it to the bucket, the
    /// worker fetches it by id.
    @Test func aWorkerElsewhereFetchesTheVersionFromTheBucket() async throws {
        let endpoint = try S3Server.endpoint()
        let bucket = S3Server.bucket("dsets")
        let redis = try await RedisServer()
        let h = try YardHarness("datasets-remote")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 16, val: 4) as NSString).deletingLastPathComponent
        let s3 = ["MINIO_ENDPOINT": endpoint, "MINIO_ID": "testing", "MINIO_SECRET_KEY": "testing", "MINIO_BUCKET": bucket]
        let server = try await h.serving(["server", "--redis", redis.url, "--port", "0", "--data-dir", h.dir.file("server"), "--python", h.python],
                                         environment: s3, log: "server")
        defer { server.process.terminate() }
        let key = try h.secretKey(of: h.dir.file("server"))
        let worker = try await h.spawn(["worker", "--redis", redis.url, "--data-dir", h.dir.file("w1"), "--lease", "10", "--python", h.python],
                                       environment: ["YARD_SECRET_KEY": key], log: "w1", ready: "trainyard worker ")
        defer { worker.signal(SIGKILL) }

        let added = try h.yard(["datasets", "add", "shapes", folder, "--json"], server: server.port)
        let id = try #require(try Self.json(added.output)["version"]?["id"]?.stringValue, "\(added.output)")
        let keys = try await S3Server.client().list(bucket: bucket, prefix: "_datasets/versions/\(id)/").map(\.key)
        #expect(keys.contains("_datasets/versions/\(id)/manifest.json"), "\(keys)")
        let job = try await server.submit("""
            model: yolov8n.yaml
            train: {data: "dataset:shapes", epochs: 1, imgsz: 64, batch: 8, workers: 0, plots: false}
            minio: {MINIO_ENDPOINT: \(endpoint), MINIO_ID: testing, MINIO_SECRET_KEY: testing, MINIO_BUCKET: \(bucket)}

            """)
        try await server.waitForState(job, "succeeded")
        let record = try await server.job(job)
        #expect(record["dataset"]?.stringValue == "shapes@\(id)")
        #expect(FileManager.default.fileExists(atPath: h.dir.file("w1") + "/datasets/versions/\(id)/manifest.json"))
        let yaml = try String(contentsOfFile: h.dir.file("w1") + "/datasets/versions/\(id)/data.yaml", encoding: .utf8)
        #expect(yaml.contains(h.dir.file("w1") + "/datasets/versions/\(id)/tree"), "the worker's copy points at itself: \(yaml)")
        let logs = try await HTTPText.get(server.base + "/api/jobs/\(job)/logs")
        #expect(logs.contains("fetched from the bucket"), "\(logs.suffix(800))")
    }

    /// The test split's numbers reach MLflow: overall and per class, at the
    /// last epoch's step, with the dataset version as a tag.
    @Test func aTestSplitEvaluationIsSentToMLflow() async throws {
        let uri = try MLflow.sharedURI()
        let h = try YardHarness("datasets-mlflow")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 24, val: 6) as NSString).deletingLastPathComponent
        let flat = h.dir.file("flat")
        #expect(try Self.sh("mkdir -p \(flat) && cp \(folder)/images/*/* \(folder)/labels/*/* \(flat)/ && printf 'square\\ndisc\\ntriangle\\n' > \(flat)/classes.txt").status == 0)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let added = try h.yard(["datasets", "add", "shapes", flat, "--split", "0.6,0.2,0.2", "--json"], server: yard.port)
        let id = try #require(try Self.json(added.output)["version"]?["id"]?.stringValue, "\(added.output)")
        let experiment = "e2e-test-split-\(UUID().uuidString.prefix(8))"
        let job = try await yard.submit("""
            model: yolov8n.yaml
            experiment: \(experiment)
            train: {data: "dataset:shapes", epochs: 2, imgsz: 64, batch: 8, workers: 0, plots: false}
            mlflow: {MLFLOW_TRACKING_URI: "\(uri)"}

            """)
        try await yard.waitForState(job, "succeeded")
        try await yard.waitFor(job, timeout: .seconds(120), "tracking synced") { $0["tracking"] == "synced" }
        let runs = try #require(try MLflowTrackingTests.readBack(uri, experiment: experiment).arrayValue)
        let run = try #require(runs.first)
        let history = run["hist"]?.objectValue ?? [:]
        for key in ["test/precision", "test/recall", "test/f1", "test/mAP50", "test/mAP50-95", "test/mAP50-95/square", "test/recall/triangle"] {
            #expect(history[key]?[0]?[0] == .int(2), "\(key) at step 2: \(history.keys.sorted().filter { $0.hasPrefix("test") })")
        }
        let stored = try await yard.job(job)
        #expect(history["test/mAP50-95"]?[0]?[1]?.doubleValue == stored["test_metrics"]?["test/mAP50-95"]?.doubleValue)
        #expect(run["tags"]?["trainyard.dataset"]?.stringValue == "shapes@\(id)")
        #expect(run["params"]?["data"]?.stringValue == "dataset:shapes@\(id)")
        #expect(run["arts"]?.arrayValue?.contains("test") == true, "\(run["arts"] ?? .null)")
    }

    /// COCO made here from the generated shapes (category ids 3, 5, 9), with a
    /// crowd box, a box of an unknown category and a zero-area box.
    static let cocoScript = #"""
    import json, shutil, sys
    from pathlib import Path
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    (out / "images").mkdir(parents=True)
    ids = [3, 5, 9]
    images, annotations = [], []
    for split in ("train", "val"):
        for image in sorted((src / "images" / split).glob("*.png")):
            shutil.copy(image, out / "images" / image.name)
            number = len(images) + 1
            images.append({"id": number, "file_name": image.name, "width": 64, "height": 64})
            for row in (src / "labels" / split / (image.stem + ".txt")).read_text().split("\n"):
                if not row.strip():
                    continue
                c, x, y, w, h = map(float, row.split())
                annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": ids[int(c)], "iscrowd": 0,
                                    "bbox": [(x - w / 2) * 64, (y - h / 2) * 64, w * 64, h * 64], "area": w * h * 4096})
    annotations.append({"id": 9001, "image_id": 1, "category_id": 3, "iscrowd": 1, "bbox": [0, 0, 30, 30]})
    annotations.append({"id": 9002, "image_id": 2, "category_id": 42, "iscrowd": 0, "bbox": [1, 1, 10, 10]})
    annotations.append({"id": 9003, "image_id": 3, "category_id": 5, "iscrowd": 0, "bbox": [5, 5, 0, 12]})
    categories = [{"id": 9, "name": "triangle"}, {"id": 3, "name": "square"}, {"id": 5, "name": "disc"}]
    (out / "annotations").mkdir()
    (out / "annotations" / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    print(json.dumps({"images": len(images), "annotations": len(annotations)}))
    """#

    @Test func cocoIsConvertedReportedTrainedOnAndEvaluatedOnItsTestSplit() async throws {
        let h = try YardHarness("coco")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 40, val: 10) as NSString).deletingLastPathComponent
        let coco = h.dir.file("coco")
        let script = try h.dir.write("coco.py", Self.cocoScript)
        let made = try Self.sh("\(h.python) \(script) \(folder) \(coco)")
        #expect(made.status == 0, "\(made.output)")
        let yard = try await h.up()
        defer { yard.process.terminate() }

        let added = try h.yard(["datasets", "add", "shapes-coco", coco, "--split", "0.6,0.2,0.2", "--seed", "2", "--json"], server: yard.port)
        #expect(added.status == 0, "\(added.output)")
        let result = try Self.json(added.output)
        let version = try #require(result["version"])
        #expect(version["format"] == "coco")
        #expect(version["classes"] == .array(["square", "disc", "triangle"]), "categories 3, 5, 9 become classes 0, 1, 2")
        #expect(version["splits"]?["train"]?["images"] == .int(30) && version["splits"]?["test"]?["images"] == .int(10))
        let problems = result["report"]?["problems"]?.arrayValue ?? []
        for (kind, annotation) in [("crowd_box", "9001"), ("class_out_of_range", "9002"), ("degenerate_box", "9003")] {
            #expect(problems.contains { $0["kind"]?.stringValue == kind && $0["message"]?.stringValue?.contains("annotation \(annotation)") == true
                && $0["file"] == "annotations/instances.json" }, "\(kind) for annotation \(annotation): \(problems)")
        }
        let id = try #require(version["id"]?.stringValue)

        let config = try h.dir.write("job.yaml", """
            model: yolov8n.yaml
            train: {data: "dataset:shapes-coco", epochs: 2, imgsz: 64, batch: 8, workers: 0, plots: false}

            """)
        let submit = try h.yard(["submit", config, "--wait"], server: yard.port)
        #expect(submit.status == 0, "\(submit.output)")
        let jobID = try #require(submit.output.split(separator: "\n").first { $0.hasPrefix("submitted ") }?.dropFirst(10)).description
        let job = try await yard.job(jobID)
        #expect(job["dataset"]?.stringValue == "shapes-coco@\(id)")
        #expect(job["dataset_hash"]?.stringValue == id)
        #expect(job["config"]?["train"]?["data"]?.stringValue == "dataset:shapes-coco@\(id)")
        // Evaluated on the 10 test images with Ultralytics' own val(split="test").
        let test = try #require(job["test_metrics"]?.objectValue, "\(job)")
        #expect(Set(test.keys) == ["test/precision", "test/recall", "test/f1", "test/mAP50", "test/mAP50-95"])
        let saveDir = try #require(job["save_dir"]?.stringValue)
        let evaluation = try JSONDecoder().decode(JSONValue.self, from: try #require(FileManager.default.contents(atPath: saveDir + "/test/evaluation.json")))
        #expect(evaluation["confusion_matrix"]?["names"] == .array(["square", "disc", "triangle", "background"]))
        #expect(evaluation["confusion_matrix"]?["matrix"]?.arrayValue?.count == 4)
        let tested = (evaluation["classes"]?.arrayValue ?? []).compactMap { $0["images"]?.doubleValue }
        #expect(!tested.isEmpty && tested.allSatisfy { $0 <= 10 })
        #expect(evaluation["metrics"]?["mAP50-95"]?.doubleValue == test["test/mAP50-95"]?.doubleValue)
        let shown = try h.yard(["datasets", "show", "shapes-coco"], server: yard.port)
        #expect(shown.output.contains("jobs: \(jobID) (succeeded)"), "\(shown.output)")
    }
}
}
