import Foundation
import Testing
import YardDomain
import YardTestSupport

extension EndToEnd {
/// The same tiny training on a warm engine (the default) and a cold one
/// (`--no-warm-engine`): the same results.csv columns, the same epoch events.
@Suite("Warm engine, real Ultralytics")
struct WarmEngineTrainingTests {
    /// Each event of a job's stream: its kind and data.
    static func events(_ yard: RunningYard, _ id: String) async throws -> [(kind: String, data: JSONValue)] {
        let stream = try await HTTPText.get(yard.base + "/api/jobs/\(id)/events")
        return stream.components(separatedBy: "\n\n").compactMap { block in
            let lines = block.split(separator: "\n")
            guard let kind = lines.first(where: { $0.hasPrefix("event: ") })?.dropFirst(7),
                  let data = lines.first(where: { $0.hasPrefix("data: ") })?.dropFirst(6),
                  let json = try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) else { return nil }
            return (String(kind), json)
        }
    }

    struct Run {
        let started: JSONValue
        let epochKeys: [Set<String>]
        let columns: String
        let log: String
    }

    static func train(_ h: YardHarness, data: String, extra: [String], environment: [String: String] = [:]) async throws -> Run {
        let folder = h.dir.file("data-\(extra.isEmpty ? "warm" : "cold")")
        let yard = try await h.serving(["up", "--port", "0", "--data-dir", folder, "--python", h.python] + extra, environment: environment, log: "up")
        defer { yard.process.terminate() }
        let id = try await yard.submit("""
            model: yolov8n.yaml
            train: {data: \(data), epochs: 2, imgsz: 64, batch: 8, workers: 0, plots: false}
            """)
        try await yard.waitForState(id, "succeeded")
        let events = try await Self.events(yard, id)
        let started = try #require(events.first { $0.kind == "started" }?.data)
        let epochs = events.filter { $0.kind == "epoch" }.map { Set(($0.data["metrics"]?.objectValue ?? [:]).keys).union(["epoch:\($0.data["epoch"]?.intValue ?? 0)"]) }
        let csv = try String(contentsOfFile: folder + "/runs/\(id)/results.csv", encoding: .utf8)
        let log = (try? String(contentsOfFile: folder + "/jobs/\(id)/train.log", encoding: .utf8)) ?? ""
        return Run(started: started, epochKeys: epochs, columns: String(csv.prefix { $0 != "\n" }), log: log)
    }

    /// A warm engine is an ordinary engine once it has its job: killed with
    /// -9 mid-training, the job fails naming the exit, and `yard resume`
    /// continues it from its checkpoint (on the next warm engine), each epoch
    /// recorded once.
    @Test func aWarmEngineKilledMidTrainingFailsItsJobWhichResumesFromItsCheckpoint() async throws {
        let h = try YardHarness("warm-kill")
        defer { h.dir.remove() }
        let data = try h.demoDataset()
        let yard = try await h.up()
        defer { yard.process.terminate() }
        let id = try await yard.submit("""
            model: yolov8n.yaml
            train: {data: \(data), epochs: 10, imgsz: 64, batch: 8, workers: 0, plots: false}
            """)
        try await yard.waitFor(id, "epoch 2") { ($0["epoch"]?.intValue ?? 0) >= 2 }
        // The engine training it: the child of `yard up` working in the job's folder.
        let training = try engines(childrenOf: yard.process.processIdentifier).filter { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"))?.hasSuffix("/jobs/\(id)") == true
        }
        let pid = try #require(training.first, "no engine working in jobs/\(id)")
        #expect(kill(pid, SIGKILL) == 0)
        try await yard.waitFor(id, failureExpected: true, "failed") { $0["state"] == "failed" }
        let failed = try await yard.job(id)
        #expect(failed["message"]?.stringValue?.contains("exited with code 137") == true, "\(failed["message"] ?? .null)")
        try await eventually("the killed engine reaped", timeout: .seconds(10)) { !isAlive(pid) }

        let resumed = try h.yard(["resume", id, "--wait"], server: yard.port)
        #expect(resumed.status == 0, "\(resumed.output.suffix(600))")
        let job = try await yard.job(id)
        #expect(job["state"] == "succeeded")
        #expect(job["attempts"] == .int(2))
        #expect(job["epoch_metrics"]?.arrayValue?.map { $0["epoch"]?.intValue ?? 0 } == Array(1...10), "each epoch once")
        let log = try String(contentsOfFile: h.data + "/jobs/\(id)/train.log", encoding: .utf8)
        #expect(log.contains("resuming from"))
        #expect(log.components(separatedBy: "warm engine ready").count >= 3, "both attempts ran on warm engines")
    }

    @Test func aJobOnAWarmEngineReportsWhatAColdOneDoes() async throws {
        let h = try YardHarness("warm")
        defer { h.dir.remove() }
        let data = try h.demoDataset()
        // A shared temporary folder with a planted module: `python -m` imports
        // from its working folder first, so a waiting engine must not run there.
        let shared = h.dir.file("shared-tmp")
        let marker = h.dir.file("planted-module-imported")
        _ = try h.dir.write("shared-tmp/torch.py", "open(\(marker.debugDescription), 'w').write('imported')\n")
        let warm = try await Self.train(h, data: data, extra: [], environment: ["TMPDIR": shared + "/"])
        #expect(!FileManager.default.fileExists(atPath: marker), "the planted torch.py was not imported")
        let cold = try await Self.train(h, data: data, extra: ["--no-warm-engine"])
        #expect(warm.started["warm"] == true, "\(warm.started)")
        #expect(cold.started["warm"] == false, "\(cold.started)")
        #expect(warm.log.contains("warm engine ready: imports took"), "the job's log says its engine was warm")
        #expect(!cold.log.contains("warm engine ready"))
        #expect(warm.columns == cold.columns && warm.columns.contains("metrics/mAP50-95(B)"), "\(warm.columns) vs \(cold.columns)")
        #expect(warm.epochKeys == cold.epochKeys && warm.epochKeys.count == 2, "\(warm.epochKeys) vs \(cold.epochKeys)")
        // The warm engine's job began when it was handed over, after its imports.
        let handed = try #require(warm.started["process_start"]?.doubleValue)
        let trainStart = try #require(warm.started["time"]?.doubleValue)
        #expect(handed <= trainStart)
    }
}
}
