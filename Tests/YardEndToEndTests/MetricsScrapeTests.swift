import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import YardDomain
import YardServer
import YardTestSupport

extension EndToEnd {
/// Issue 29: after a real training, `/metrics` is read by Prometheus' own
/// parser (prometheus_client, in the test services' venv) and every family
/// of `MetricCatalog` is there, of its type, with bounded labels: no job id,
/// no raw path. A `yard server --redis` with a `yard worker --redis` (so
/// the worker's report outbox and spool come with its heartbeat); this
/// machine has no GPU, so the worker's PATH has a scripted `nvidia-smi`
/// printing the CSV a real one prints.
@Suite("Metrics scrape")
struct MetricsScrapeTests {
    struct Family: Decodable {
        var name: String
        var type: String
        var samples: [Sample]
        struct Sample: Decodable {
            var name: String
            var labels: [String: String]
            var value: Double?
        }
    }

    /// The scrape as prometheus_client's parser reads it.
    static func parse(_ text: String, in dir: TemporaryDirectory) throws -> [Family] {
        guard let services = ProcessInfo.processInfo.environment["YARD_SERVICES"] else { throw HarnessError("YARD_SERVICES is not set; run scripts/test.sh") }
        let file = try dir.write("scrape.txt", text)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: services + "/bin/python")
        process.arguments = ["-c", """
            import json, math, sys
            from prometheus_client.parser import text_string_to_metric_families
            families = [{"name": f.name, "type": f.type,
                         "samples": [{"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else None} for s in f.samples]}
                        for f in text_string_to_metric_families(open(sys.argv[1]).read())]
            print(json.dumps(families))
            """, file]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("prometheus_client could not parse the scrape: \(errors.suffix(1500))") }
        return try JSONDecoder().decode([Family].self, from: data)
    }

    static func scrape(_ yard: RunningYard) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: yard.base + "/metrics"), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else { throw HarnessError("/metrics: \(response.status)") }
        return String(buffer: body)
    }

    @Test func afterARealTrainingEveryFamilyIsThereWithBoundedLabels() async throws {
        let redis = try await RedisServer()
        let h = try YardHarness("metrics")
        defer { h.dir.remove() }
        let data = try h.demoDataset(train: 16, val: 4)
        let smi = try h.dir.write("bin/nvidia-smi", "#!/bin/sh\necho '0, GPU-5e1f, Scripted GPU, 16384, 2048, 37, 51'\n")
        chmod(smi, 0o755)
        let server = try await h.server(redis: redis.url, data: h.dir.file("server"), extra: ["--log-format", "json"])
        defer { server.process.terminate() }
        let key = try h.secretKey(of: h.dir.file("server"))
        let path = h.dir.file("bin") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let worker = try await h.spawn(["worker", "--redis", redis.url, "--data-dir", h.dir.file("w1"), "--lease", "10", "--python", h.python,
                                        "--log-format", "json"],
                                       environment: ["YARD_SECRET_KEY": key, "PATH": path], log: "w1", ready: "trainyard worker ")
        defer { worker.signal(SIGKILL) }

        // A follower of the event stream stays open through the scrape.
        let stream = try await HTTPClient.shared.execute(HTTPClientRequest(url: server.base + "/api/events"), timeout: .seconds(600))
        #expect(stream.status == .ok)

        let id = try await server.submit(DistributedTests.config(data: data, epochs: 2))
        try await server.waitForState(id, "succeeded")
        // A request that matches no route, with an id-like path: it must not become a label.
        _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: server.base + "/no-such/\(id)"), timeout: .seconds(30))

        var families: [Family] = []
        try await eventually("the worker's heartbeat with its GPU and backlog in /metrics", timeout: .seconds(30), every: .milliseconds(500)) {
            families = try Self.parse(try await Self.scrape(server), in: h.dir)
            return families.contains { $0.name == "trainyard_worker_gpu_utilization_ratio" && !$0.samples.isEmpty }
                && families.contains { $0.name == "trainyard_report_outbox_reports" && !$0.samples.isEmpty }
                && Self.sampleValue(families, "trainyard_workers", ["status": "idle"]) == 1
        }
        let byName = Dictionary(families.map { ($0.type == "counter" ? $0.name + "_total" : $0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for family in MetricCatalog.families {
            let parsed = try #require(byName[family.name], "\(family.name) missing from /metrics")
            #expect(parsed.type == family.kind.rawValue, "\(family.name): \(parsed.type)")
            #expect(!parsed.samples.isEmpty, "\(family.name) has no sample")
            for sample in parsed.samples {
                #expect(Set(sample.labels.keys).subtracting(["le"]) == Set(family.labels), "\(family.name): labels \(sample.labels.keys.sorted())")
            }
        }
        // Bounded labels: no job id anywhere; the only slashes are route templates.
        let routes = Set(["unmatched", "/api/jobs", "/api/jobs/{id}", "/api/events", "/metrics", "/health"])
        for family in families {
            for sample in family.samples {
                for (label, value) in sample.labels {
                    #expect(!value.contains(id), "\(sample.name){\(label)=\(value)} carries the job id")
                    #expect(!value.contains("no-such"), "\(sample.name){\(label)=\(value)} carries a raw path")
                    if label == "route" { #expect(routes.contains(value) || value.hasPrefix("/"), "\(value)") }
                }
            }
        }
        #expect(Self.sampleValue(families, "trainyard_jobs_finished_total", ["outcome": "succeeded"]) == 1)
        #expect(Self.sampleValue(families, "trainyard_epoch_duration_seconds_count") == 2)
        #expect(Self.sampleValue(families, "trainyard_job_first_epoch_seconds_count") == 1)
        #expect(Self.sampleValue(families, "trainyard_job_duration_seconds_count", ["outcome": "succeeded"]) == 1)
        #expect(Self.sampleValue(families, "trainyard_jobs", ["state": "succeeded"]) == 1)
        #expect(Self.sampleValue(families, "trainyard_workers", ["status": "idle"]) == 1)
        #expect(Self.sampleValue(families, "trainyard_worker_gpu_utilization_ratio", ["gpu": "0"]) == 0.37)
        #expect(Self.sampleValue(families, "trainyard_worker_gpu_memory_used_bytes", ["gpu": "0"]) == Double(2048 * 1_048_576))
        #expect(Self.sampleValue(families, "trainyard_report_outbox_reports") == 0, "the worker's reports all reached Redis")
        #expect(Self.sampleValue(families, "trainyard_sse_clients", ["route": "/api/events"]) == 1)
        #expect((Self.sampleValue(families, "trainyard_http_requests_total", ["route": "/api/jobs/{id}", "method": "GET", "status": "200"]) ?? 0) >= 1)
        #expect(Self.sampleValue(families, "trainyard_http_requests_total", ["route": "unmatched", "status": "404"]) == 1)
        withExtendedLifetime(stream) {}

        // Both ran with --log-format json: every line of their logs is one
        // object with time, level, label and message; the worker's lines
        // about the job carry its id and the worker's.
        let workerLines = worker.text.split(separator: "\n")
        let serverLines = ((try? String(contentsOfFile: server.log, encoding: .utf8)) ?? "").split(separator: "\n")
        for line in workerLines + serverLines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            #expect(object.map { ["time", "level", "label", "message"].allSatisfy($0.keys.contains) } == true, "not a JSON log line: \(line.prefix(300))")
        }
        let aboutJob = workerLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }.filter { $0["job_id"] == id }
        #expect(aboutJob.contains { $0["message"]?.contains("attempt 1 starts") == true && $0["worker"]?.hasSuffix("-\(worker.pid)") == true },
                "\(workerLines.suffix(20))")
        #expect(aboutJob.contains { $0["message"]?.contains("attempt 1 ended") == true })
    }

    /// The value of the first sample named `name` with `labels` (among others).
    static func sampleValue(_ families: [Family], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        families.flatMap(\.samples).first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
    }
}
}
