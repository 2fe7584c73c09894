import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import YardDomain
import YardServer
import YardTestSupport

/// Issue 29: OpenTelemetry traces of a job's run (submit → claim → engine
/// start → first epoch → end) and of predict requests, sent as OTLP/HTTP
/// JSON to a real HTTP collector on 127.0.0.1 (the test receiver), checked
/// against opentelemetry-proto's own message types; off and costless
/// without `OTEL_EXPORTER_OTLP_ENDPOINT`.
@Suite("Traces", .serialized)
struct TracingTests {
    @Test func theSettingsFollowOpenTelemetrysVariables() throws {
        #expect(try TraceSettings.fromEnvironment([:]) == nil)
        #expect(try TraceSettings.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "  "]) == nil)
        let base = try #require(try TraceSettings.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"]))
        #expect(base.endpoint.absoluteString == "http://collector:4318/v1/traces")
        #expect(base.serviceName == "trainyard")
        let traces = try #require(try TraceSettings.fromEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo.example/otlp/v1/traces",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret, x-scope-orgid=team-a", "OTEL_SERVICE_NAME": "yard-gpu",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        ]))
        #expect(traces.endpoint.absoluteString == "https://tempo.example/otlp/v1/traces")
        #expect(traces.headers == ["authorization": "Bearer s3cret", "x-scope-orgid": "team-a"])
        #expect(traces.serviceName == "yard-gpu")
        #expect(try TraceSettings.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"]) == nil)
        #expect(try TraceSettings.fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"]) == nil)
    }

    @Test func aBadSettingIsOneLineNamingTheVariableAndNeverAHeaderValue() throws {
        func message(_ environment: [String: String]) -> String {
            do { _ = try TraceSettings.fromEnvironment(environment); return "accepted" } catch { return error.message }
        }
        let grpc = message(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])
        #expect(grpc.hasPrefix("OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\""), "\(grpc)")
        #expect(grpc.contains("http/json"))
        let url = message(["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"])
        #expect(url.hasPrefix("OTEL_EXPORTER_OTLP_ENDPOINT: "), "\(url)")
        let header = message(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer top-secret,oops"])
        #expect(header.hasPrefix("OTEL_EXPORTER_OTLP_HEADERS: "), "\(header)")
        #expect(!header.contains("top-secret"))
        let injected = message(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "x=a%0D%0AHost: evil"])
        #expect(injected.hasPrefix("OTEL_EXPORTER_OTLP_HEADERS: "), "a header value with a line break is refused: \(injected)")
        for text in [grpc, url, header, injected] { #expect(!text.contains("\n")) }
    }

    @Test func aTraceparentIsContinuedOnlyWhenWellFormed() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736", span = "00f067aa0ba902b7"
        #expect(TraceSpan.parent(fromTraceparent: "00-\(trace)-\(span)-01")! == (trace, span))
        #expect(TraceSpan.parent(fromTraceparent: "00-\(trace.uppercased())-\(span)-00")! == (trace, span))
        for bad in [nil, "", "00-\(trace)-\(span)", "00-\(String(repeating: "0", count: 32))-\(span)-01", "00-\(trace)-0000000000000000-01",
                    "ff-\(trace)-\(span)-01", "00-\(trace.dropLast())g-\(span)-01", "00-\(trace)x-\(span)-01"] {
            #expect(TraceSpan.parent(fromTraceparent: bad) == nil, "\(bad ?? "nil")")
        }
        #expect(TraceSpan.randomTraceID().count == 32)
        #expect(TraceSpan.randomSpanID().count == 16)
    }

    /// A crash requeues the job: two attempts, the first marked failed with
    /// the reason; a run that failed carries its message on the root span.
    @Test func eachAttemptIsASpanAndAFailureCarriesItsReason() throws {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }
        func state(_ id: Int64, _ state: String, _ seconds: Double, _ message: String? = nil) -> JobEvent {
            var payload: [String: JSONValue] = ["state": .string(state)]
            if let message { payload["message"] = .string(message) }
            return JobEvent(id: id, jobID: "j1", type: "state", payload: .object(payload), time: at(seconds))
        }
        let events = [
            state(1, "queued", 0),
            state(2, "running", 2),
            JobEvent(id: 3, jobID: "j1", type: "started", payload: ["device": "cuda:0", "host": "gpu-1"], time: at(5)),
            state(4, "queued", 9, "worker gpu-1 lost; queued again"),
            state(5, "running", 12),
            JobEvent(id: 6, jobID: "j1", type: "started", payload: ["device": "cuda:1", "host": "gpu-2"], time: at(14)),
            JobEvent(id: 7, jobID: "j1", type: "epoch", payload: ["epoch": 1], time: at(20)),
            JobEvent(id: 8, jobID: "j1", type: "epoch", payload: ["epoch": 2], time: at(26)),
            state(9, "failed", 30, "CUDA out of memory with batch 16 and 8"),
        ]
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.pt\ntrain: {data: /d/data.yaml, epochs: 3}\n")
        var job = Job(id: "j1", config: config, redacted: [:], createdAt: t0)
        job.state = .failed
        job.attempts = 2
        let spans = JobTraces.spans(job: job, events: events)
        let byName = Dictionary(spans.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(spans.map(\.name) == ["job j1", "queued", "attempt 1", "engine start", "first epoch", "attempt 2", "engine start", "first epoch", "training"])
        let root = try #require(byName["job j1"])
        #expect(root.parentID == nil && root.start == t0 && root.end == at(30))
        #expect(root.error == "CUDA out of memory with batch 16 and 8")
        #expect(Set(spans.map(\.traceID)) == [root.traceID])
        #expect(Set(spans.map(\.spanID)).count == spans.count, "ids are unique")
        let first = try #require(byName["attempt 1"]), second = spans[5]
        #expect(first.start == at(2) && first.end == at(9) && first.error == "worker gpu-1 lost; queued again")
        #expect(first.attributes["trainyard.host"] == "gpu-1")
        #expect(second.start == at(12) && second.end == at(30) && second.attributes["trainyard.device"] == "cuda:1")
        #expect(byName["queued"]?.end == at(2))
        #expect(spans[3].parentID == first.spanID && spans[3].end == at(5))
        #expect(spans[4].end == at(9), "attempt 1 never reached an epoch: its first epoch span ends with it")
        #expect(spans[7].start == at(14) && spans[7].end == at(20))
        #expect(spans[8].start == at(20) && spans[8].end == at(30) && spans[8].attributes["trainyard.epochs.recorded"] == 2)
        // The same events give the same ids (a follower reading them again).
        #expect(JobTraces.spans(job: job, events: events).map(\.spanID) == spans.map(\.spanID))
    }

    @Test func aJobRunIsOneTraceFromSubmitToEndOnARealCollector() async throws {
        let collector = try await Receiver.start()
        defer { Task { await collector.stop() } }
        var settings = TraceSettings(endpoint: URL(string: collector.url)!, headers: ["authorization": "Bearer collector-token"])
        settings.interval = .milliseconds(50)
        let t = try TestYard(sqlite: true, tracing: settings)
        defer { t.dir.remove() }
        let exporter = try #require(t.yard.traces)
        let services = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await exporter.run() }
                group.addTask { try await JobTraces(store: t.yard.store, exporter: exporter, logger: TestYard.quiet).run() }
                try await group.waitForAll()
            }
        }
        defer { services.cancel() }
        try await Task.sleep(for: .milliseconds(100))  // the follower subscribed
        _ = try await t.yard.control.submit(try JobConfigParser { _ in true }.parse(t.config("task_id: tr1", epochs: 3)))
        try await t.worker(ScriptedEngineRunner.training(epochs: 3)).drain()
        try await eventually("the trace sent") { Self.spans(collector.all).count >= 6 }
        let spans = Self.spans(collector.all)
        let names = spans.compactMap { $0["name"] as? String }
        #expect(names == ["job tr1", "queued", "attempt 1", "engine start", "first epoch", "training"], "\(names)")
        let root = spans[0]
        let rootID = root["spanId"] as? String
        #expect(root["parentSpanId"] == nil)
        #expect(spans.dropFirst().allSatisfy { $0["traceId"] as? String == root["traceId"] as? String })
        #expect(spans[1]["parentSpanId"] as? String == rootID && spans[2]["parentSpanId"] as? String == rootID)
        #expect(spans[3...].allSatisfy { $0["parentSpanId"] as? String == spans[2]["spanId"] as? String })
        let job = try await t.yard.store.require("tr1")
        #expect(abs(Double(Self.nanos(root["startTimeUnixNano"])) / 1e9 - job.createdAt.timeIntervalSince1970) < 0.05)
        #expect(abs(Double(Self.nanos(root["endTimeUnixNano"])) / 1e9 - (job.finishedAt ?? .distantPast).timeIntervalSince1970) < 0.05)
        let attributes = Self.attributes(root)
        #expect(attributes["trainyard.job.id"] == "tr1" && attributes["trainyard.job.state"] == "succeeded")
        #expect(attributes["trainyard.epochs"] == "3")
        #expect((root["status"] as? [String: Any])?["code"] as? Int == 1)
        // The collector's own header went with each export; the resource names the service.
        #expect(collector.all.allSatisfy { $0.headers["authorization"] == "Bearer collector-token" && $0.headers["content-type"] == "application/json" })
        let resource = try #require(((collector.all[0].json?["resourceSpans"] as? [[String: Any]])?.first?["resource"]) as? [String: Any])
        #expect(Self.attributes(resource)["service.name"] == "trainyard")
        try Self.checkWithOpenTelemetryProto(collector.all.map(\.body), spans: spans.count)
    }

    @Test func aPredictRequestIsAServerSpanContinuingTheCallersTrace() async throws {
        let collector = try await Receiver.start()
        defer { Task { await collector.stop() } }
        let t = try TestYard(tracing: TraceSettings(endpoint: URL(string: collector.url)!))
        defer { t.dir.remove() }
        let caller = "4bf92f3577b34da6a3ce929d0e0e4736", parent = "00f067aa0ba902b7"
        try await t.test { client in
            try await client.execute(uri: "/api/predict/no-such-model", method: .post,
                                     headers: [.init("traceparent")!: "00-\(caller)-\(parent)-01", .contentType: "image/png"],
                                     body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .notFound)
            }
        }
        let exporter = try #require(t.yard.traces)
        await exporter.flush()
        let spans = Self.spans(collector.all)
        let span = try #require(spans.first, "one span sent")
        #expect(spans.count == 1)
        try await t.test { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                let samples = try Sample.parse(String(buffer: response.body))
                #expect(samples.value("trainyard_trace_spans_total", ["outcome": "exported"]) == 1, "/metrics counts the span sent")
                #expect(samples.value("trainyard_trace_spans_total", ["outcome": "dropped"]) == 0)
            }
        }
        #expect(span["name"] as? String == "POST /api/predict/{name}" && span["kind"] as? Int == 2)
        #expect(span["traceId"] as? String == caller && span["parentSpanId"] as? String == parent)
        let attributes = Self.attributes(span)
        #expect(attributes["http.response.status_code"] == "404")
        #expect(attributes["trainyard.model"] == "_unknown", "labels are the registry's names, never the raw path")
        #expect((span["status"] as? [String: Any])?["code"] as? Int == 1, "a 4xx is the caller's error, not the server's")
        try Self.checkWithOpenTelemetryProto(collector.all.map(\.body), spans: 1)
    }

    /// A collector that accepts and never answers: each export gives up at
    /// its deadline, the spans are dropped and counted, nothing waits longer.
    @Test func aCollectorThatHangsCostsDroppedSpansNotAWait() async throws {
        let collector = try await Receiver.start(.hold)
        defer { Task { await collector.stop() } }
        var settings = TraceSettings(endpoint: URL(string: collector.url)!)
        settings.timeout = .milliseconds(300)
        let exporter = TraceExporter(settings: settings, logger: TestYard.quiet)
        let now = Date()
        exporter.record((0..<10).map { TraceSpan(traceID: TraceSpan.randomTraceID(), spanID: TraceSpan.randomSpanID(), name: "s\($0)", start: now, end: now) })
        let clock = ContinuousClock()
        let took = await clock.measure { await exporter.flush() }
        #expect(took < .seconds(3), "\(took)")
        #expect(exporter.counts.dropped == 10 && exporter.counts.exported == 0)
        // A full buffer drops its oldest, never grows past its capacity.
        var small = settings
        small.capacity = 5
        let bounded = TraceExporter(settings: small, logger: TestYard.quiet)
        bounded.record((0..<12).map { TraceSpan(traceID: TraceSpan.randomTraceID(), spanID: TraceSpan.randomSpanID(), name: "s\($0)", start: now, end: now) })
        #expect(bounded.counts.dropped == 7)
    }

    @Test func withoutAnEndpointNothingIsTraced() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        #expect(t.yard.traces == nil)
        let names = t.yard.services(app: t.yard.buildApplication(logger: TestYard.quiet), logger: TestYard.quiet).map { "\(type(of: $0.service))" }
        #expect(!names.contains { $0.contains("JobTraces") || $0.contains("TraceExporter") }, "\(names)")
        try await t.test { client in
            try await client.execute(uri: "/api/predict/no-such-model", method: .post, headers: [.contentType: "image/png"], body: ByteBuffer(string: "x")) { response in
                #expect(response.headers[.init("X-Trace-Id")!] == nil)
            }
        }
    }

    // MARK: - Reading what the collector got

    static func spans(_ deliveries: [Receiver.Delivery]) -> [[String: Any]] {
        deliveries.flatMap { delivery -> [[String: Any]] in
            let resources = delivery.json?["resourceSpans"] as? [[String: Any]] ?? []
            return resources.flatMap { ($0["scopeSpans"] as? [[String: Any]] ?? []).flatMap { $0["spans"] as? [[String: Any]] ?? [] } }
        }
    }

    /// Attribute values as text (OTLP's int64 is a decimal string already).
    static func attributes(_ node: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for attribute in node["attributes"] as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = (attribute["value"] as? [String: Any])?.values.first else { continue }
            out[key] = "\(value)"
        }
        return out
    }

    static func nanos(_ value: Any?) -> UInt64 { (value as? String).flatMap { UInt64($0) } ?? 0 }

    /// Each body parsed by opentelemetry-proto's own `ExportTraceServiceRequest`
    /// (protobuf's JSON mapping, unknown fields refused) in the test services' venv.
    static func checkWithOpenTelemetryProto(_ bodies: [Data], spans expected: Int) throws {
        let services = try #require(ProcessInfo.processInfo.environment["YARD_SERVICES"], "YARD_SERVICES is not set; run scripts/test.sh")
        let dir = try TemporaryDirectory("otlp")
        defer { dir.remove() }
        for (index, body) in bodies.enumerated() { try body.write(to: URL(fileURLWithPath: dir.file("\(index).json"))) }
        let script = """
            import base64, glob, json, sys
            from google.protobuf import json_format
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
            count = 0
            for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
                # OTLP/JSON writes ids as hex, not protobuf JSON's base64: the collector's own reader turns them back.
                document = json.load(open(path))
                for resource in document["resourceSpans"]:
                    for scope in resource["scopeSpans"]:
                        for span in scope["spans"]:
                            for key, size in (("traceId", 32), ("spanId", 16), ("parentSpanId", 16)):
                                if key in span:
                                    assert len(span[key]) == size and int(span[key], 16) >= 0, span[key]
                                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                request = json_format.ParseDict(document, ExportTraceServiceRequest())
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            assert len(span.trace_id) == 16 and len(span.span_id) == 8, span
                            assert span.end_time_unix_nano >= span.start_time_unix_nano > 0, span
                            count += 1
            print(count)
            """
        let (status, text) = try runTool(services + "/bin/python", ["-c", script, dir.path])
        #expect(status == 0, "\(text.suffix(2000))")
        #expect(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) == expected, "\(text)")
    }
}
