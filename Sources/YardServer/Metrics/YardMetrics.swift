import Foundation
import Metrics
import Prometheus
import Synchronization
import YardDomain
import YardQueue
import YardStore
import YardTracker

/// The server's metrics: a Prometheus registry of its own (each `Yard` has
/// one, so tests never share a global), written through swift-metrics'
/// types with `factory` passed explicitly. `yard up` also bootstraps the
/// process-wide `MetricsSystem` with it once (`Yard.bootstrapMetrics()`),
/// so a library that records through the global system lands here too.
/// Names, help and buckets come from `MetricCatalog`.
public final class YardMetrics: Sendable {
    /// Experiments beyond this many (the largest kept) are counted as `_other`.
    public static let maxExperiments = 100
    /// The route label of a request that matched no route.
    public static let unmatchedRoute = "unmatched"
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    public let registry: PrometheusCollectorRegistry
    public let factory: any MetricsFactory

    /// An HTTP series' handles, made once per route, method and status.
    struct HTTPKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }
    struct HTTPSeries: Sendable {
        let requests: CoreMetrics.Counter
        let latency: CoreMetrics.Timer
    }
    private let http = Mutex<[HTTPKey: HTTPSeries]>([:])
    private let sse = Mutex<[String: Meter]>([:])
    /// The label values each scrape-time family had at the last scrape (to
    /// remove the series of a worker that left); scrapes apply one at a time.
    private let published = Mutex<[String: Set<[String]>]>([:])
    private let outcomes: [JobState: CoreMetrics.Counter]
    private let durations: [JobState: CoreMetrics.Timer]
    private let epochs: CoreMetrics.Timer
    private let firstEpochs: CoreMetrics.Timer
    /// `trainyard_trace_spans_total` by outcome, and the exporter's counts
    /// they were last advanced to (the exporter keeps its own totals).
    private let traceSpans: (exported: CoreMetrics.Counter, dropped: CoreMetrics.Counter)
    private let tracesCounted = Mutex(TraceExporter.Counts())

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = CatalogMetricsFactory(registry: registry)
        self.factory = factory
        let ends = JobState.allCases.filter(\.isTerminal)
        outcomes = Dictionary(uniqueKeysWithValues: ends.map {
            ($0, CoreMetrics.Counter(label: MetricCatalog.jobsFinished.name, dimensions: [("outcome", $0.rawValue)], factory: factory))
        })
        durations = Dictionary(uniqueKeysWithValues: ends.map {
            ($0, CoreMetrics.Timer(label: MetricCatalog.jobDuration.name, dimensions: [("outcome", $0.rawValue)], factory: factory))
        })
        epochs = CoreMetrics.Timer(label: MetricCatalog.epochDuration.name, factory: factory)
        firstEpochs = CoreMetrics.Timer(label: MetricCatalog.firstEpoch.name, factory: factory)
        traceSpans = (CoreMetrics.Counter(label: MetricCatalog.traceSpans.name, dimensions: [("outcome", "exported")], factory: factory),
                      CoreMetrics.Counter(label: MetricCatalog.traceSpans.name, dimensions: [("outcome", "dropped")], factory: factory))
    }

    // MARK: HTTP

    /// The route label: the router's template, or `unmatched`.
    static func route(_ endpointPath: String?) -> String {
        guard let endpointPath, endpointPath != "NotFound", endpointPath.hasPrefix("/") else { return unmatchedRoute }
        return endpointPath
    }

    /// The method label: a standard method, or `OTHER`.
    static func method(_ method: String) -> String { methods.contains(method) ? method : "OTHER" }

    /// One answered request.
    public func request(route: String, method: String, status: Int, duration: Duration) {
        let key = HTTPKey(route: route, method: Self.method(method), status: (100...599).contains(status) ? status : 500)
        let series = http.withLock { cache in
            if let series = cache[key] { return series }
            let series = HTTPSeries(
                requests: CoreMetrics.Counter(label: MetricCatalog.httpRequests.name,
                                              dimensions: [("route", key.route), ("method", key.method), ("status", String(key.status))], factory: factory),
                latency: CoreMetrics.Timer(label: MetricCatalog.httpDuration.name, dimensions: [("route", key.route), ("method", key.method)], factory: factory))
            cache[key] = series
            return series
        }
        series.requests.increment()
        series.latency.recordNanoseconds(Self.nanoseconds(duration))
    }

    /// The open-streams gauge of a route.
    func streams(route: String) -> Meter {
        sse.withLock { cache in
            if let meter = cache[route] { return meter }
            let meter = Meter(label: MetricCatalog.sseClients.name, dimensions: [("route", route)], factory: factory)
            cache[route] = meter
            return meter
        }
    }

    // MARK: What the event log says

    /// An epoch ended after `seconds`.
    public func epochEnded(seconds: Double) {
        guard seconds.isFinite, seconds >= 0 else { return }
        epochs.recordNanoseconds(Self.nanoseconds(seconds))
    }

    /// A job's first epoch ended `seconds` after it was submitted.
    public func firstEpoch(afterSubmit seconds: Double) {
        guard seconds.isFinite, seconds >= 0 else { return }
        firstEpochs.recordNanoseconds(Self.nanoseconds(seconds))
    }

    /// A job ended; `seconds` from its first start (nil: it never started).
    public func jobEnded(_ outcome: JobState, seconds: Double?) {
        outcomes[outcome]?.increment()
        if let seconds, seconds.isFinite, seconds >= 0 { durations[outcome]?.recordNanoseconds(Self.nanoseconds(seconds)) }
    }

    static func nanoseconds(_ seconds: Double) -> Int64 { Int64(min(seconds, 1e9) * 1e9) }
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    // MARK: Scrape

    /// What the scrape-time gauges are computed from; a source that could
    /// not be read is nil and its families keep their last values.
    public struct Snapshot: Sendable {
        public var jobs: JobGauges?
        public var workers: [WorkerInfo]?
        /// This server's spool (process `server`).
        public var spool: TrackingSpool.Backlog?
        /// The trace exporter's totals (nil: tracing is off).
        public var traces: TraceExporter.Counts?
        public var now: Date

        public init(jobs: JobGauges?, workers: [WorkerInfo]?, spool: TrackingSpool.Backlog?, traces: TraceExporter.Counts? = nil, now: Date = Date()) {
            self.jobs = jobs
            self.workers = workers
            self.spool = spool
            self.traces = traces
            self.now = now
        }
    }

    /// The gauges set from `snapshot`, then everything in Prometheus' text format.
    public func scrape(_ snapshot: Snapshot) -> String {
        published.withLock { published in
            if let jobs = snapshot.jobs { apply(Self.jobValues(jobs, now: snapshot.now), into: &published) }
            if let workers = snapshot.workers { apply(Self.workerValues(workers, now: snapshot.now), into: &published) }
            var spools: [[String]: Double] = [:], ages: [[String]: Double] = [:]
            if let spool = snapshot.spool {
                spools[["server"]] = Double(spool.operations)
                ages[["server"]] = spool.oldest.map { max(0, snapshot.now.timeIntervalSince($0)) } ?? 0
            }
            for worker in snapshot.workers ?? [] where worker.status != .lost {
                guard let backlog = worker.backlog, let operations = backlog.spoolOperations else { continue }
                spools[[worker.id]] = Double(operations)
                ages[[worker.id]] = backlog.spoolOldestSeconds ?? 0
            }
            if snapshot.spool != nil || snapshot.workers != nil {
                apply([MetricCatalog.spoolOperations: spools, MetricCatalog.spoolOldest: ages], into: &published)
            }
            if let traces = snapshot.traces {
                let before = tracesCounted.withLock { counted in
                    defer { counted = TraceExporter.Counts(exported: max(counted.exported, traces.exported), dropped: max(counted.dropped, traces.dropped)) }
                    return counted
                }
                if traces.exported > before.exported { traceSpans.exported.increment(by: traces.exported - before.exported) }
                if traces.dropped > before.dropped { traceSpans.dropped.increment(by: traces.dropped - before.dropped) }
            }
            return registry.emitToString()
        }
    }

    /// Sets each family's series to exactly `values` (label values in the
    /// family's label order), removing the series it had before and no longer has.
    private func apply(_ families: [MetricFamily: [[String]: Double]], into published: inout [String: Set<[String]>]) {
        for (family, values) in families {
            for (labels, value) in values {
                CoreMetrics.Gauge(label: family.name, dimensions: Array(zip(family.labels, labels)), factory: factory).record(value)
            }
            for stale in (published[family.name] ?? []).subtracting(values.keys) {
                CoreMetrics.Gauge(label: family.name, dimensions: Array(zip(family.labels, stale)), factory: factory).destroy()
            }
            published[family.name] = Set(values.keys)
        }
    }

    static func jobValues(_ jobs: JobGauges, now: Date) -> [MetricFamily: [[String]: Double]] {
        // The experiments with the most jobs keep their name; the rest are `_other`.
        var perExperiment: [String: Int] = [:]
        for (key, count) in jobs.counts { perExperiment[key.experiment, default: 0] += count }
        let kept = Set(perExperiment.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(maxExperiments).map(\.key))
        var counts: [[String]: Double] = [:]
        for (key, count) in jobs.counts {
            counts[[key.state.rawValue, kept.contains(key.experiment) ? Self.boundedText(key.experiment) : "_other"], default: 0] += Double(count)
        }
        let oldest = jobs.queuedSince.min().map { max(0, now.timeIntervalSince($0)) } ?? 0
        return [MetricCatalog.jobs: counts,
                MetricCatalog.queueDepth: [[]: Double(jobs.queuedSince.count)],
                MetricCatalog.queueOldestWait: [[]: oldest]]
    }

    static func workerValues(_ workers: [WorkerInfo], now: Date) -> [MetricFamily: [[String]: Double]] {
        var status: [[String]: Double] = [["idle"]: 0, ["busy"]: 0, ["lost"]: 0]
        var utilization: [[String]: Double] = [:], used: [[String]: Double] = [:], total: [[String]: Double] = [:], outbox: [[String]: Double] = [:]
        for worker in workers {
            let seen = worker.seen(at: now)
            status[[seen.status.rawValue], default: 0] += 1
            // A lost worker's last readings are not current: its series go.
            guard seen.status != .lost else { continue }
            let id = boundedText(worker.id)
            for gpu in worker.gpus {
                let labels = [id, String(gpu.index)]
                if let percent = gpu.utilizationPercent { utilization[labels] = Double(percent) / 100 }
                if let mib = gpu.memoryUsedMiB { used[labels] = Double(mib) * 1_048_576 }
                if let mib = gpu.memoryTotalMiB { total[labels] = Double(mib) * 1_048_576 }
            }
            if let reports = worker.backlog?.reports { outbox[[id]] = Double(reports) }
        }
        return [MetricCatalog.workers: status, MetricCatalog.gpuUtilization: utilization, MetricCatalog.gpuMemoryUsed: used,
                MetricCatalog.gpuMemoryTotal: total, MetricCatalog.reportOutbox: outbox]
    }

    /// A label value that came from outside (an experiment, a worker id): at most 128 bytes.
    static func boundedText(_ text: String) -> String {
        guard text.utf8.count > 128 else { return text }
        var kept = "", bytes = 0
        for character in text {
            bytes += character.utf8.count
            if bytes > 128 { break }
            kept.append(character)
        }
        return kept
    }
}

/// swift-metrics' factory over a Prometheus registry that takes each
/// family's help and buckets from `MetricCatalog` (a name it does not know
/// gets no help and the backend's default buckets).
struct CatalogMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    static let defaultBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricCatalog.family(named: label)?.help ?? "")
    }

    func buckets(_ label: String) -> [Double] {
        let buckets = MetricCatalog.family(named: label)?.buckets ?? []
        return buckets.isEmpty ? Self.defaultBuckets : buckets
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions,
                                       buckets: buckets(label).map { Duration.nanoseconds(Int64($0 * 1e9)) })
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
