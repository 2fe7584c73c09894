/// Every metric family `/metrics` exports, in one place: its name, kind,
/// help, label names and histogram buckets. Code records through these
/// (never a name spelled elsewhere), the factory takes help and buckets from
/// here, and the tests check the dashboard and the alert rules against
/// `exported`, so a renamed metric fails them.
///
/// Label values are bounded: states, outcomes, statuses and methods are
/// closed sets; routes are the router's templates (`unmatched` for the
/// rest); experiments are capped (`YardMetrics.maxExperiments`, the rest
/// `_other`); workers and GPUs are those alive in the registry at the
/// scrape. No job id and no raw path is ever a label value.
public struct MetricFamily: Sendable, Hashable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]
    /// Upper bounds of a histogram's buckets, in its unit (seconds).
    public let buckets: [Double]

    init(_ name: String, _ kind: Kind, _ help: String, labels: [String] = [], buckets: [Double] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labels = labels
        self.buckets = buckets
    }
}

public enum MetricCatalog {
    static let requestBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Epochs take seconds (a tiny set on a GPU) to hours.
    static let epochBuckets: [Double] = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]
    /// Jobs and waits: seconds to a day.
    static let longBuckets: [Double] = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400]

    // Jobs and the queue: read from the store at each scrape.
    public static let jobs = MetricFamily("trainyard_jobs", .gauge, "Jobs by state and experiment.", labels: ["state", "experiment"])
    public static let queueDepth = MetricFamily("trainyard_queue_depth", .gauge, "Jobs waiting for a worker (state queued).")
    public static let queueOldestWait = MetricFamily("trainyard_queue_oldest_wait_seconds", .gauge,
                                                     "How long the job that has waited longest has been queued (0: none waits).")
    // Workers: read from the worker registry at each scrape.
    public static let workers = MetricFamily("trainyard_workers", .gauge, "Workers by status: idle, busy (both heartbeating) and lost (no heartbeat).",
                                             labels: ["status"])
    public static let gpuUtilization = MetricFamily("trainyard_worker_gpu_utilization_ratio", .gauge,
                                                    "A worker's GPU utilisation (0-1) at its last heartbeat.", labels: ["worker", "gpu"])
    public static let gpuMemoryUsed = MetricFamily("trainyard_worker_gpu_memory_used_bytes", .gauge,
                                                   "GPU memory in use at a worker's last heartbeat.", labels: ["worker", "gpu"])
    public static let gpuMemoryTotal = MetricFamily("trainyard_worker_gpu_memory_total_bytes", .gauge,
                                                    "A worker's GPU memory.", labels: ["worker", "gpu"])
    public static let reportOutbox = MetricFamily("trainyard_report_outbox_reports", .gauge,
                                                  "Reports a worker holds that Redis has not taken yet (workers over Redis).", labels: ["worker"])
    // The tracking spool: this server's, and each remote worker's from its heartbeat.
    public static let spoolOperations = MetricFamily("trainyard_tracking_spool_operations", .gauge,
                                                     "MLflow calls spooled and not sent yet, by process (server, or a worker's id).", labels: ["process"])
    public static let spoolOldest = MetricFamily("trainyard_tracking_spool_oldest_seconds", .gauge,
                                                 "How long the spool has held calls not sent: since the run that waits longest last had none (0: nothing waits).", labels: ["process"])
    // Training: followed from the event log.
    public static let epochDuration = MetricFamily("trainyard_epoch_duration_seconds", .histogram,
                                                   "How long epochs took (the engine's epoch time).", buckets: epochBuckets)
    public static let firstEpoch = MetricFamily("trainyard_job_first_epoch_seconds", .histogram,
                                                "From a job's submission to its first epoch's end.", buckets: longBuckets)
    public static let jobsFinished = MetricFamily("trainyard_jobs_finished_total", .counter,
                                                  "Jobs that ended, by outcome (succeeded, failed, stopped, pruned).", labels: ["outcome"])
    public static let jobDuration = MetricFamily("trainyard_job_duration_seconds", .histogram,
                                                 "From a job's first start to its end, by outcome (jobs that never started are counted in trainyard_jobs_finished_total only).", labels: ["outcome"], buckets: longBuckets)
    // The HTTP API.
    public static let httpRequests = MetricFamily("trainyard_http_requests_total", .counter,
                                                  "HTTP requests by route template, method and status.", labels: ["route", "method", "status"])
    public static let httpDuration = MetricFamily("trainyard_http_request_duration_seconds", .histogram,
                                                  "HTTP request latency, receipt to response head (a stream's body is not counted), by route template and method.",
                                                  labels: ["route", "method"], buckets: requestBuckets)
    public static let sseClients = MetricFamily("trainyard_sse_clients", .gauge, "Server-Sent Event streams open, by route template.", labels: ["route"])
    // Tracing (OTLP).
    public static let traceSpans = MetricFamily("trainyard_trace_spans_total", .counter,
                                                "Spans of jobs and predict requests the OTLP exporter sent (exported) or gave up (dropped: its buffer was full, or the collector failed or did not answer in time); 0 while tracing is off.",
                                                labels: ["outcome"])

    /// The families this module records.
    public static let families: [MetricFamily] = [
        jobs, queueDepth, queueOldestWait, workers, gpuUtilization, gpuMemoryUsed, gpuMemoryTotal, reportOutbox,
        spoolOperations, spoolOldest, epochDuration, firstEpoch, jobsFinished, jobDuration, httpRequests, httpDuration, sseClients,
        traceSpans,
    ]

    /// Families the predictor pool renders itself (`ServingMetrics`, names kept from before this catalog).
    public static let serving: [String] = [
        "yard_predict_requests_total", "yard_predict_errors_total", "yard_predict_duration_seconds", "yard_predict_batch_images",
        "yard_predictor_queue_depth", "yard_model_load_seconds", "yard_predictor_memory_bytes", "yard_predictor_restarts_total",
        "yard_predictor_batch_images", "yard_jobs",
    ]

    /// Every family name a scrape can show.
    public static var exported: Set<String> { Set(families.map(\.name) + serving) }

    public static func family(named name: String) -> MetricFamily? { families.first { $0.name == name } }
}
