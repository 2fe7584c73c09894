import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// `yard backup` while `yard up` trains, `yard restore` into a new data
/// dir, a second `yard up` on it: the same jobs and epochs, the same
/// registered model (same sha256, same answers), the dataset version verifies.
@Suite("Backup and restore of a training server")
struct BackupTests {
    @Test func aBackupTakenDuringTrainingRestoresIntoAServerWithTheSameJobsAndModel() async throws {
        let h = try YardHarness("backup")
        defer { h.dir.remove() }
        let folder = (try h.demoDataset(train: 16, val: 4) as NSString).deletingLastPathComponent
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let added = try h.yard(["datasets", "add", "shapes", folder], server: yard.port)
        #expect(added.status == 0, "\(added.output)")

        let registered = try await yard.submit("""
            model: yolov8n.yaml
            train: {data: "dataset:shapes", epochs: 2, imgsz: 64, batch: 8, workers: 0, plots: false}
            mlflow: {register_model: shapes, register_alias: production}
            """)
        try await yard.waitForState(registered, "succeeded", timeout: .seconds(300))
        try await eventually("auto-registration", timeout: .seconds(60)) {
            try await yard.get("/api/models?name=shapes")["versions"]?.arrayValue?.first?["aliases"] == ["production"]
        }
        let model = try #require(try await yard.get("/api/models?name=shapes")["versions"]?[0])
        let sha256 = try #require(model["sha256"]?.stringValue)
        let image = try #require(try FileManager.default.contentsOfDirectory(atPath: folder + "/images/val").sorted().first.map { folder + "/images/val/" + $0 })
        let answer = try await Self.predict(yard, image: image)

        // A long training, backed up while it runs.
        let training = try await yard.submit("""
            model: yolov8n.yaml
            train: {data: "dataset:shapes", epochs: 500, imgsz: 64, batch: 8, workers: 0, plots: false}
            """)
        try await yard.waitFor(training, timeout: .seconds(300), "a first epoch") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        let epochsBefore = try await yard.recordedEpochs(training)
        let archive = h.dir.file("backup.tar.zst")
        let started = Date()
        let backup = try h.yard(["backup", archive, "--data-dir", h.data, "--include-secret-key"])
        let took = Date().timeIntervalSince(started)
        #expect(backup.status == 0, "\(backup.output)")
        #expect(backup.output.contains("wrote \(archive)"), "\(backup.output)")
        #expect(backup.output.contains("WARNING: the archive holds the secret key"), "said loudly: \(backup.output)")
        let stillTraining = try await yard.job(training)
        #expect(stillTraining["state"] == "running", "the training went on: \(stillTraining["state"] ?? .null), backup took \(took) s: \(backup.output)")
        let jobsBefore = Set((try await yard.get("/api/jobs")["jobs"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue })
        let registeredEpochs = try await yard.recordedEpochs(registered)
        #expect(try h.yard(["stop", training], server: yard.port).status == 0)
        try await yard.signal(SIGTERM)

        // A dry run into the new dir creates nothing; the restore then writes it.
        let restored = h.dir.file("restored")
        let dry = try h.yard(["restore", archive, "--data-dir", restored, "--dry-run"])
        #expect(dry.status == 0 && dry.output.contains("dry run, nothing changed"), "\(dry.output)")
        #expect(!FileManager.default.fileExists(atPath: restored))
        let restore = try h.yard(["restore", archive, "--data-dir", restored])
        #expect(restore.status == 0 && restore.output.contains("restored into"), "\(restore.output)")

        let second = try await h.serving(["up", "--port", "0", "--data-dir", restored, "--python", h.python, "--stop-grace", "60"], log: "up-restored")
        defer { second.process.terminate() }
        let jobsAfter = Set((try await second.get("/api/jobs")["jobs"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue })
        #expect(jobsAfter == jobsBefore)
        #expect(try await second.recordedEpochs(registered) == registeredEpochs)
        let epochsAfter = try await second.recordedEpochs(training)
        #expect(Array(epochsAfter.prefix(epochsBefore.count)) == epochsBefore, "\(epochsAfter) vs \(epochsBefore)")
        _ = try? h.yard(["stop", training], server: second.port)
        let served = try #require(try await second.get("/api/models?name=shapes")["versions"]?[0])
        #expect(served["sha256"]?.stringValue == sha256)
        #expect(served["aliases"] == ["production"])
        #expect(try await Self.predict(second, image: image) == answer, "the same model gives the same answer")
        let verified = try h.yard(["datasets", "validate", "shapes@1"], server: second.port)
        #expect(verified.status == 0, "\(verified.output)")
    }

    static func predict(_ yard: RunningYard, image: String) async throws -> JSONValue {
        var request = HTTPClientRequest(url: yard.base + "/api/predict/shapes?conf=0.0005&imgsz=64")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "image/jpeg")
        request.body = .bytes(ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: image))))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        let body = try await response.body.collect(upTo: 16 << 20)
        let answer = try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        #expect(response.status == .ok, "\(answer)")
        return answer["images"]?[0]?["boxes"] ?? .null
    }
}
}
