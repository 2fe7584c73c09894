import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import YardDomain
import YardQueue
import YardServer
import YardStore
import YardTestSupport
import YardTracker

/// One sample of a scrape: its series name, labels and value.
struct Sample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double

    /// The samples of a Prometheus text scrape (comments skipped). Label
    /// values with `\"`, `\\` and `\n` escapes are read back.
    static func parse(_ text: String) throws -> [Sample] {
        try text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map { line in
            var name = "", labels: [String: String] = [:]
            var rest = Substring(line)
            if let brace = rest.firstIndex(of: "{") {
                name = String(rest[..<brace])
                rest = rest[rest.index(after: brace)...]
                while !rest.hasPrefix("}") {
                    guard let equals = rest.firstIndex(of: "=") else { throw Malformed(line: String(line)) }
                    let key = String(rest[..<equals])
                    rest = rest[rest.index(equals, offsetBy: 2)...]
                    var value = ""
                    while let c = rest.first, c != "\"" {
                        rest = rest.dropFirst()
                        if c == "\\", let escaped = rest.first {
                            rest = rest.dropFirst()
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(c)
                        }
                    }
                    rest = rest.dropFirst()
                    if rest.hasPrefix(",") { rest = rest.dropFirst() }
                    labels[key] = value
                }
                rest = rest.dropFirst()
            } else {
                let parts = rest.split(separator: " ", maxSplits: 1)
                name = String(parts[0])
                rest = parts.count > 1 ? parts[1] : ""
            }
            guard let value = Double(rest.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? "") else {
                throw Malformed(line: String(line))
            }
            return Sample(name: name, labels: labels, value: value)
        }
    }

    struct Malformed: Error { var line: String }
}

extension [Sample] {
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
    }
    func named(_ name: String) -> [Sample] { filter { $0.name == name } }
}

@Suite("Metrics")
struct MetricsTests {
    // MARK: The catalog

    /// Every family: a valid Prometheus name under `trainyard_`, a counter
    /// ending `_total`, unit suffixes on histograms, buckets ascending, label
    /// names valid and none that would carry an unbounded value.
    @Test func theCatalogNamesAreValidPrefixedAndBounded() {
        let names = MetricCatalog.families.map(\.name)
        #expect(Set(names).count == names.count, "a name is used twice")
        let valid = /^[a-zA-Z_][a-zA-Z0-9_]*$/
        for family in MetricCatalog.families {
            #expect(family.name.hasPrefix("trainyard_"), "\(family.name)")
            #expect(family.name.wholeMatch(of: valid) != nil, "\(family.name)")
            #expect((family.kind == .counter) == family.name.hasSuffix("_total"), "\(family.name): only counters end in _total")
            if family.kind == .histogram {
                #expect(family.name.hasSuffix("_seconds"), "\(family.name)")
                #expect(!family.buckets.isEmpty && family.buckets == family.buckets.sorted() && Set(family.buckets).count == family.buckets.count)
            }
            for label in family.labels {
                #expect(label.wholeMatch(of: valid) != nil && !label.hasPrefix("__"), "\(family.name): \(label)")
                #expect(!["id", "job", "job_id", "path", "url", "uri", "message", "le"].contains(label), "\(family.name): \(label) is unbounded or reserved")
            }
            #expect(!family.help.isEmpty)
        }
        #expect(MetricCatalog.exported.isSuperset(of: names))
    }

    // MARK: HTTP

    /// Requests are counted by the router's template, never the raw path: a
    /// job id and an unknown path appear nowhere; a path that matched no
    /// route is `unmatched`, a made-up method `OTHER`; an error a handler
    /// throws is counted with the status it became.
    @Test func requestsAreCountedByRouteTemplateMethodAndStatus() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.live { port in
            for _ in 0..<3 { _ = try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs/secret-job-4711") }
            #expect(try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs").status == 200)
            #expect(try await RawHTTP.send(port: port, method: "GET", target: "/no/such/place-93").status == 404)
            _ = try await RawHTTP.send(port: port, method: "PROPFIND", target: "/api/jobs")
            let scrape = try await RawHTTP.send(port: port, method: "GET", target: "/metrics")
            #expect(scrape.status == 200)
            for secret in ["secret-job-4711", "place-93", "PROPFIND", "/no/such"] { #expect(!scrape.body.contains(secret), "\(secret) leaked into a label") }
            let samples = try Sample.parse(scrape.body)
            let requests = "trainyard_http_requests_total"
            #expect(samples.value(requests, ["route": "/api/jobs/{id}", "method": "GET", "status": "404"]) == 3)
            #expect(samples.value(requests, ["route": "/api/jobs", "method": "GET", "status": "200"]) == 1)
            #expect(samples.value(requests, ["route": "unmatched", "method": "GET", "status": "404"]) == 1)
            #expect(samples.named(requests).contains { $0.labels["method"] == "OTHER" })
            #expect(samples.value("trainyard_http_request_duration_seconds_count", ["route": "/api/jobs/{id}", "method": "GET"]) == 3)
            let routes = Set(samples.named(requests).compactMap { $0.labels["route"] })
            #expect(routes.allSatisfy { $0 == "unmatched" || $0.hasPrefix("/") && !$0.contains("4711") }, "\(routes)")
        }
    }

    /// With a token, a refused request is counted too (401), under its route.
    @Test func refusedRequestsAreCounted() async throws {
        let t = try TestYard(token: "tok")
        defer { t.dir.remove() }
        try await t.live { port in
            #expect(try await RawHTTP.send(port: port, method: "GET", target: "/api/jobs/x").status == 401)
            let scrape = try await RawHTTP.send(port: port, method: "GET", target: "/metrics", headers: ["Authorization": "Bearer tok"])
            let samples = try Sample.parse(scrape.body)
            #expect(samples.value("trainyard_http_requests_total", ["route": "/api/jobs/{id}", "status": "401"]) == 1)
        }
    }

    /// An SSE stream counts while it is open, and no more once it ends.
    @Test func openEventStreamsAreCounted() async throws {
        let t = try TestYard()
        defer { t.dir.remove() }
        try await t.live { port in
            let stream = Task { try await RawHTTP.send(port: port, method: "GET", target: "/api/events", timeout: 30) }
            try await eventually("the stream counted") {
                let samples = try Sample.parse(try await RawHTTP.send(port: port, method: "GET", target: "/metrics").body)
                return samples.value("trainyard_sse_clients", ["route": "/api/events"]) == 1
            }
            stream.cancel()
            // The follow=false read ends by itself: it counts while it runs, then not.
            _ = try await RawHTTP.send(port: port, method: "GET", target: "/api/events?follow=false")
            let samples = try Sample.parse(try await RawHTTP.send(port: port, method: "GET", target: "/metrics").body)
            #expect(samples.value("trainyard_sse_clients", ["route": "/api/events"]) == 1, "the follow=false stream ended; the open one remains")
        }
    }

    // MARK: Scrape-time gauges

    static func worker(_ id: String, _ status: WorkerInfo.Status, gpus: [GPUStats] = [], backlog: WorkerBacklog? = nil, now: Date) -> WorkerInfo {
        var info = WorkerInfo(id: id, host: "h", pid: 1, device: "cuda:0", startedAt: now)
        info.status = status
        info.heartbeatAt = now
        info.expiresAt = status == .lost ? now.addingTimeInterval(-1) : now.addingTimeInterval(30)
        info.gpus = gpus
        info.backlog = backlog
        return info
    }

    /// Jobs by state and experiment (past 100 experiments, the smallest are
    /// `_other`), the queue's depth and oldest wait, workers by status, their
    /// GPUs and backlogs; a worker that left takes its series with it.
    @Test func scrapeGaugesAreComputedFromTheSnapshotAndBounded() throws {
        let metrics = YardMetrics()
        let now = Date(timeIntervalSince1970: 10_000)
        var counts: [JobGauges.Key: Int] = [.init(state: .running, experiment: "big"): 500]
        for n in 0..<150 { counts[.init(state: .succeeded, experiment: "exp-\(n)"), default: 0] += 1 }
        let jobs = JobGauges(counts: counts, queuedSince: [now.addingTimeInterval(-7200), now.addingTimeInterval(-5)])
        let gpu = GPUStats(index: 0, name: "H100", memoryTotalMiB: 80_000, memoryUsedMiB: 40_000, utilizationPercent: 87)
        let workers = [Self.worker("w1", .busy, gpus: [gpu], backlog: WorkerBacklog(reports: 7, spoolOperations: 12, spoolOldestSeconds: 90), now: now),
                       Self.worker("w2", .idle, now: now), Self.worker("w3", .lost, gpus: [gpu], now: now)]
        let first = try Sample.parse(metrics.scrape(.init(jobs: jobs, workers: workers, spool: .init(operations: 3, oldest: now.addingTimeInterval(-60)), now: now)))
        let experiments = Set(first.named("trainyard_jobs").compactMap { $0.labels["experiment"] })
        #expect(experiments.count == 101 && experiments.contains("_other") && experiments.contains("big"))
        #expect(first.named("trainyard_jobs").reduce(0) { $0 + $1.value } == 650, "nothing lost to the cap")
        #expect(first.value("trainyard_queue_depth") == 2)
        #expect(first.value("trainyard_queue_oldest_wait_seconds") == 7200)
        #expect(first.value("trainyard_workers", ["status": "busy"]) == 1 && first.value("trainyard_workers", ["status": "idle"]) == 1
            && first.value("trainyard_workers", ["status": "lost"]) == 1)
        #expect(first.value("trainyard_worker_gpu_utilization_ratio", ["worker": "w1", "gpu": "0"]) == 0.87)
        #expect(first.value("trainyard_worker_gpu_memory_used_bytes", ["worker": "w1", "gpu": "0"]) == Double(40_000 * 1_048_576))
        #expect(first.value("trainyard_worker_gpu_memory_total_bytes", ["worker": "w1"]) == Double(80_000 * 1_048_576))
        #expect(first.value("trainyard_worker_gpu_utilization_ratio", ["worker": "w3"]) == nil, "a lost worker's readings are stale")
        #expect(first.value("trainyard_report_outbox_reports", ["worker": "w1"]) == 7)
        #expect(first.value("trainyard_tracking_spool_operations", ["process": "server"]) == 3)
        #expect(first.value("trainyard_tracking_spool_oldest_seconds", ["process": "server"]) == 60)
        #expect(first.value("trainyard_tracking_spool_operations", ["process": "w1"]) == 12)
        #expect(first.value("trainyard_tracking_spool_oldest_seconds", ["process": "w1"]) == 90)

        // w1 leaves, the queue empties: its series go, the gauges read 0.
        let second = try Sample.parse(metrics.scrape(.init(jobs: JobGauges(), workers: [workers[1]], spool: .init(operations: 0, oldest: nil), now: now)))
        #expect(second.value("trainyard_worker_gpu_utilization_ratio", ["worker": "w1"]) == nil)
        #expect(second.value("trainyard_report_outbox_reports", ["worker": "w1"]) == nil)
        #expect(second.value("trainyard_tracking_spool_operations", ["process": "w1"]) == nil)
        #expect(second.value("trainyard_queue_depth") == 0 && second.value("trainyard_queue_oldest_wait_seconds") == 0)
        #expect(second.named("trainyard_jobs").isEmpty)
        #expect(second.value("trainyard_workers", ["status": "busy"]) == 0 && second.value("trainyard_workers", ["status": "idle"]) == 1)

        // A source that could not be read keeps its last values.
        let third = try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil, now: now)))
        #expect(third.value("trainyard_workers", ["status": "idle"]) == 1)
    }

    /// The trace exporter's totals become `trainyard_trace_spans_total` by
    /// outcome: 0 while tracing is off, then what it sent and dropped, never
    /// counted twice by the scrapes that follow.
    @Test func theTraceExportersSpansAreCountedByOutcome() throws {
        let metrics = YardMetrics()
        let off = try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil)))
        #expect(off.value("trainyard_trace_spans_total", ["outcome": "exported"]) == 0)
        #expect(off.value("trainyard_trace_spans_total", ["outcome": "dropped"]) == 0)
        _ = metrics.scrape(.init(jobs: nil, workers: nil, spool: nil, traces: .init(exported: 12, dropped: 3)))
        let again = try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil, traces: .init(exported: 12, dropped: 3))))
        #expect(again.value("trainyard_trace_spans_total", ["outcome": "exported"]) == 12, "the same totals scraped twice count once")
        #expect(again.value("trainyard_trace_spans_total", ["outcome": "dropped"]) == 3)
        let later = try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil, traces: .init(exported: 20, dropped: 3))))
        #expect(later.value("trainyard_trace_spans_total", ["outcome": "exported"]) == 20)
        #expect(later.value("trainyard_trace_spans_total", ["outcome": "dropped"]) == 3)
    }

    /// A worker id or experiment longer than 128 bytes is cut, so a label stays small.
    @Test func labelValuesFromOutsideAreCutAndEscaped() throws {
        let metrics = YardMetrics()
        let long = "x" + String(repeating: "é", count: 200)  // a cut at byte 128 falls inside a character
        let odd = "a\"b\nc\\d} e=\"f\""
        let text = metrics.scrape(.init(jobs: JobGauges(counts: [.init(state: .queued, experiment: long): 1, .init(state: .failed, experiment: odd): 2]),
                                        workers: nil, spool: nil))
        let samples = try Sample.parse(text).named("trainyard_jobs")
        let cut = try #require(samples.first { $0.labels["state"] == "queued" }?.labels["experiment"])
        #expect(cut.utf8.count <= 128 && cut.utf8.count >= 126 && long.hasPrefix(cut), "\(cut)")
        #expect(samples.first { $0.labels["state"] == "failed" }?.labels["experiment"] == odd, "escaped and read back whole")
    }

    // MARK: Following the event log

    /// Epochs and ends are counted from the log, as the store commits them;
    /// a first epoch once per job; a follower that lags reads what it missed
    /// from the store (a feed that holds one item at a time makes it lag).
    @Test(arguments: [1024, 1])
    func theTrainingMetricsFollowTheEventLog(bufferLimit: Int) async throws {
        let store: any JobStore = MemoryJobStore(feed: JobFeed(bufferLimit: bufferLimit))
        let metrics = YardMetrics()
        let config = try JobConfigParser { _ in true }.parse("model: yolov8n.yaml\ntask_id: j1\ntrain: {data: /d.yaml, epochs: 3}\n")
        var job = Job(id: "j1", config: config, redacted: Redaction.redact(config.json), createdAt: Date().addingTimeInterval(-30))
        job.startedAt = Date().addingTimeInterval(-20)
        try await store.insert(job, secrets: [:])
        // Committed before the follower starts: not counted.
        try await store.appendEvent(jobID: "j1", type: "epoch", payload: ["epoch": 9, "seconds": 1])
        let head = try await store.eventHead()
        let follower = Task { try await MetricsFollower(store: store, metrics: metrics, from: head, logger: TestYard.quiet).run() }
        defer { follower.cancel() }
        try await eventually("the follower subscribed") { store.feed.subscriberCount == 1 }
        // One commit: published back to back, so a one-item buffer drops all but the first.
        _ = try await store.apply([JobWrite(id: "j1") { _ in
            (1...3).map { JobRecord.event(type: "epoch", payload: ["epoch": .int($0), "epochs": 3, "seconds": 2.5]) }
                + [.event(type: "epoch", payload: ["epoch": 1, "seconds": 2.5])]  // restarted from scratch
                + (0..<50).map { JobRecord.event(type: "progress", payload: ["batch": .int($0)]) }
        }])
        try await store.update("j1", recording: "state") { job in
            job.state = .succeeded
            job.finishedAt = Date()
            return ["state": "succeeded"]
        }
        try await eventually("the end counted") {
            try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil))).value("trainyard_jobs_finished_total", ["outcome": "succeeded"]) == 1
        }
        let samples = try Sample.parse(metrics.scrape(.init(jobs: nil, workers: nil, spool: nil)))
        #expect(samples.value("trainyard_epoch_duration_seconds_count") == 4)
        #expect(samples.value("trainyard_epoch_duration_seconds_sum") == 10)
        #expect(samples.value("trainyard_epoch_duration_seconds_bucket", ["le": "2.5"]) == 4)
        #expect(samples.value("trainyard_job_first_epoch_seconds_count") == 1)
        #expect((samples.value("trainyard_job_first_epoch_seconds_sum") ?? 0) >= 29)
        #expect(samples.value("trainyard_job_duration_seconds_count", ["outcome": "succeeded"]) == 1)
        #expect((samples.value("trainyard_job_duration_seconds_sum", ["outcome": "succeeded"]) ?? 0) >= 19)
        #expect(samples.value("trainyard_jobs_finished_total", ["outcome": "failed"]) == 0)
        #expect(!samples.contains { $0.labels.values.contains("j1") }, "no job id in a label")
    }

    // MARK: The spool's backlog

    /// The spool counts what it holds as it spools, and a new process reads
    /// the count back from the files; MLflow down, nothing is sent.
    @Test func theSpoolCountsItsBacklogAndReadsItBackAfterARestart() async throws {
        let dir = try TemporaryDirectory("spool-backlog")
        defer { dir.remove() }
        let spool = TrackingSpool(directory: dir.path, logger: TestYard.quiet)
        #expect(await spool.backlog() == .init(operations: 0, oldest: nil))
        let before = Date()
        try await spool.append(jobID: "a", ops: [["op": "start", "tracking_uri": "http://127.0.0.1:9", "experiment": "e"], ["op": "metrics", "step": 1, "values": ["x": 1]]])
        try await spool.append(jobID: "b", ["op": "start", "tracking_uri": "http://127.0.0.1:9", "experiment": "e"])
        let backlog = await spool.backlog()
        #expect(backlog.operations == 3 && (backlog.oldest ?? .distantPast) >= before.addingTimeInterval(-1))
        _ = await spool.replayAll()  // MLflow unreachable: nothing sent
        #expect(await spool.backlog().operations == 3)
        let restarted = TrackingSpool(directory: dir.path, logger: TestYard.quiet)
        #expect(await restarted.backlog().operations == 3)
    }
}
