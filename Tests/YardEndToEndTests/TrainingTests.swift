import Foundation
import Testing
import YardDomain
import YardTestSupport

/// Every suite that trains runs inside this one, serialized: two trainings
/// at once on two cores only slow both.
@Suite("End to end", .serialized, .enabled(if: TestEnvironment.ready, "run scripts/test.sh"))
enum EndToEnd {}

extension EndToEnd {
/// Real Ultralytics trainings on CPU through `yard up`: tiny data, a few epochs.
@Suite("Training with real Ultralytics")
struct TrainingTests {
    static func detectConfig(data: String, epochs: Int, extra: String = "") -> String {
        """
        model: yolov8n.yaml
        train: {data: \(data), epochs: \(epochs), imgsz: 64, batch: 8, workers: 0, plots: false\(extra)}
        minio: {MINIO_ID: me, MINIO_SECRET_KEY: do-not-leak}

        """
    }

    @Test func aDetectionJobTrainsWithTheCLIAndItsRecordsMatchUltralytics() async throws {
        let h = try YardHarness("detect")
        defer { h.dir.remove() }
        let data = try h.demoDataset()
        let config = try h.dir.write("job.yaml", Self.detectConfig(data: data, epochs: 3).replacingOccurrences(of: "plots: false", with: "plots: true"))
        let yard = try await h.up()
        defer { yard.process.terminate() }

        let submit = try h.yard(["submit", config, "--wait"], server: yard.port)
        #expect(submit.status == 0, "\(submit.output)")
        #expect(submit.output.contains("epoch 3/3"))
        #expect(submit.output.contains("succeeded"))
        #expect(submit.output.contains("best weights"))
        let id = try #require(submit.output.split(separator: "\n").first { $0.hasPrefix("submitted ") }?.dropFirst(10)).description

        let job = try await yard.job(id)
        #expect(job["state"] == "succeeded")
        #expect(job["device"] == "cpu")
        #expect(job["config"]?["minio"]?["MINIO_SECRET_KEY"] == "***")
        let epochs = try #require(job["epoch_metrics"]?.arrayValue)
        #expect(epochs.map { $0["epoch"]?.intValue } == [1, 2, 3])

        // One stored row per epoch, equal to Ultralytics' own results.csv.
        let saveDir = try #require(job["save_dir"]?.stringValue)
        let csv = try ResultsCSV(path: saveDir + "/results.csv")
        #expect(csv.rows.count == 3)
        for (row, stored) in zip(csv.rows, epochs) {
            #expect(Int(row["epoch"] ?? 0) == stored["epoch"]?.intValue)
            for (column, value) in row where column != "epoch" && column != "time" {
                let mine = try #require(stored["metrics"]?[column]?.doubleValue, "column \(column) missing from the store")
                #expect(abs(mine - value) <= 1e-4 * max(1, abs(value)), "\(column): store \(mine) vs results.csv \(value)")
            }
        }

        // The weights exist and load for predict.
        let best = try #require(job["best_weights"]?.stringValue)
        let image = try #require(FileManager.default.contentsOfDirectory(atPath: (data as NSString).deletingLastPathComponent + "/images/val").first)
        let predict = try runPython(h.python, """
            from ultralytics import YOLO
            r = YOLO(\(best.debugDescription)).predict(\(((data as NSString).deletingLastPathComponent + "/images/val/" + image).debugDescription), imgsz=64, verbose=False)
            print("predicted", len(r))
            """, env: ["YOLO_CONFIG_DIR": h.data + "/ultralytics", "YOLO_OFFLINE": "1"])
        #expect(predict.contains("predicted 1"), "\(predict)")

        // Artifacts were kept, the log was stored, nothing leaked.
        let keys = (job["artifacts"]?.arrayValue ?? []).compactMap { $0["key"]?.stringValue }
        #expect(keys.contains("\(id)/weights/best.pt"))
        #expect(keys.contains("\(id)/results.csv"))
        #expect(keys.contains("\(id)/train.log"))
        #expect(FileManager.default.fileExists(atPath: h.data + "/artifacts/\(id)/weights/best.pt"))
        let logs = try h.yard(["logs", id], server: yard.port)
        #expect(logs.status == 0)
        #expect(logs.output.contains("Ultralytics"))
        #expect(!logs.output.contains("do-not-leak"))
        let show = try h.yard(["show", id], server: yard.port)
        #expect(show.status == 0 && show.output.contains("succeeded") && show.output.contains("EPOCH"))
        let list = try h.yard(["jobs"], server: yard.port)
        #expect(list.status == 0 && list.output.contains(id))
    }

    /// The Quick start's job, as `scripts/quickstart.sh` runs it: the demo
    /// dataset at its default size and `examples/quickstart.yaml` as shipped.
    /// A newcomer must see it learn, and predict with what it learned.
    @Test func theQuickStartJobLearnsAndItsWeightsPredict() async throws {
        let h = try YardHarness("quickstart")
        defer { h.dir.remove() }
        let folder = h.dir.file("demo")
        let demo = try h.yard(["datasets", "demo", folder])
        #expect(demo.status == 0, "\(demo.output)")
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/quickstart.yaml").standardizedFileURL.path
        let text = try String(contentsOfFile: example, encoding: .utf8)
        #expect(text.contains("data: ../.yard/demo/data.yaml"))
        let config = try h.dir.write("quickstart.yaml", text.replacingOccurrences(of: "../.yard/demo/data.yaml", with: folder + "/data.yaml"))
        let yard = try await h.up()
        defer { yard.process.terminate() }

        let submit = try h.yard(["submit", config, "--wait"], server: yard.port)
        #expect(submit.status == 0, "\(submit.output)")
        // "learned mAP50 0.000 → 0.977 over 30 epochs"
        let learned = try #require(submit.output.split(separator: "\n").first { $0.contains("learned mAP50 ") }, "\(submit.output)")
        let words = learned.split(separator: " ")
        let arrow = try #require(words.firstIndex(of: "→"), "\(learned)")
        let (before, after) = (Double(words[arrow - 1]) ?? 1, Double(words[arrow + 1]) ?? 0)
        #expect(after >= 0.5 && after > before + 0.3, "the demo did not learn: \(learned)")

        let id = try #require(submit.output.split(separator: "\n").first { $0.hasPrefix("submitted ") }?.dropFirst(10)).description
        let best = try #require(try await yard.job(id)["best_weights"]?.stringValue)
        let predictions = h.dir.file("predictions")
        for target in [id, best] {  // by job id (asks the server) and by weights file (no server)
            let predict = try h.yard(["predict", target, folder + "/images/val", "--save-dir", predictions], server: yard.port)
            #expect(predict.status == 0, "\(predict.output)")
            let lines = predict.output.split(separator: "\n").filter { $0.hasPrefix("val_") }
            #expect(lines.count == 24, "\(predict.output)")
            let found = lines.filter { $0.contains("square") || $0.contains("disc") || $0.contains("triangle") }
            #expect(found.count >= 18, "\(predict.output)")
            #expect(predict.output.contains("annotated copies in \(predictions)"))
        }
        let annotated = (try? FileManager.default.contentsOfDirectory(atPath: predictions)) ?? []
        #expect(annotated.filter { $0.hasPrefix("val_") }.count == 24, "\(annotated)")
        let missing = try h.yard(["predict", id, folder + "/nowhere"], server: yard.port)
        #expect(missing.status != 0 && missing.output.contains("no image or folder at \(folder)/nowhere"), "\(missing.output)")
    }

    @Test func aStoppedJobResumesToTheConfiguredEpochs() async throws {
        let h = try YardHarness("stop")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 64)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let id = try await yard.submit(Self.detectConfig(data: data, epochs: 8))
        try await yard.waitFor(id, "first epoch") { ($0["epoch"]?.intValue ?? 0) >= 1 }

        let stop = try h.yard(["stop", id], server: yard.port)
        #expect(stop.status == 0, "\(stop.output)")
        try await yard.waitForState(id, "stopped")
        let stopped = try await yard.job(id)
        let reached = stopped["epoch"]?.intValue ?? 0
        #expect(reached >= 1 && reached < 8, "stopped at epoch \(reached)")
        let checkpoint = h.data + "/runs/\(id)/weights/last.pt"
        #expect(FileManager.default.fileExists(atPath: checkpoint))

        let resume = try h.yard(["resume", id, "--wait"], server: yard.port)
        #expect(resume.status == 0, "\(resume.output)")
        #expect(resume.output.contains("resuming after epoch \(reached)"))
        let job = try await yard.job(id)
        #expect(job["state"] == "succeeded")
        #expect(job["attempts"] == 2)
        #expect((job["epoch_metrics"]?.arrayValue ?? []).map { $0["epoch"]?.intValue ?? 0 } == Array(1...8))
    }

    @Test func aKilledServiceResumesTheJobOnRestartAndFinishesItOnce() async throws {
        let h = try YardHarness("kill")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 64)
        var yard = try await h.up()
        let id = try await yard.submit(Self.detectConfig(data: data, epochs: 6))
        try await yard.waitFor(id, "second epoch") { ($0["epoch"]?.intValue ?? 0) >= 2 }
        #expect(try enginesRunning(for: id))
        let orphans = try engines(childrenOf: yard.process.processIdentifier)
        #expect(orphans.count == 2, "the job's engine and the warm one waiting for the next job: \(orphans)")
        try await yard.signal(SIGKILL)

        // The orphaned engine notices its parent died and exits; the warm one reads end of file.
        try await eventually("the orphaned engine to exit", timeout: .seconds(30)) { !(try enginesRunning(for: id)) }
        try await eventually("every orphaned engine to exit", timeout: .seconds(30)) { orphans.allSatisfy { !isAlive($0) } }

        yard = try await h.up()
        defer { yard.process.terminate() }
        try await yard.waitForState(id, "succeeded")
        let job = try await yard.job(id)
        #expect(job["attempts"] == 2)
        #expect((job["epoch_metrics"]?.arrayValue ?? []).map { $0["epoch"]?.intValue ?? 0 } == Array(1...6))
        let jobs = try await yard.get("/api/jobs")["jobs"]?.arrayValue ?? []
        #expect(jobs.count == 1, "one job record")
        let states = try await eventStates(yard, id)
        #expect(states.filter { $0 == "succeeded" }.count == 1)
        #expect(states.contains("queued"), "requeued after the crash")
    }

    @Test func aGracefulShutdownRequeuesTheJobForTheNextStart() async throws {
        let h = try YardHarness("term")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 64)
        var yard = try await h.up()
        let id = try await yard.submit(Self.detectConfig(data: data, epochs: 6))
        try await yard.waitFor(id, "first epoch") { ($0["epoch"]?.intValue ?? 0) >= 1 }
        let children = try engines(childrenOf: yard.process.processIdentifier)
        try await yard.signal(SIGTERM)
        #expect(yard.process.terminationStatus == 0, "a clean exit on SIGTERM")
        #expect(!(try enginesRunning(for: id)))
        try await eventually("the warm engine to end with the service", timeout: .seconds(10)) { children.allSatisfy { !isAlive($0) } }

        yard = try await h.up()
        defer { yard.process.terminate() }
        let requeued = try await yard.job(id)
        #expect(["queued", "running"].contains(requeued["state"]?.stringValue ?? ""))
        try await yard.waitForState(id, "succeeded")
        #expect((try await yard.job(id)["epoch_metrics"]?.arrayValue ?? []).count == 6)
    }

    @Test func aClassificationJobFinishes() async throws {
        let h = try YardHarness("cls")
        defer { h.dir.remove() }
        let data = try h.demoDataset(kind: "classify", train: 8, val: 4)
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let id = try await yard.submit("""
            model: yolov8n-cls.yaml
            train: {data: \(data), epochs: 2, imgsz: 32, batch: 8, workers: 0, plots: false}
            """)
        try await yard.waitForState(id, "succeeded")
        let job = try await yard.job(id)
        let epochs = job["epoch_metrics"]?.arrayValue ?? []
        #expect(epochs.count == 2)
        #expect(epochs.last?["metrics"]?["metrics/accuracy_top1"]?.doubleValue != nil)
        #expect(FileManager.default.fileExists(atPath: job["best_weights"]?.stringValue ?? "/nope"))
    }

    @Test func anInvalidUltralyticsArgumentFailsWithItsMessage() async throws {
        let h = try YardHarness("bad")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 4, val: 2)
        let config = try h.dir.write("bad.yaml", Self.detectConfig(data: data, epochs: 1, extra: ", lr9: 0.1"))
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let submit = try h.yard(["submit", config, "--wait"], server: yard.port)
        #expect(submit.status == 1)
        #expect(submit.output.contains("'lr9' is not a valid YOLO argument"), "\(submit.output)")
        #expect(submit.output.contains("failed"))
        #expect(!submit.output.contains("Traceback"))

        // Bad input never reaches the queue.
        let missing = try h.yard(["submit", h.dir.file("nope.yaml")], server: yard.port)
        #expect(missing.status != 0)
        #expect(missing.output.split(separator: "\n").count == 1 && missing.output.contains("nope.yaml: no such file"))
        let badEpochs = try h.dir.write("bad2.yaml", "model: yolov8n.yaml\ntrain: {data: \(data), epochs: 0}\n")
        let rejected = try h.yard(["submit", badEpochs], server: yard.port)
        #expect(rejected.status != 0)
        #expect(rejected.output == "error: train.epochs: must be a positive integer, got 0\n")
        let noServer = try h.yard(["jobs"], server: 1)
        #expect(noServer.status != 0 && noServer.output.contains("yard up"))
        #expect((try await yard.get("/api/jobs")["jobs"]?.arrayValue ?? []).count == 1)
    }
}

}

/// Is an engine process for this job still alive? A cold engine names the
/// job's spec on its command line; a warm one was handed the job on stdin and
/// moved into the job's folder.
func enginesRunning(for id: String) throws -> Bool {
    for pid in try FileManager.default.contentsOfDirectory(atPath: "/proc") where Int(pid) != nil {
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
        let cmdline = String(decoding: raw, as: UTF8.self)
        guard cmdline.contains("trainyard_engine") else { continue }
        if cmdline.contains("/jobs/\(id)/spec.json") { return true }
        if let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), cwd.hasSuffix("/jobs/\(id)") { return true }
    }
    return false
}

/// Whether a process is running (a zombie left to a parent that does not reap is not).
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first.map { $0 != "Z" && $0 != "X" } ?? false
}

/// The engine processes (training or warm, waiting for a job) whose parent is `parent`.
func engines(childrenOf parent: Int32) throws -> [Int32] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { pid in
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
              String(decoding: raw, as: UTF8.self).contains("trainyard_engine"),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        // pid (comm) state ppid ...
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == parent
    }
}

func eventStates(_ yard: RunningYard, _ id: String) async throws -> [String] {
    let stream = try await HTTPText.get(yard.base + "/api/jobs/\(id)/events")
    return stream.split(separator: "\n").filter { $0.hasPrefix("data: {\"state\"") || ($0.hasPrefix("data: ") && $0.contains("\"state\":")) }
        .compactMap { line -> String? in
            let json = try? JSONDecoder().decode(JSONValue.self, from: Data(line.dropFirst(6).utf8))
            return json?["state"]?.stringValue
        }
}

func runPython(_ python: String, _ code: String, env extra: [String: String], arguments: [String] = []) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = ["-c", code] + arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in extra { env[k] = v }
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// Ultralytics' results.csv as rows of column → number.
struct ResultsCSV {
    let rows: [[String: Double]]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let header = lines.first else { throw HarnessError("empty \(path)") }
        rows = lines.dropFirst().map { cells in
            Dictionary(uniqueKeysWithValues: zip(header, cells).compactMap { key, cell in Double(cell).map { (key, $0) } })
        }
    }
}

import AsyncHTTPClient

enum HTTPText {
    static func get(_ url: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        return String(buffer: try await response.body.collect(upTo: 64 << 20))
    }
}
